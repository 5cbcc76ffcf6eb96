// Package vault is the gateway.SecretStore on HashiCorp Vault: KV version 2
// under <kv_mount>/<prefix>, login by token or AppRole, the login kept
// alive with a LifetimeWatcher and renewed by a fresh login when renewal
// ends or Vault answers 403.
//
// Logins are paced so that a broken credential never locks out the AppRole
// that every replica shares (SPEC 10): one login in flight per process; a
// login Vault refuses is tried again only when the secret_id file changes,
// or else after 5 minutes; other failures back off exponentially with
// jitter from 1 s to 1 min. The store's view of Vault (Health) is derived
// from the requests it makes anyway, so readiness probes cost no request.
package vault

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
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

// Login pacing (SPEC 10).
const (
	// RefusedRetry is how long a login Vault refused for invalid
	// credentials waits before it is tried again with an unchanged
	// secret_id file: well outside Vault's default user lockout of 5
	// failures in 15 minutes.
	RefusedRetry = 5 * time.Minute
	// BackoffMin and BackoffMax bound the jittered exponential back-off of
	// logins that failed for other reasons (Vault unreachable, 5xx), and of
	// re-logins after a 403.
	BackoffMin = time.Second
	BackoffMax = time.Minute
)

// Health statuses of Vault as a Store sees it.
const (
	StatusOK           = "ok"
	StatusUnreachable  = "unreachable"
	StatusTokenInvalid = "token invalid"
)

// Health is a Store's view of Vault, taken from the outcome of its recent
// logins, renewals, reads and writes; reading it costs no Vault request.
type Health struct {
	// Connected reports whether a login has succeeded since the store was
	// made: Vault was reachable at least once.
	Connected bool
	// Status is StatusOK, StatusUnreachable (the last request got no
	// answer, a timeout or a 5xx) or StatusTokenInvalid (Vault refused the
	// login or the token).
	Status string
}

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
	client  *api.Client
	mount   string
	prefix  string
	method  string
	roleID  string
	secret  string // secret_id_file
	timeout time.Duration
	log     *slog.Logger

	mu sync.Mutex
	// loggedIn: the client holds a token believed valid; gen counts the
	// logins that succeeded, so a 403 seen with an older token re-logs in
	// no more.
	loggedIn bool
	gen      int
	// own: the client's token came from this store's AppRole login, so
	// Revoke revokes it (a VAULT_TOKEN belongs to the operator).
	own     bool
	watcher *api.LifetimeWatcher
	flight  *loginFlight
	pace    pacing
	health  healthState
	started bool

	stop     chan struct{}
	stopOnce sync.Once
}

// loginFlight is the one login in flight.
type loginFlight struct {
	done chan struct{}
	err  error
}

// pacing is what decides when the next login may be tried.
type pacing struct {
	notBefore time.Time
	failures  int   // consecutive failures other than refusals
	lastErr   error // of the last failed login, returned while paced
	refused   bool  // the last login was refused for invalid credentials
	// refusedSum is the SHA-256 of the secret_id file the refused login
	// used: different content may be tried at once.
	refusedSum [sha256.Size]byte
	// refusedFile is the file's size and time then: while they hold, the
	// file is not read again (requests check this under the lock).
	refusedFile fileStamp
	// relogin403 paces re-logins after a 403 on a read or write.
	reloginNotBefore time.Time
	reloginStep      time.Duration
}

// healthState is what Health reports.
type healthState struct {
	invalid   bool
	downSince time.Time // zero while Vault answers
}

// New returns a store for cfg. It does not need Vault to be up: the first
// use logs in (or Start does, in the background).
func New(cfg *config.Vault, opts Options) (*Store, error) {
	vc := api.DefaultConfig()
	if vc.Error != nil {
		return nil, fmt.Errorf("vault config: %w", vc.Error)
	}
	timeout := cfg.Timeout.D
	if timeout <= 0 {
		timeout = config.DefaultVaultTimeout
	}
	vc.Address = cfg.Address
	vc.MaxRetries = 0
	// Every request, renewals included, gets at most vault.timeout.
	vc.Timeout = timeout
	if opts.HTTPClient != nil {
		vc.HttpClient = opts.HTTPClient
	}
	client, err := api.NewClient(vc)
	if err != nil {
		return nil, fmt.Errorf("vault client: %w", err)
	}
	s := &Store{
		client:  client,
		mount:   cfg.KVMount,
		prefix:  cfg.Prefix,
		method:  cfg.Auth.Method,
		roleID:  cfg.Auth.RoleID,
		secret:  cfg.Auth.SecretIDFile,
		timeout: timeout,
		log:     opts.Logger,
		stop:    make(chan struct{}),
		pace:    pacing{reloginStep: BackoffMin},
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.method == "" {
		s.method = "token"
	}
	if s.method == "token" {
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

// Start logs in in the background, retrying at the paced rate until a
// login succeeds or the store is closed, so that Health tells whether
// Vault was reached even before the first turn. It returns at once;
// calling it again does nothing.
func (s *Store) Start() {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return
	}
	s.started = true
	s.mu.Unlock()
	go s.loginUntil(false, "start", func() bool { return false })
}

// Close stops token renewal and background logins. It leaves the token
// alive; Revoke ends it.
func (s *Store) Close() {
	s.stopOnce.Do(func() { close(s.stop) })
	s.mu.Lock()
	if s.watcher != nil {
		s.watcher.Stop()
		s.watcher = nil
	}
	s.mu.Unlock()
}

// Revoke closes the store and revokes the token it logged in with, if it
// logged in itself (AppRole); a token given to it (VAULT_TOKEN) is the
// operator's and stays alive. Use it when the store is no longer needed:
// at the end of a CLI command, or after a reload replaced it.
func (s *Store) Revoke(ctx context.Context) error {
	s.Close()
	s.mu.Lock()
	own := s.own
	s.own, s.loggedIn = false, false
	s.mu.Unlock()
	if !own {
		return nil
	}
	if err := s.client.Auth().Token().RevokeSelfWithContext(ctx, ""); err != nil {
		s.log.Warn("vault token revocation failed", "error", clean(err).Error())
		return fmt.Errorf("vault revoke: %w", clean(err))
	}
	s.client.ClearToken()
	s.log.Info("vault token revoked", "method", s.method)
	return nil
}

// Health returns the store's view of Vault. It makes no request.
func (s *Store) Health() Health {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := Health{Connected: s.gen > 0, Status: StatusOK} // a login has succeeded
	switch {
	case s.health.invalid:
		h.Status = StatusTokenInvalid
	case !s.health.downSince.IsZero() || !h.Connected:
		h.Status = StatusUnreachable
	}
	return h
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

// errPaced wraps the last login error while the next login must wait.
type errPaced struct {
	last error
	next time.Time
}

func (e *errPaced) Error() string {
	return fmt.Sprintf("%v (next login attempt in %s)", e.last, time.Until(e.next).Round(time.Second))
}

func (e *errPaced) Unwrap() error { return e.last }

// login makes sure the client holds a live token: for AppRole a fresh
// login (the secret_id file is re-read every time), for a given token a
// lookup. One login is in flight at a time; callers wait for it at most
// until their ctx ends, while the login itself runs to vault.timeout.
func (s *Store) login(ctx context.Context, force bool, reason string) error {
	s.mu.Lock()
	if s.loggedIn && !force {
		s.mu.Unlock()
		return nil
	}
	f := s.flight
	if f == nil {
		if err := s.pacedLocked(); err != nil {
			s.mu.Unlock()
			return err
		}
		f = &loginFlight{done: make(chan struct{})}
		s.flight = f
		go s.runLogin(f, reason)
	}
	s.mu.Unlock()
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return fmt.Errorf("vault login: %w", ctx.Err())
	}
}

// pacedLocked returns an error when no login may be tried now.
func (s *Store) pacedLocked() error {
	p := &s.pace
	if p.notBefore.IsZero() || !time.Now().Before(p.notBefore) {
		return nil
	}
	if p.refused && s.method == "approle" {
		if stampOf(s.secret) != p.refusedFile {
			if sum, ok := fileSum(s.secret); ok && sum != p.refusedSum {
				return nil // the operator wrote a new secret_id: try it
			}
		}
	}
	return &errPaced{last: p.lastErr, next: p.notBefore}
}

// fileStamp is a file's size and modification time: what changes when an
// operator (or Kubernetes, by a symlink swap) writes it anew.
type fileStamp struct {
	size int64
	mod  time.Time
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{fi.Size(), fi.ModTime()}
}

func fileSum(path string) ([sha256.Size]byte, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return [sha256.Size]byte{}, false
	}
	return sha256.Sum256([]byte(strings.TrimSpace(string(b)))), true
}

// runLogin logs in and records the outcome; it logs one line either way.
func (s *Store) runLogin(f *loginFlight, reason string) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	var sum [sha256.Size]byte
	var stamp fileStamp
	if s.method == "approle" {
		stamp = stampOf(s.secret)
		sum, _ = fileSum(s.secret)
	}
	secret, err := s.authenticate(ctx)

	s.mu.Lock()
	defer func() {
		s.flight = nil
		f.err = err
		close(f.done)
		s.mu.Unlock()
	}()
	p := &s.pace
	if err != nil {
		s.observeLocked(ctx, err)
		var re *api.ResponseError
		if errors.As(err, &re) && (re.StatusCode == http.StatusBadRequest || re.StatusCode == http.StatusForbidden) {
			// Invalid credentials: a retry with the same ones only counts
			// towards Vault's user lockout.
			p.refused, p.refusedSum, p.refusedFile, p.failures = true, sum, stamp, 0
			p.notBefore = time.Now().Add(RefusedRetry)
			s.health.invalid = true
			s.log.Error("vault login refused", "method", s.method, "reason", reason, "status", re.StatusCode,
				"error", clean(err).Error(), "retry_in", RefusedRetry.String(),
				"hint", "a changed secret_id_file is tried at once")
		} else {
			p.refused = false
			p.failures++
			wait := jitter(backoff(p.failures))
			p.notBefore = time.Now().Add(wait)
			s.log.Warn("vault login failed", "method", s.method, "reason", reason,
				"error", clean(err).Error(), "retry_in", wait.Round(time.Millisecond).String())
		}
		p.lastErr = fmt.Errorf("vault login: %w", clean(err))
		err = p.lastErr
		return
	}
	p.refused, p.failures, p.notBefore, p.lastErr = false, 0, time.Time{}, nil
	s.health.invalid = false
	s.markUpLocked()
	s.loggedIn = true
	s.own = s.method == "approle"
	s.gen++
	msg := "vault login"
	if s.gen > 1 {
		msg = "vault re-login"
	}
	attrs := []any{"method", s.method, "reason", reason}
	if secret.Auth != nil {
		attrs = append(attrs, "ttl", (time.Duration(secret.Auth.LeaseDuration) * time.Second).String(), "renewable", secret.Auth.Renewable)
	}
	s.log.Info(msg, attrs...)
	if s.watcher != nil {
		s.watcher.Stop()
		s.watcher = nil
	}
	select {
	case <-s.stop:
		return // closed while logging in: renew nothing
	default:
	}
	if secret.Auth != nil && secret.Auth.Renewable && secret.Auth.LeaseDuration > 0 {
		// A renewal error ends the watcher, so that it is logged and a
		// paced re-login replaces the token. (The default retries without
		// pause until the token expires: thousands of requests a second
		// against a Vault that resets connections.)
		w, werr := s.client.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: secret,
			RenewBehavior: api.RenewBehaviorErrorOnErrors})
		if werr == nil {
			s.watcher = w
			go w.Start()
			go s.watch(w)
		}
	}
}

// errLocal marks a login failure that happened before any request (an
// unreadable secret_id file): it says nothing about Vault.
var errLocal = errors.New("no request made")

// authenticate performs the login request itself.
func (s *Store) authenticate(ctx context.Context) (*api.Secret, error) {
	if s.method == "approle" {
		if _, err := os.Stat(s.secret); err != nil {
			return nil, fmt.Errorf("secret_id_file: %w (%w)", err, errLocal)
		}
		auth, err := approle.NewAppRoleAuth(s.roleID, &approle.SecretID{FromFile: s.secret})
		if err != nil {
			return nil, fmt.Errorf("approle: %w", err)
		}
		secret, err := s.client.Auth().Login(ctx, auth)
		if err != nil {
			return nil, err
		}
		if secret == nil || secret.Auth == nil {
			return nil, errors.New("approle login returned no token")
		}
		return secret, nil
	}
	secret, err := s.client.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return nil, err
	}
	// LookupSelf describes the token in Data; the watcher wants Auth.
	renewable, _ := secret.TokenIsRenewable()
	ttl, _ := secret.TokenTTL()
	return &api.Secret{Auth: &api.SecretAuth{
		ClientToken:   s.client.Token(),
		Renewable:     renewable,
		LeaseDuration: int(ttl.Seconds()),
	}}, nil
}

// backoff is the un-jittered wait after n consecutive login failures.
func backoff(n int) time.Duration {
	d := BackoffMin
	for i := 1; i < n && d < BackoffMax; i++ {
		d *= 2
	}
	return min(d, BackoffMax)
}

// jitter spreads d by ±25 %, within [BackoffMin, BackoffMax], so that
// replicas that failed together do not retry together.
func jitter(d time.Duration) time.Duration {
	d += time.Duration(rand.Int64N(int64(d)/2+1)) - d/4
	return min(max(d, BackoffMin), BackoffMax)
}

// watch follows one LifetimeWatcher: each renewal tells that Vault
// answers; when renewal ends the store logs in again, at the paced rate
// until a login succeeds, and keeps the old token meanwhile (it may still
// be valid for a while).
func (s *Store) watch(w *api.LifetimeWatcher) {
	for {
		select {
		case <-s.stop:
			return
		case <-w.RenewCh():
			s.mu.Lock()
			s.markUpLocked()
			s.mu.Unlock()
		case err := <-w.DoneCh():
			s.mu.Lock()
			current := s.watcher == w
			if current {
				s.watcher = nil
			}
			gen := s.gen
			if err != nil {
				s.observeLocked(context.Background(), err)
				if isForbidden(err) {
					s.health.invalid = true
					s.loggedIn = false
				}
			}
			s.mu.Unlock()
			if !current {
				return
			}
			reason := "renewal ended"
			if err != nil {
				s.log.Warn("vault token renewal failed", "method", s.method, "error", clean(err).Error())
				reason = "renewal failed"
			}
			s.reconnect(gen, reason)
			return
		}
	}
}

// reconnect logs in again until a login succeeds, the store closes or
// another login (after a 403, say) replaced the token of login gen.
func (s *Store) reconnect(gen int, reason string) {
	s.loginUntil(true, reason, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.gen != gen
	})
}

// loginUntil tries to log in every 250 ms (each try paced as login
// paces it) until one succeeds, the store closes or replaced says a newer
// login took over.
func (s *Store) loginUntil(force bool, reason string, replaced func() bool) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for !replaced() {
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout+time.Second)
		err := s.login(ctx, force, reason)
		cancel()
		if err == nil {
			return
		}
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

// observeLocked records the outcome of a request for Health: an answer
// below 500 means Vault is reachable; no answer, a timeout of the store's
// own or a 5xx starts an outage. A request the caller gave up on says
// nothing about Vault.
func (s *Store) observeLocked(ctx context.Context, err error) {
	if err == nil {
		s.markUpLocked()
		return
	}
	var re *api.ResponseError
	if errors.As(err, &re) {
		if re.StatusCode < 500 {
			s.markUpLocked()
			return
		}
	} else if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return
	}
	if errors.Is(err, errLocal) {
		return
	}
	if s.health.downSince.IsZero() {
		s.health.downSince = time.Now()
		s.log.Warn("vault unreachable", "error", clean(err).Error())
	}
}

func (s *Store) markUpLocked() {
	if !s.health.downSince.IsZero() {
		s.log.Info("vault reachable again", "outage", time.Since(s.health.downSince).Round(time.Millisecond).String())
		s.health.downSince = time.Time{}
	}
}

// observe is observeLocked for requests made for a caller: a request the
// caller cancelled says nothing about Vault, nor does one cut short by the
// caller's deadline before Vault had half of vault.timeout to answer.
func (s *Store) observe(ctx context.Context, err error, took time.Duration) {
	if err != nil && ctx.Err() != nil {
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) || took < s.timeout/2 {
			return
		}
	}
	s.mu.Lock()
	s.observeLocked(context.Background(), err)
	s.mu.Unlock()
}

// do runs op with a logged-in client. On 403 it logs in again and retries
// once (the token may have expired or been revoked), at most once per
// back-off step unless another login already replaced the token.
func (s *Store) do(ctx context.Context, op func() error) error {
	if err := s.login(ctx, false, "first use"); err != nil {
		return err
	}
	s.mu.Lock()
	gen := s.gen
	s.mu.Unlock()
	start := time.Now()
	err := op()
	s.observe(ctx, err, time.Since(start))
	if !isForbidden(err) {
		return err
	}
	if lerr := s.relogin(ctx, gen); lerr != nil {
		return err
	}
	start = time.Now()
	err = op()
	s.observe(ctx, err, time.Since(start))
	if err == nil {
		s.mu.Lock()
		s.pace.reloginStep = BackoffMin
		s.mu.Unlock()
	}
	return err
}

func isForbidden(err error) bool {
	var re *api.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusForbidden
}

// relogin logs in again after a 403 seen with the token of login gen.
func (s *Store) relogin(ctx context.Context, gen int) error {
	s.mu.Lock()
	if f := s.flight; f != nil {
		// Another login is replacing the token: use its result.
		s.mu.Unlock()
		select {
		case <-f.done:
			return f.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if s.gen != gen {
		// Another login replaced the token already.
		s.mu.Unlock()
		return s.login(ctx, false, "token rejected (403)")
	}
	now := time.Now()
	p := &s.pace
	if now.Before(p.reloginNotBefore) {
		s.mu.Unlock()
		return errors.New("re-login after 403 paced")
	}
	p.reloginNotBefore = now.Add(jitter(p.reloginStep))
	p.reloginStep = min(2*p.reloginStep, BackoffMax)
	s.loggedIn = false
	s.mu.Unlock()
	return s.login(ctx, true, "token rejected (403)")
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

// clean shortens Vault client errors to one line without request detail.
func clean(err error) error {
	var re *api.ResponseError
	if errors.As(err, &re) {
		return fmt.Errorf("vault answered %d: %s", re.StatusCode, strings.Join(re.Errors, "; "))
	}
	var paced *errPaced
	if errors.As(err, &paced) {
		return err
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
