// Package auth finds the credential a service call carries: nothing, the
// Alexa-managed access token, a service secret or the user's linked token,
// the last two read through a gateway.SecretStore with a per-path cache.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// ReadTimeout bounds one secret store read, so that a hanging Vault costs
// a turn at most this much before stale or error speech.
const ReadTimeout = 2 * time.Second

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
type Provider struct {
	store gateway.SecretStore
	ttl   time.Duration
	now   func() time.Time

	// httpClient calls token endpoints (nil: http.DefaultClient).
	httpClient *http.Client
	log        *slog.Logger

	mu      sync.Mutex
	cache   map[string]cached
	inserts int
	group   singleflight.Group
}

type cached struct {
	entry *gateway.Entry
	at    time.Time
}

// New returns a provider over store with entries cached for ttl.
func New(store gateway.SecretStore, ttl time.Duration) *Provider {
	if ttl <= 0 {
		ttl = config.DefaultCacheTTL
	}
	return &Provider{store: store, ttl: ttl, now: time.Now, cache: map[string]cached{}, log: slog.Default()}
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

// remember caches e as the current entry at path.
func (p *Provider) remember(path string, e *gateway.Entry) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	p.cache[path] = cached{entry: e, at: now}
	// Every so often drop what can no longer serve even as a stale entry,
	// so the cache holds the users of the last 10 x ttl, not all users ever.
	p.inserts++
	if p.inserts%sweepEvery == 0 {
		for k, c := range p.cache {
			if now.Sub(c.at) >= 10*p.ttl {
				delete(p.cache, k)
			}
		}
	}
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
		if expiring(e, p.now()) && refreshable(svc, e) {
			fresh, err := p.refresh(ctx, svc, path, e)
			switch {
			case err == nil:
				e = fresh
			case expired(e, p.now()) || errors.Is(err, ErrUnlinked):
				return nil, err
			default:
				// The token endpoint or Vault failed, but the token still
				// works for a little while: use it.
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

// Rejected is called when the upstream answered 401 or 403 with cred. It
// drops the cached entry and re-reads it, so a rotation in Vault takes
// effect at once; for a linked token that the re-read did not change, it
// refreshes the token when the service has oauth2. It returns the new
// credential, or nil when there is nothing new to retry with.
func (p *Provider) Rejected(ctx context.Context, svc *config.Service, turn *gateway.Turn, cred *Credential) (*Credential, error) {
	if cred == nil || cred.path == "" {
		return nil, nil
	}
	p.mu.Lock()
	if c, ok := p.cache[cred.path]; ok && c.entry.Version == cred.version {
		delete(p.cache, cred.path)
	}
	p.mu.Unlock()
	fresh, err := p.Get(ctx, svc, turn)
	if err != nil {
		return nil, err
	}
	if fresh.Token != cred.Token {
		return fresh, nil
	}
	if svc.Auth.Type != config.AuthLinked || !refreshable(svc, &gateway.Entry{Data: fresh.Fields}) {
		return nil, nil
	}
	e, err := p.refresh(ctx, svc, cred.path, &gateway.Entry{Data: fresh.Fields, Version: fresh.version})
	if err != nil {
		return nil, err
	}
	return linkedCredential(e, cred.path)
}

// read returns the entry at path from the cache or the store. Concurrent
// misses share one read; a stale entry serves for up to 10 x ttl while the
// store fails.
func (p *Provider) read(ctx context.Context, path string) (*gateway.Entry, string, error) {
	if p.store == nil {
		if len(path) > 6 && path[:6] == "users/" {
			return nil, path, gateway.ErrNotFound
		}
		return nil, path, fmt.Errorf("no vault configured: %w", ErrVault)
	}
	now := p.now()
	p.mu.Lock()
	c, ok := p.cache[path]
	p.mu.Unlock()
	if ok && now.Sub(c.at) < p.ttl {
		return c.entry, path, nil
	}
	v, err, _ := p.group.Do(path, func() (any, error) {
		// A read that finished between the cache check above and this
		// flight has cached the entry already: one read per path and ttl.
		p.mu.Lock()
		fresh, hit := p.cache[path]
		p.mu.Unlock()
		if hit && p.now().Sub(fresh.at) < p.ttl {
			return fresh.entry, nil
		}
		// The read is shared: it must not fail because the first caller's
		// turn ended, and a hanging Vault must leave the turn time to answer.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ReadTimeout)
		defer cancel()
		e, err := p.store.Read(rctx, path)
		if err != nil {
			return nil, err
		}
		p.remember(path, e)
		return e, nil
	})
	if err == nil {
		return v.(*gateway.Entry), path, nil
	}
	if errors.Is(err, gateway.ErrNotFound) {
		p.mu.Lock()
		delete(p.cache, path)
		p.mu.Unlock()
		return nil, path, err
	}
	if ok && now.Sub(c.at) < 10*p.ttl {
		return c.entry, path, nil
	}
	if ctx.Err() != nil {
		return nil, path, fmt.Errorf("read %s: %w", path, ctx.Err())
	}
	return nil, path, fmt.Errorf("read %s: %v: %w", path, err, ErrVault)
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
