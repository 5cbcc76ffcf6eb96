// Package linking is voicegw's own account linking for `linked` services
// with oauth2 (SPEC 7): a user without a token hears a one-time six-digit
// code, enters it on the /link page, is sent through the provider's
// authorization-code flow (with PKCE) and comes back to /link/callback,
// where the token is stored in the secret store under the user's id. All
// state lives in the secret store, written with check-and-set, so any
// replica can serve any step.
package linking

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/auth"
	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/templates"
)

// Limits of the flow.
const (
	// CodeTTL is how long a spoken code is valid.
	CodeTTL = 10 * time.Minute
	// StateTTL is how long the provider may take to send the user back.
	StateTTL = 15 * time.Minute
	// WrongCodes is how many wrong codes one client may enter per
	// WrongCodeWindow before /link answers 429.
	WrongCodes      = 10
	WrongCodeWindow = 10 * time.Minute
)

// Secret store paths of the flow, relative to the prefix.
const (
	codesPath    = "link-codes/"
	pendingPath  = "link-codes/pending/"
	stateKeyPath = "gateway/state-key"
)

// Linker creates codes and serves the linking pages.
type Linker struct {
	cfg    *config.Config
	store  gateway.SecretStore
	log    *slog.Logger
	pages  *template.Template
	client *http.Client
	now    func() time.Time

	keyMu sync.Mutex
	key   []byte

	wrong wrongCodes
}

// Options are optional collaborators.
type Options struct {
	Logger *slog.Logger
	// HTTPClient calls token endpoints (nil: a client with a 10 s timeout).
	HTTPClient *http.Client
	Now        func() time.Time
}

// New returns a linker for cfg over store.
func New(cfg *config.Config, store gateway.SecretStore, opts Options) (*Linker, error) {
	pages, err := template.ParseFS(templates.FS, "*.html")
	if err != nil {
		return nil, fmt.Errorf("link pages: %w", err)
	}
	l := &Linker{cfg: cfg, store: store, log: opts.Logger, pages: pages, client: opts.HTTPClient,
		now: opts.Now}
	if l.log == nil {
		l.log = slog.Default()
	}
	if l.client == nil {
		l.client = &http.Client{Timeout: 10 * time.Second}
	}
	if l.now == nil {
		l.now = time.Now
	}
	return l, nil
}

// Instructions implements engine.Linker: it returns the sentence that
// tells the user where to enter their code, creating the code (or
// repeating the one still valid).
func (l *Linker) Instructions(ctx context.Context, svc *config.Service, userID string) (string, error) {
	if svc.OAuth2 == nil || l.cfg.Server.PublicURL == "" {
		return "", errors.New("service has no oauth2 or server has no public_url")
	}
	if !gateway.ValidUserID(userID) {
		return "", errors.New("invalid user id")
	}
	code, err := l.code(ctx, svc.Name, userID)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("To use %s, open %s/link and enter code %s", svc.Name, l.cfg.Server.PublicURL, spell(code)), nil
}

func spell(code string) string { return strings.Join(strings.Split(code, ""), " ") }

// code returns the user's pending code for svc, or creates one.
func (l *Linker) code(ctx context.Context, service, userID string) (string, error) {
	now := l.now()
	pending := pendingPath + userID + "/" + service
	if e, err := l.store.Read(ctx, pending); err == nil {
		code := e.Data["code"].Reveal()
		if c, err := l.store.Read(ctx, codesPath+code); err == nil && validCode(c, userID, service, now) {
			return code, nil
		}
	} else if !errors.Is(err, gateway.ErrNotFound) {
		return "", err
	}
	for range 5 {
		code, err := randomCode()
		if err != nil {
			return "", err
		}
		data := gateway.SecretData{
			"code":       gateway.Secret(code),
			"user_id":    gateway.Secret(userID),
			"service":    gateway.Secret(service),
			"expires_at": gateway.Secret(now.Add(CodeTTL).UTC().Format(time.RFC3339)),
		}
		_, err = l.store.Write(ctx, codesPath+code, data, l.recyclable(ctx, code))
		if errors.Is(err, gateway.ErrConflict) {
			continue // the code is taken: draw another
		}
		if err != nil {
			return "", err
		}
		if _, err := l.store.Write(ctx, pending, gateway.SecretData{"code": gateway.Secret(code)}, -1); err != nil {
			return "", err
		}
		return code, nil
	}
	return "", errors.New("no free link code")
}

// RecycleAfter is how long after its expiry a code's number may be drawn
// again; the old code can never be redeemed by then (its state expired
// too), so single use holds.
const RecycleAfter = 24 * time.Hour

// recyclable returns the check-and-set version to create code with: 0 for
// a new entry, or the version of an entry that expired long ago.
func (l *Linker) recyclable(ctx context.Context, code string) int {
	e, err := l.store.Read(ctx, codesPath+code)
	if err != nil {
		return 0
	}
	exp, err := time.Parse(time.RFC3339, e.Data["expires_at"].Reveal())
	if err == nil && l.now().Sub(exp) > RecycleAfter {
		return e.Version
	}
	return 0
}

func validCode(e *gateway.Entry, userID, service string, now time.Time) bool {
	if e.Data["used"] != "" {
		return false
	}
	exp, err := time.Parse(time.RFC3339, e.Data["expires_at"].Reveal())
	if err != nil || !now.Before(exp) {
		return false
	}
	return userID == "" || (e.Data["user_id"].Reveal() == userID && e.Data["service"].Reveal() == service)
}

func randomCode() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%06d", n.Int64()), nil
}

// stateKey returns the HMAC key for state parameters, created once in the
// secret store (check-and-set, so replicas agree on one key).
func (l *Linker) stateKey(ctx context.Context) ([]byte, error) {
	l.keyMu.Lock()
	defer l.keyMu.Unlock()
	if l.key != nil {
		return l.key, nil
	}
	for range 3 {
		e, err := l.store.Read(ctx, stateKeyPath)
		if err == nil {
			key, err := base64.StdEncoding.DecodeString(e.Data["key"].Reveal())
			if err != nil || len(key) < 32 {
				return nil, errors.New("state key in the secret store is malformed")
			}
			l.key = key
			return key, nil
		}
		if !errors.Is(err, gateway.ErrNotFound) {
			return nil, err
		}
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		_, err = l.store.Write(ctx, stateKeyPath, gateway.SecretData{"key": gateway.Secret(base64.StdEncoding.EncodeToString(key))}, 0)
		if err == nil {
			l.key = key
			return key, nil
		}
		if !errors.Is(err, gateway.ErrConflict) {
			return nil, err
		}
	}
	return nil, errors.New("could not agree on a state key")
}

// state is what the signed OAuth state parameter carries.
type state struct {
	Code    string `json:"c"`
	Nonce   string `json:"n"`
	Expires int64  `json:"e"`
}

func (l *Linker) signState(key []byte, s state) string {
	payload, _ := json.Marshal(s)
	p := base64.RawURLEncoding.EncodeToString(payload)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(p))
	return p + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func (l *Linker) verifyState(key []byte, raw string) (state, error) {
	var s state
	p, sig, ok := strings.Cut(raw, ".")
	if !ok {
		return s, errors.New("malformed state")
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(p))
	want := mac.Sum(nil)
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, want) {
		return s, errors.New("state signature does not match")
	}
	payload, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil || json.Unmarshal(payload, &s) != nil {
		return s, errors.New("malformed state")
	}
	if l.now().Unix() > s.Expires {
		return s, errors.New("state expired")
	}
	return s, nil
}

// wrongCodes counts each client's code attempts in a sliding window of
// WrongCodeWindow: a client with WrongCodes attempts in the window is
// refused until the oldest leaves it.
type wrongCodes struct {
	mu   sync.Mutex
	seen map[string][]time.Time
}

// reserve records an attempt for client unless the client already has
// WrongCodes attempts in the window; it reports whether it may go on.
// Reserving before checking makes concurrent guesses count too.
func (w *wrongCodes) reserve(client string, now time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen == nil || len(w.seen) > 100_000 {
		w.seen = map[string][]time.Time{} // bound memory under a flood
	}
	recent := w.seen[client][:0]
	for _, t := range w.seen[client] {
		if now.Sub(t) < WrongCodeWindow {
			recent = append(recent, t)
		}
	}
	if len(recent) >= WrongCodes {
		w.seen[client] = recent
		return false
	}
	w.seen[client] = append(recent, now)
	return true
}

// release forgets the newest attempt of client: it was not a wrong code.
func (w *wrongCodes) release(client string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n := len(w.seen[client]); n > 0 {
		w.seen[client] = w.seen[client][:n-1]
	}
}

func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (l *Linker) oauthConfig(ctx context.Context, svc *config.Service) (*oauth2.Config, error) {
	secret := ""
	e, err := l.store.Read(ctx, gateway.ServicePath(svc.Name))
	switch {
	case err == nil:
		secret = e.Data[auth.FieldClientSecret].Reveal()
	case !errors.Is(err, gateway.ErrNotFound):
		return nil, err
	}
	return auth.OAuth2Config(svc, secret, l.cfg.Server.PublicURL+"/link/callback"), nil
}

// constantEqual compares two codes in constant time.
func constantEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
