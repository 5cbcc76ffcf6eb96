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
	"crypto/aes"
	"crypto/cipher"
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
	"maps"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/time/rate"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/auth"
	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/gateway/ratelimit"
	"github.com/voicegw/voicegw/templates"
)

// Limits of the flow.
const (
	// CodeTTL is how long a spoken code is valid.
	CodeTTL = 10 * time.Minute
	// FlowTTL is how long a browser's flow for a code stays fresh: the
	// time the provider may take to send the user back. While it is
	// fresh no other browser can use the code.
	FlowTTL = 10 * time.Minute
	// RecycleAfter is how long after its expiry a code's number may be
	// drawn again: by then no flow of the old code can still complete.
	RecycleAfter = FlowTTL
	// MaxSubmissions is how many times a code may be entered.
	MaxSubmissions = 3
	// WrongCodes is how many codes one client may enter per
	// WrongCodeWindow before /link answers 429.
	WrongCodes      = 10
	WrongCodeWindow = 10 * time.Minute
	// DefaultCodesPerMinute is the process's ceiling on new codes.
	DefaultCodesPerMinute = 600
)

// Secret store paths of the flow, relative to the prefix.
const (
	codesPath    = "link-codes/"
	pendingPath  = "link-codes/pending/"
	flowsPath    = "link-codes/flows/"
	stateKeyPath = "gateway/state-key"
)

// Fields of a code entry beyond user_id, service and expires_at.
const (
	fieldCode        = "code"
	fieldUsed        = "used"
	fieldSubmissions = "submissions"
	// fieldBrowser is the SHA-256 of the binding cookie of the browser
	// whose flow is running.
	fieldBrowser   = "browser"
	fieldFlowUntil = "flow_until"
	fieldNonce     = "nonce"
	fieldVerifier  = "pkce_verifier"
)

// Busy is what a user hears when the process creates codes faster than
// its ceiling allows.
const Busy = "Too many people are linking accounts right now. Please try again in a minute."

// Observer counts the steps of the flow by result; see metrics.Metrics.
type Observer interface {
	LinkStep(step, result string)
}

// Limits are the flow's per-process limits. They outlive configuration
// reloads: a SIGHUP must not free a blocked client.
type Limits struct {
	// Submissions counts every code entered, per client (IPv6 per /64).
	Submissions *ratelimit.Window
	// Codes is the ceiling on new codes.
	Codes *rate.Limiter
}

// NewLimits returns the limits of SPEC 7 with a ceiling of codesPerMinute
// new codes (<= 0: DefaultCodesPerMinute).
func NewLimits(codesPerMinute int) *Limits {
	if codesPerMinute <= 0 {
		codesPerMinute = DefaultCodesPerMinute
	}
	return &Limits{
		Submissions: ratelimit.New(WrongCodes, WrongCodeWindow, 0),
		Codes:       rate.NewLimiter(rate.Limit(float64(codesPerMinute)/60), max(1, codesPerMinute/6)),
	}
}

// Linker creates codes and serves the linking pages.
type Linker struct {
	cfg      *config.Config
	store    gateway.SecretStore
	log      *slog.Logger
	pages    *template.Template
	client   *http.Client
	now      func() time.Time
	limits   *Limits
	observer Observer
	// https: public_url is https, so cookies are Secure and __Host-.
	https bool
	csp   string

	keyMu sync.Mutex
	aead  cipher.AEAD
}

// Options are optional collaborators.
type Options struct {
	Logger *slog.Logger
	// HTTPClient calls token endpoints (nil: a client with a 10 s timeout).
	HTTPClient *http.Client
	Now        func() time.Time
	// Limits are shared across reloads (nil: fresh ones).
	Limits   *Limits
	Observer Observer
}

// New returns a linker for cfg over store.
func New(cfg *config.Config, store gateway.SecretStore, opts Options) (*Linker, error) {
	pages, err := template.ParseFS(templates.FS, "*.html")
	if err != nil {
		return nil, fmt.Errorf("link pages: %w", err)
	}
	l := &Linker{cfg: cfg, store: store, log: opts.Logger, pages: pages, client: opts.HTTPClient,
		now: opts.Now, limits: opts.Limits, observer: opts.Observer,
		https: strings.HasPrefix(cfg.Server.PublicURL, "https://")}
	if l.log == nil {
		l.log = slog.Default()
	}
	if l.client == nil {
		l.client = &http.Client{Timeout: 10 * time.Second}
	}
	if l.now == nil {
		l.now = time.Now
	}
	if l.limits == nil {
		l.limits = NewLimits(0)
	}
	l.csp = contentSecurityPolicy(cfg)
	return l, nil
}

func (l *Linker) observe(step, result string) {
	if l.observer != nil {
		l.observer.LinkStep(step, result)
	}
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
	if errors.Is(err, errBusy) {
		return Busy, nil
	}
	if err != nil {
		l.observe("code", "error")
		return "", err
	}
	return fmt.Sprintf("To use %s, open %s/link and enter code %s", svc.Name, l.cfg.Server.PublicURL, spell(code)), nil
}

func spell(code string) string { return strings.Join(strings.Split(code, ""), " ") }

var errBusy = errors.New("code ceiling reached")

// code returns the user's pending code for svc, or creates one.
func (l *Linker) code(ctx context.Context, service, userID string) (string, error) {
	now := l.now()
	pending := pendingPath + userID + "/" + service
	e, err := l.store.Read(ctx, pending)
	switch {
	case err == nil:
		code := e.Data[fieldCode].Reveal()
		if c, err := l.store.Read(ctx, codesPath+code); err == nil && validCode(c, userID, service, now) {
			l.observe("code", "repeated")
			return code, nil
		}
	case !errors.Is(err, gateway.ErrNotFound):
		return "", err
	}
	if !l.limits.Codes.AllowN(now, 1) {
		l.log.Warn("link code ceiling reached", "service", service)
		l.observe("code", "ceiling")
		return "", errBusy
	}
	for range 5 {
		code, err := randomCode()
		if err != nil {
			return "", err
		}
		data := gateway.SecretData{
			fieldCode:    gateway.Secret(code),
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
		// The pending index is overwritten, so an expired one is replaced
		// on the user's next turn.
		if _, err := l.store.Write(ctx, pending, gateway.SecretData{fieldCode: gateway.Secret(code)}, -1); err != nil {
			return "", err
		}
		l.observe("code", "created")
		return code, nil
	}
	return "", errors.New("no free link code")
}

// recyclable returns the check-and-set version to create code with: 0 for
// a new entry, or the version of an entry whose code and last possible
// flow are over (a flow starts before the code expires and lasts at most
// FlowTTL = RecycleAfter).
func (l *Linker) recyclable(ctx context.Context, code string) int {
	e, err := l.store.Read(ctx, codesPath+code)
	if err != nil {
		return 0
	}
	exp, err := time.Parse(time.RFC3339, e.Data["expires_at"].Reveal())
	if err != nil || l.now().Sub(exp) <= RecycleAfter {
		return 0
	}
	return e.Version
}

// validCode reports whether e is a code that can still be entered (for
// userID and service when userID is set).
func validCode(e *gateway.Entry, userID, service string, now time.Time) bool {
	if e.Data[fieldUsed] != "" || submissions(e) >= MaxSubmissions {
		return false
	}
	exp, err := time.Parse(time.RFC3339, e.Data["expires_at"].Reveal())
	if err != nil || !now.Before(exp) {
		return false
	}
	return userID == "" || (e.Data["user_id"].Reveal() == userID && e.Data["service"].Reveal() == service)
}

func submissions(e *gateway.Entry) int {
	n, _ := strconv.Atoi(e.Data[fieldSubmissions].Reveal())
	return n
}

// freshFlow reports whether a browser's flow for the code is running.
func freshFlow(e *gateway.Entry, now time.Time) bool {
	until, err := time.Parse(time.RFC3339, e.Data[fieldFlowUntil].Reveal())
	return err == nil && now.Before(until) && e.Data[fieldBrowser] != ""
}

func randomCode() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%06d", n.Int64()), nil
}

// stateAEAD returns the cipher that seals OAuth state parameters, keyed
// from a secret created once in the secret store (check-and-set, so
// replicas agree on one key).
func (l *Linker) stateAEAD(ctx context.Context) (cipher.AEAD, error) {
	l.keyMu.Lock()
	defer l.keyMu.Unlock()
	if l.aead != nil {
		return l.aead, nil
	}
	for range 3 {
		e, err := l.store.Read(ctx, stateKeyPath)
		if err == nil {
			key, err := base64.StdEncoding.DecodeString(e.Data["key"].Reveal())
			if err != nil || len(key) < 32 {
				return nil, errors.New("state key in the secret store is malformed")
			}
			return l.setKey(key)
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
			return l.setKey(key)
		}
		if !errors.Is(err, gateway.ErrConflict) {
			return nil, err
		}
	}
	return nil, errors.New("could not agree on a state key")
}

// setKey derives the AES-256-GCM key of states from the stored secret.
func (l *Linker) setKey(secret []byte) (cipher.AEAD, error) {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("voicegw link state v2"))
	block, err := aes.NewCipher(mac.Sum(nil))
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	l.aead = aead
	return aead, nil
}

// state is what the sealed OAuth state parameter carries. Sealed with
// AES-GCM, it is opaque: neither the code nor the user can be read from
// it, and it cannot be forged.
type state struct {
	Code string `json:"c,omitempty"`
	// Flow names a flow started by Begin instead of a code.
	Flow    string `json:"f,omitempty"`
	Nonce   string `json:"n"`
	Expires int64  `json:"e"`
}

func sealState(aead cipher.AEAD, s state) string {
	payload, _ := json.Marshal(s)
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(payload)+aead.Overhead())
	_, _ = rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, payload, nil))
}

func (l *Linker) openState(aead cipher.AEAD, raw string) (state, error) {
	var s state
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil || len(b) < aead.NonceSize()+aead.Overhead() {
		return s, errors.New("malformed state")
	}
	payload, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], nil)
	if err != nil {
		return s, errors.New("state does not authenticate")
	}
	if json.Unmarshal(payload, &s) != nil {
		return s, errors.New("malformed state")
	}
	if l.now().Unix() > s.Expires {
		return s, errors.New("state expired")
	}
	return s, nil
}

// browserHash is what the code entry keeps of a binding cookie.
func browserHash(cookie string) gateway.Secret {
	sum := sha256.Sum256([]byte(cookie))
	return gateway.Secret(base64.RawURLEncoding.EncodeToString(sum[:]))
}

// contentSecurityPolicy allows forms to post only to the gateway itself
// and to redirect only to the configured providers' origins.
func contentSecurityPolicy(cfg *config.Config) string {
	origins := map[string]bool{}
	for _, svc := range cfg.Services {
		if svc.OAuth2 == nil {
			continue
		}
		if u, err := url.Parse(svc.OAuth2.AuthURL); err == nil && u.Host != "" {
			origins[u.Scheme+"://"+u.Host] = true
		}
	}
	action := "'self'"
	for _, o := range slices.Sorted(maps.Keys(origins)) {
		action += " " + o
	}
	return "default-src 'none'; style-src 'unsafe-inline'; form-action " + action + "; frame-ancestors 'none'; base-uri 'none'"
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

// Forget deletes what the gateway keeps of a user who removed the skill,
// for every linked service of the configuration: the linked token at
// users/<userId>/<service> (the store deletes every version), the pending
// link code link-codes/pending/<userId>/<service> and the code entry it
// names when that code is still the user's. It logs the services and how
// many entries went, never a token or code.
func (l *Linker) Forget(ctx context.Context, userID string) error {
	if !gateway.ValidUser(userID) {
		return errors.New("forget: malformed user id")
	}
	var errs []error
	var services []string
	for _, name := range slices.Sorted(maps.Keys(l.cfg.Services)) {
		if svc := l.cfg.Services[name]; svc == nil || svc.Auth.Type != config.AuthLinked {
			continue
		}
		services = append(services, name)
		pending := pendingPath + userID + "/" + name
		e, err := l.store.Read(ctx, pending)
		switch {
		case err == nil:
			code := e.Data[fieldCode].Reveal()
			// A code number is drawn again once it has expired: delete
			// the entry only while it is still this user's.
			if c, err := l.store.Read(ctx, codesPath+code); err == nil && c.Data["user_id"].Reveal() == userID && code != "" {
				errs = append(errs, l.store.Delete(ctx, codesPath+code))
			} else if err != nil && !errors.Is(err, gateway.ErrNotFound) {
				errs = append(errs, err)
			}
			errs = append(errs, l.store.Delete(ctx, pending))
		case !errors.Is(err, gateway.ErrNotFound):
			errs = append(errs, err)
		}
		errs = append(errs, l.store.Delete(ctx, gateway.UserPath(userID, name)))
	}
	err := errors.Join(errs...)
	result := "done"
	if err != nil {
		result = "failed"
	}
	l.log.LogAttrs(ctx, slog.LevelInfo, "user forgotten",
		slog.String("result", result), slog.Any("services", services))
	return err
}
