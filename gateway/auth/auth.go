// Package auth finds the credential a service call carries: nothing, the
// Alexa-managed access token, a service secret or the user's linked token,
// the last two read through a gateway.SecretStore with a per-path cache.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/config"
)

// Errors the engine turns into speech.
var (
	// ErrUnlinked: the user has no token for the service.
	ErrUnlinked = errors.New("account not linked")
	// ErrVault: the secret store could not be read and nothing usable is cached.
	ErrVault = errors.New("secret store unavailable")
)

// StaleFactor: while Vault fails, a cached entry serves for up to this
// many times cache_ttl after it was read (SPEC 4).
const StaleFactor = 10

// RereadInterval: an upstream 401 or 403 re-reads a path from the store at
// most once per this interval, however many turns see it (SPEC 10).
const RereadInterval = time.Second

// Credential is what a call carries.
type Credential struct {
	// Token is the access token or the secret field's value.
	Token gateway.Secret
	// Fields are all fields of the secret (type secret).
	Fields gateway.SecretData
	// path and version identify the entry it came from.
	path    string
	version int
}

// Provider resolves credentials. A nil store behaves as a gateway without
// Vault: linked services are unlinked and secret services unavailable.
//
// Reads of one path are shared and detached from the turns that wait for
// them: a read gets vault.timeout, a turn waits at most what is left of
// it. Once a read has failed, turns that find a stale entry (younger than
// StaleFactor x ttl) are served from it at once while one background read
// per path retries with back-off, as Vault Agent and consul-template keep
// serving the last good value.
type Provider struct {
	// observe counts cache and Vault outcomes (never nil).
	observe Observer
	store   gateway.SecretStore
	ttl     time.Duration
	timeout time.Duration
	now     func() time.Time

	// httpClient calls token endpoints (nil: http.DefaultClient).
	httpClient *http.Client
	log        *slog.Logger

	mu       sync.Mutex
	cache    map[string]*cached
	flights  map[string]*flight
	retrying map[string]bool
	rereads  map[string]time.Time
	// down: the last read of any path failed. Stale entries of every path
	// then serve at once, so an intent with several services costs one
	// timeout, not one per service.
	down    bool
	inserts int
	group   singleflight.Group

	stop     chan struct{}
	stopOnce sync.Once
}

type cached struct {
	entry *gateway.Entry
	at    time.Time
	// failing: the last read of the path failed.
	failing bool
	// staleLogged: a stale serve of this entry was logged.
	staleLogged bool
}

// flight is one read of a path in progress.
type flight struct {
	done  chan struct{}
	entry *gateway.Entry
	err   error
}

// New returns a provider over store with entries cached for ttl and reads
// bounded by config.DefaultVaultTimeout (see WithTimeout).
func New(store gateway.SecretStore, ttl time.Duration) *Provider {
	if ttl <= 0 {
		ttl = config.DefaultCacheTTL
	}
	return &Provider{
		store: store, ttl: ttl, timeout: config.DefaultVaultTimeout, now: time.Now, log: slog.Default(),
		cache: map[string]*cached{}, flights: map[string]*flight{}, retrying: map[string]bool{}, rereads: map[string]time.Time{},
		stop: make(chan struct{}), observe: nopObserver{},
	}
}

// Observer counts what the provider does, for metrics; every result is a
// fixed word, never a path or a user.
type Observer interface {
	// SecretCache counts a credential lookup: hit (fresh in the cache),
	// miss (read from the store) or stale (served from the cache past its
	// ttl because the store fails).
	SecretCache(result string)
	// VaultRead counts a read that reached the store: ok, not_found, error.
	VaultRead(result string)
	// TokenRefresh counts a linked token's refresh: ok, refused (the user
	// must link again) or failed (provider or store trouble, timeout).
	TokenRefresh(result string)
}

type nopObserver struct{}

func (nopObserver) SecretCache(string)  {}
func (nopObserver) VaultRead(string)    {}
func (nopObserver) TokenRefresh(string) {}

// WithObserver sets who counts the provider's outcomes.
func (p *Provider) WithObserver(o Observer) *Provider {
	if o != nil {
		p.observe = o
	}
	return p
}

// WithLogger sets the logger for failures that do not fail the turn.
func (p *Provider) WithLogger(l *slog.Logger) *Provider {
	p.log = l
	return p
}

// WithHTTPClient sets the client for OAuth2 token endpoints.
func (p *Provider) WithHTTPClient(c *http.Client) *Provider {
	p.httpClient = c
	return p
}

// WithTimeout sets vault.timeout, the bound of one store read.
func (p *Provider) WithTimeout(d time.Duration) *Provider {
	if d > 0 {
		p.timeout = d
	}
	return p
}

// Close stops the background reads. The provider still answers from its
// cache and reads in the foreground.
func (p *Provider) Close() {
	p.stopOnce.Do(func() { close(p.stop) })
}

// rememberLocked caches e as the current entry at path.
func (p *Provider) rememberLocked(path string, e *gateway.Entry) {
	now := p.now()
	p.cache[path] = &cached{entry: e, at: now}
	// Every so often drop what can no longer serve even as a stale entry,
	// so the cache holds the users of the last 10 x ttl, not all users ever.
	p.inserts++
	if p.inserts%sweepEvery == 0 {
		for k, c := range p.cache {
			if now.Sub(c.at) >= StaleFactor*p.ttl {
				delete(p.cache, k)
			}
		}
		for k, t := range p.rereads {
			if now.Sub(t) >= RereadInterval {
				delete(p.rereads, k)
			}
		}
	}
}

// remember caches e as the current entry at path.
func (p *Provider) remember(path string, e *gateway.Entry) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rememberLocked(path, e)
}

// sweepEvery is how many cache inserts pass between sweeps.
const sweepEvery = 1024

// CacheLen returns how many entries the cache holds.
func (p *Provider) CacheLen() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.cache)
}

// Get returns the credential svc needs for the turn's user, or nil for
// auth type none.
func (p *Provider) Get(ctx context.Context, svc *config.Service, turn *gateway.Turn) (*Credential, error) {
	switch svc.Auth.Type {
	case config.AuthAlexa:
		if turn.AccessToken == "" {
			return nil, ErrUnlinked
		}
		return &Credential{Token: turn.AccessToken}, nil
	case config.AuthSecret:
		e, path, err := p.read(ctx, gateway.ServicePath(svc.Name))
		if errors.Is(err, gateway.ErrNotFound) {
			return nil, fmt.Errorf("%s: %w", path, ErrVault)
		}
		if err != nil {
			return nil, err
		}
		tok, ok := e.Data[svc.Auth.Field]
		if !ok || tok == "" {
			return nil, fmt.Errorf("%s has no field %q: %w", path, svc.Auth.Field, ErrVault)
		}
		return &Credential{Token: tok, Fields: e.Data, path: path, version: e.Version}, nil
	case config.AuthLinked:
		if !gateway.ValidUser(turn.UserID) {
			return nil, ErrUnlinked
		}
		e, path, err := p.read(ctx, gateway.UserPath(turn.UserID, svc.Name))
		if errors.Is(err, gateway.ErrNotFound) {
			return nil, ErrUnlinked
		}
		if err != nil {
			return nil, err
		}
		now := p.now()
		// While Vault fails, a token that still works is used as it is:
		// a refresh could not be stored anyway.
		if expiring(e, now) && refreshable(svc, e) && (expired(e, now) || !p.isDown()) {
			fresh, err := p.refresh(ctx, svc, path, e)
			switch {
			case err == nil:
				e = fresh
			case errors.Is(err, ErrUnlinked):
				// The provider refused the grant: the user must relink.
				return nil, err
			case !expired(e, p.now()):
				// The provider or Vault failed, but the token still works
				// for a little while: use it.
				p.log.Warn("token refresh failed, using the current token", "service", svc.Name, "error", err.Error())
			case errors.Is(err, ErrVault):
				return nil, err
			default:
				// A provider 5xx, timeout or connection error with an
				// expired token: the default speech, never a relink.
				return nil, fmt.Errorf("%s: token expired, refresh failed: %v: %w", svc.Name, err, ErrRefresh)
			}
		}
		return linkedCredential(e, path)
	}
	return nil, nil
}

func linkedCredential(e *gateway.Entry, path string) (*Credential, error) {
	tok := e.Data[FieldAccessToken]
	if tok == "" {
		return nil, ErrUnlinked
	}
	return &Credential{Token: tok, Fields: e.Data, path: path, version: e.Version}, nil
}

// Rejected is called when the upstream answered status 401 or 403 with
// cred. It re-reads the entry (at most once per RereadInterval per path),
// so a rotation in Vault takes effect at once; for a linked token that the
// re-read did not change, it refreshes the token when it can. It returns
// the new credential, or nil when there is nothing new to retry with. A
// linked token that got a 401 and cannot be refreshed (no refresh token,
// or the grant refused) is ErrUnlinked: the user must link again.
func (p *Provider) Rejected(ctx context.Context, svc *config.Service, turn *gateway.Turn, cred *Credential, status int) (*Credential, error) {
	if cred == nil || cred.path == "" {
		return nil, nil
	}
	p.reread(ctx, cred.path, cred.version)
	fresh, err := p.Get(ctx, svc, turn)
	if err != nil {
		return nil, err
	}
	if fresh.Token != cred.Token {
		return fresh, nil
	}
	if svc.Auth.Type != config.AuthLinked {
		return nil, nil
	}
	seen := &gateway.Entry{Data: fresh.Fields, Version: fresh.version}
	if !refreshable(svc, seen) {
		if status == http.StatusUnauthorized {
			return nil, fmt.Errorf("%s: token refused and no refresh token: %w", svc.Name, ErrUnlinked)
		}
		return nil, nil
	}
	e, err := p.refresh(ctx, svc, cred.path, seen)
	if err != nil {
		return nil, err
	}
	return linkedCredential(e, cred.path)
}

// reread reads path again after an upstream refused the entry of version:
// unless the cache already holds another version, a read is in flight
// (joined) or the path was re-read within RereadInterval.
func (p *Provider) reread(ctx context.Context, path string, version int) {
	if p.store == nil {
		return
	}
	p.mu.Lock()
	if c := p.cache[path]; c != nil && c.entry.Version != version {
		p.mu.Unlock()
		return
	}
	f := p.flights[path]
	if f == nil {
		now := p.now()
		if last, ok := p.rereads[path]; ok && now.Sub(last) < RereadInterval {
			p.mu.Unlock()
			return
		}
		p.rereads[path] = now
		f = p.flightLocked(path)
	}
	p.mu.Unlock()
	select {
	case <-f.done:
	case <-ctx.Done():
	}
}

func (p *Provider) isDown() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.down
}

// read returns the entry at path from the cache or the store.
func (p *Provider) read(ctx context.Context, path string) (*gateway.Entry, string, error) {
	if p.store == nil {
		if strings.HasPrefix(path, "users/") {
			return nil, path, gateway.ErrNotFound
		}
		return nil, path, fmt.Errorf("no vault configured: %w", ErrVault)
	}
	p.mu.Lock()
	now := p.now()
	c := p.cache[path]
	if c != nil && now.Sub(c.at) < p.ttl {
		p.mu.Unlock()
		p.observe.SecretCache("hit")
		return c.entry, path, nil
	}
	usable := c != nil && now.Sub(c.at) < StaleFactor*p.ttl
	if usable && (c.failing || p.down) {
		p.staleLocked(path, c)
		p.mu.Unlock()
		return c.entry, path, nil
	}
	f := p.flightLocked(path)
	p.mu.Unlock()
	p.observe.SecretCache("miss")

	// A turn with a stale entry to fall back on waits for the read at most
	// half of what is left of it, so that it can still make its call.
	var limit <-chan time.Time
	if usable {
		if dl, ok := ctx.Deadline(); ok {
			t := time.NewTimer(time.Until(dl) / 2)
			defer t.Stop()
			limit = t.C
		}
	}
	select {
	case <-f.done:
		if f.err == nil {
			return f.entry, path, nil
		}
		if errors.Is(f.err, gateway.ErrNotFound) {
			return nil, path, f.err
		}
	case <-ctx.Done():
	case <-limit:
	}
	p.mu.Lock()
	if c = p.cache[path]; c != nil && p.now().Sub(c.at) < StaleFactor*p.ttl {
		if p.now().Sub(c.at) >= p.ttl {
			p.staleLocked(path, c)
		} // else the read has just succeeded after all
		p.mu.Unlock()
		return c.entry, path, nil
	}
	p.mu.Unlock()
	select {
	case <-f.done:
		return nil, path, fmt.Errorf("read %s: %v: %w", path, f.err, ErrVault)
	default:
		// The read goes on for the turns after this one.
		return nil, path, fmt.Errorf("read %s: no answer within the turn: %w", path, ErrVault)
	}
}

// staleLocked notes that c serves past its ttl: the first time it is
// logged, and a background read of path retries until it succeeds.
func (p *Provider) staleLocked(path string, c *cached) {
	p.observe.SecretCache("stale")
	if !c.staleLogged {
		c.staleLogged = true
		p.log.Warn("vault unavailable, serving a stale secret", "path", path,
			"age", p.now().Sub(c.at).Round(time.Millisecond).String(),
			"serves_until", c.at.Add(StaleFactor*p.ttl).UTC().Format(time.RFC3339))
	}
	if !p.retrying[path] {
		p.retrying[path] = true
		go p.retry(path, c.failing)
	}
}

// flightLocked returns the read of path in flight, starting one if none
// is. The read is detached from every turn and bounded by p.timeout.
func (p *Provider) flightLocked(path string) *flight {
	if f := p.flights[path]; f != nil {
		return f
	}
	f := &flight{done: make(chan struct{})}
	p.flights[path] = f
	go p.fetch(path, f)
	return f
}

func (p *Provider) fetch(path string, f *flight) {
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	e, err := p.store.Read(ctx, path)
	cancel()
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.flights, path)
	switch {
	case err == nil:
		p.observe.VaultRead("ok")
		p.rememberLocked(path, e)
		p.down = false
	case errors.Is(err, gateway.ErrNotFound):
		p.observe.VaultRead("not_found")
		delete(p.cache, path)
		p.down = false
	default:
		p.observe.VaultRead("error")
		p.down = true
		if c := p.cache[path]; c != nil {
			c.failing = true
		}
	}
	f.entry, f.err = e, err
	close(f.done)
}

// Back-off of the background reads of a failing path.
const retryMin = 250 * time.Millisecond

// retry reads path in the background until a read succeeds, the entry is
// too old to serve, or the provider is closed. wait: the path's own read
// has just failed, so the first attempt waits.
func (p *Provider) retry(path string, wait bool) {
	defer func() {
		p.mu.Lock()
		delete(p.retrying, path)
		p.mu.Unlock()
	}()
	maxWait := min(max(p.ttl, time.Second), 30*time.Second)
	step := retryMin
	for {
		if wait {
			d := step/2 + time.Duration(rand.Int64N(int64(step)))
			t := time.NewTimer(d)
			select {
			case <-p.stop:
				t.Stop()
				return
			case <-t.C:
			}
			step = min(2*step, maxWait)
		}
		wait = true
		p.mu.Lock()
		c := p.cache[path]
		if c == nil || p.now().Sub(c.at) >= StaleFactor*p.ttl || !c.failing && !p.down {
			// Gone, too old to serve (the next turn reads in the
			// foreground), or refreshed by another read meanwhile.
			p.mu.Unlock()
			return
		}
		f := p.flightLocked(path)
		p.mu.Unlock()
		select {
		case <-p.stop:
			return
		case <-f.done:
		}
		if f.err == nil || errors.Is(f.err, gateway.ErrNotFound) {
			return
		}
	}
}

// Forget drops every cached entry of a user (users/<userId>/…), after the
// user's entries were deleted from the store.
func (p *Provider) Forget(userID string) {
	prefix := "users/" + userID + "/"
	p.mu.Lock()
	defer p.mu.Unlock()
	for k := range p.cache {
		if strings.HasPrefix(k, prefix) {
			delete(p.cache, k)
		}
	}
}
