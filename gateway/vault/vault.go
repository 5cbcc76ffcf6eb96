// Package vault is the gateway.SecretStore on HashiCorp Vault: KV version 2
// under <kv_mount>/<prefix>, login by token or AppRole, the login kept
// alive with a LifetimeWatcher and renewed by a fresh login when renewal
// ends or Vault answers 403.
package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/config"
)

var _ gateway.SecretStore = (*Store)(nil)

// Options are optional collaborators of a Store.
type Options struct {
	// HTTPClient replaces the Vault client's HTTP client (tests count
	// requests with it).
	HTTPClient *http.Client
	// Token is the token for method "token"; default $VAULT_TOKEN.
	Token  string
	Logger *slog.Logger
}

// Store reads and writes secrets in Vault.
type Store struct {
	client *api.Client
	mount  string
	prefix string
	method string
	roleID string
	secret string // secret_id_file
	log    *slog.Logger

	mu       sync.Mutex
	loggedIn bool
	watcher  *api.LifetimeWatcher
	stop     chan struct{}
	stopOnce sync.Once
}

// New returns a store for cfg. It does not need Vault to be up: the first
// use logs in, and a failed login is retried on the next use.
func New(cfg *config.Vault, opts Options) (*Store, error) {
	vc := api.DefaultConfig()
	if vc.Error != nil {
		return nil, fmt.Errorf("vault config: %w", vc.Error)
	}
	vc.Address = cfg.Address
	vc.MaxRetries = 0
	vc.Timeout = 5 * time.Second
	if opts.HTTPClient != nil {
		vc.HttpClient = opts.HTTPClient
	}
	client, err := api.NewClient(vc)
	if err != nil {
		return nil, fmt.Errorf("vault client: %w", err)
	}
	s := &Store{
		client: client,
		mount:  cfg.KVMount,
		prefix: cfg.Prefix,
		method: cfg.Auth.Method,
		roleID: cfg.Auth.RoleID,
		secret: cfg.Auth.SecretIDFile,
		log:    opts.Logger,
		stop:   make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.method == "token" || s.method == "" {
		tok := opts.Token
		if tok == "" {
			tok = os.Getenv("VAULT_TOKEN")
		}
		if tok == "" {
			return nil, errors.New("vault: auth method token needs VAULT_TOKEN")
		}
		client.SetToken(tok)
	} else {
		client.ClearToken()
	}
	return s, nil
}

// Close stops token renewal.
func (s *Store) Close() {
	s.stopOnce.Do(func() { close(s.stop) })
	s.mu.Lock()
	if s.watcher != nil {
		s.watcher.Stop()
	}
	s.mu.Unlock()
}

// full returns the KV v2 path below <mount>/data/ or <mount>/metadata/.
// Paths with empty, "." or ".." segments are refused, whatever the caller
// validated before.
func (s *Store) full(path string) (string, error) {
	for _, seg := range strings.Split(path, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", fmt.Errorf("vault: invalid secret path %q", path)
		}
	}
	if s.prefix == "" {
		return path, nil
	}
	return s.prefix + "/" + path, nil
}

// login makes sure the client holds a live token: for AppRole a fresh
// login (the secret_id file is re-read every time), for a renewable token
// a LifetimeWatcher.
func (s *Store) login(ctx context.Context, force bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loggedIn && !force {
		return nil
	}
	var secret *api.Secret
	var err error
	switch s.method {
	case "approle":
		var auth *approle.AppRoleAuth
		auth, err = approle.NewAppRoleAuth(s.roleID, &approle.SecretID{FromFile: s.secret})
		if err != nil {
			return fmt.Errorf("vault approle: %w", err)
		}
		secret, err = s.client.Auth().Login(ctx, auth)
		if err != nil {
			return fmt.Errorf("vault approle login: %w", err)
		}
	default:
		secret, err = s.client.Auth().Token().LookupSelfWithContext(ctx)
		if err != nil {
			return fmt.Errorf("vault token lookup: %w", err)
		}
		// LookupSelf describes the token in Data; the watcher wants Auth.
		renewable, _ := secret.TokenIsRenewable()
		ttl, _ := secret.TokenTTL()
		secret = &api.Secret{Auth: &api.SecretAuth{
			ClientToken:   s.client.Token(),
			Renewable:     renewable,
			LeaseDuration: int(ttl.Seconds()),
		}}
	}
	s.loggedIn = true
	if s.watcher != nil {
		s.watcher.Stop()
		s.watcher = nil
	}
	if secret.Auth != nil && secret.Auth.Renewable && secret.Auth.LeaseDuration > 0 {
		w, err := s.client.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: secret})
		if err == nil {
			s.watcher = w
			go w.Start()
			go s.watch(w)
		}
	}
	return nil
}

// watch re-logs in when the watcher can renew no longer.
func (s *Store) watch(w *api.LifetimeWatcher) {
	for {
		select {
		case <-s.stop:
			return
		case <-w.RenewCh():
		case err := <-w.DoneCh():
			if err != nil {
				s.log.Warn("vault token renewal ended", "error", err.Error())
			}
			s.mu.Lock()
			current := s.watcher == w
			if current {
				s.loggedIn = false
			}
			s.mu.Unlock()
			if current && s.method == "approle" {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				if err := s.login(ctx, true); err != nil {
					s.log.Warn("vault re-login failed", "error", err.Error())
				}
				cancel()
			}
			return
		}
	}
}

// do runs op with a logged-in client; on 403 it logs in again and retries
// once (the token may have expired or been revoked).
func (s *Store) do(ctx context.Context, op func() error) error {
	if err := s.login(ctx, false); err != nil {
		return err
	}
	err := op()
	var re *api.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusForbidden && s.method == "approle" {
		if lerr := s.login(ctx, true); lerr != nil {
			return lerr
		}
		err = op()
	}
	return err
}

// Read implements gateway.SecretStore.
func (s *Store) Read(ctx context.Context, path string) (*gateway.Entry, error) {
	p, err := s.full(path)
	if err != nil {
		return nil, err
	}
	var sec *api.Secret
	err = s.do(ctx, func() (err error) {
		sec, err = s.client.Logical().ReadWithContext(ctx, s.mount+"/data/"+p)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("vault read %s: %w", path, clean(err))
	}
	if sec == nil || sec.Data == nil {
		return nil, gateway.ErrNotFound
	}
	data, _ := sec.Data["data"].(map[string]any)
	meta, _ := sec.Data["metadata"].(map[string]any)
	if data == nil {
		// The latest version is deleted or destroyed.
		return nil, gateway.ErrNotFound
	}
	e := &gateway.Entry{Data: gateway.SecretData{}, Version: version(meta["version"])}
	for k, v := range data {
		switch v := v.(type) {
		case string:
			e.Data[k] = gateway.Secret(v)
		case nil:
		default:
			e.Data[k] = gateway.Secret(fmt.Sprint(v))
		}
	}
	return e, nil
}

// Write implements gateway.SecretStore with KV v2 check-and-set.
func (s *Store) Write(ctx context.Context, path string, data gateway.SecretData, cas int) (int, error) {
	p, err := s.full(path)
	if err != nil {
		return 0, err
	}
	fields := make(map[string]any, len(data))
	for k, v := range data {
		fields[k] = v.Reveal()
	}
	body := map[string]any{"data": fields}
	if cas >= 0 {
		body["options"] = map[string]any{"cas": cas}
	}
	var sec *api.Secret
	err = s.do(ctx, func() (err error) {
		sec, err = s.client.Logical().WriteWithContext(ctx, s.mount+"/data/"+p, body)
		return err
	})
	if err != nil {
		var re *api.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusBadRequest && strings.Contains(strings.Join(re.Errors, " "), "check-and-set") {
			return 0, gateway.ErrConflict
		}
		return 0, fmt.Errorf("vault write %s: %w", path, clean(err))
	}
	if sec == nil {
		return 0, nil
	}
	return version(sec.Data["version"]), nil
}

// Delete implements gateway.SecretStore: it removes every version.
func (s *Store) Delete(ctx context.Context, path string) error {
	p, err := s.full(path)
	if err != nil {
		return err
	}
	err = s.do(ctx, func() error {
		_, err := s.client.Logical().DeleteWithContext(ctx, s.mount+"/metadata/"+p)
		return err
	})
	if err != nil {
		return fmt.Errorf("vault delete %s: %w", path, clean(err))
	}
	return nil
}

// Ready reports whether Vault answers and the gateway's token is valid,
// for /readyz.
func (s *Store) Ready(ctx context.Context) error {
	if err := s.login(ctx, false); err != nil {
		return clean(err)
	}
	sec, err := s.client.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		var re *api.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusForbidden {
			s.mu.Lock()
			s.loggedIn = false
			s.mu.Unlock()
			return errors.New("vault: the gateway's token is not valid")
		}
		return fmt.Errorf("vault unreachable: %w", clean(err))
	}
	if ttl, err := sec.TokenTTL(); err == nil && ttl > 0 && ttl < 10*time.Second {
		return fmt.Errorf("vault: the gateway's token expires in %s", ttl)
	}
	return nil
}

// clean shortens Vault client errors to one line without request detail.
func clean(err error) error {
	var re *api.ResponseError
	if errors.As(err, &re) {
		return fmt.Errorf("vault answered %d: %s", re.StatusCode, strings.Join(re.Errors, "; "))
	}
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	return errors.New(msg)
}

func version(v any) int {
	switch v := v.(type) {
	case json.Number:
		n, _ := v.Int64()
		return int(n)
	case float64:
		return int(v)
	case int:
		return v
	}
	return 0
}
