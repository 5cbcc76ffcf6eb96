package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"golang.org/x/oauth2"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/config"
)

// Linked token fields in the secret store (SPEC 4).
const (
	FieldAccessToken  = "access_token"
	FieldRefreshToken = "refresh_token"
	FieldTokenType    = "token_type"
	FieldExpiresAt    = "expires_at"
	FieldClientSecret = "client_secret"
	// fieldRefreshLock marks an entry whose token one replica is
	// refreshing, until the RFC 3339 time it holds.
	fieldRefreshLock = "refresh_lock_until"
	// fieldRefreshRefused records when the provider refused the entry's
	// refresh token, so that replicas waiting on the lock learn it and no
	// one asks the provider again with a dead grant. A new link replaces
	// the whole entry and with it this field.
	fieldRefreshRefused = "refresh_refused_at"
)

// refreshSkew: a token expiring within this is refreshed before use.
const refreshSkew = 60 * time.Second

// refreshLockTTL bounds how long a crashed replica's lock blocks others.
const refreshLockTTL = 10 * time.Second

// ErrRefresh: the token endpoint could not be reached or answered
// unexpectedly (a refusal is ErrUnlinked instead).
var ErrRefresh = errors.New("token refresh failed")

// expiring reports whether a linked entry's token expires within skew.
func expiring(e *gateway.Entry, now time.Time) bool {
	raw := e.Data[FieldExpiresAt].Reveal()
	if raw == "" {
		return false
	}
	t, err := time.Parse(time.RFC3339, raw)
	if err != nil {
		return false
	}
	return t.Sub(now) < refreshSkew
}

// expired reports whether a linked entry's token has expired.
func expired(e *gateway.Entry, now time.Time) bool {
	t, err := time.Parse(time.RFC3339, e.Data[FieldExpiresAt].Reveal())
	return err == nil && !now.Before(t)
}

// refreshable reports whether a linked token can be refreshed: the service
// has oauth2 and the entry a refresh token.
func refreshable(svc *config.Service, e *gateway.Entry) bool {
	return svc.OAuth2 != nil && e.Data[FieldRefreshToken] != ""
}

// refused reports whether the provider refused the entry's refresh token.
func refused(e *gateway.Entry) bool { return e.Data[fieldRefreshRefused] != "" }

func locked(e *gateway.Entry, now time.Time) bool {
	raw := e.Data[fieldRefreshLock].Reveal()
	if raw == "" {
		return false
	}
	t, err := time.Parse(time.RFC3339Nano, raw)
	return err == nil && now.Before(t)
}

// refresh renews the linked token at path with its refresh token. Across
// replicas one wins a check-and-set lock on the entry and refreshes; the
// others wait for its result, so the provider sees one refresh and Vault
// ends with one valid token. Concurrent refreshes in this process share
// one call; each caller waits for it at most until its ctx ends.
//
// The shared call runs detached from the turn that started it, bounded by
// the refresh lock's lifetime: cutting a token request off after the
// provider has answered would lose a rotated refresh token, and the turns
// waiting with more time left would lose the refresh too. While the
// current token still works, a caller waits for the refresh at most half
// of what is left of its turn, so the turn can still make its call with
// the current token when the provider or the other replica is slow.
func (p *Provider) refresh(ctx context.Context, svc *config.Service, path string, seen *gateway.Entry) (*gateway.Entry, error) {
	detached := context.WithoutCancel(ctx)
	ch := p.group.DoChan("refresh\x00"+path, func() (any, error) {
		rctx, cancel := context.WithTimeout(detached, refreshLockTTL)
		defer cancel()
		return p.refreshOnce(rctx, svc, path, seen)
	})
	if !expired(seen, p.now()) {
		if dl, ok := ctx.Deadline(); ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, time.Now().Add(time.Until(dl)/2))
			defer cancel()
		}
	}
	select {
	case r := <-ch:
		switch {
		case r.Err == nil:
			p.observe.TokenRefresh("ok")
			return r.Val.(*gateway.Entry), nil
		case errors.Is(r.Err, ErrUnlinked):
			p.observe.TokenRefresh("refused")
		default:
			p.observe.TokenRefresh("failed")
		}
		return nil, r.Err
	case <-ctx.Done():
		p.observe.TokenRefresh("failed")
		return nil, fmt.Errorf("%s: no refresh within the turn: %w", svc.Name, ErrRefresh)
	}
}

// detached returns a context for a write that must happen even when the
// turn that started it has ended: releasing the refresh lock, storing a
// token the provider has issued. It has its own short timeout.
func (p *Provider) detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), p.timeout)
}

func (p *Provider) refreshOnce(ctx context.Context, svc *config.Service, path string, seen *gateway.Entry) (*gateway.Entry, error) {
	if !refreshable(svc, seen) {
		return nil, ErrUnlinked
	}
	cur, err := p.store.Read(ctx, path)
	if err != nil {
		return nil, storeError(path, err)
	}
	if refused(cur) {
		p.remember(path, cur)
		return nil, fmt.Errorf("%s: refresh token refused earlier: %w", svc.Name, ErrUnlinked)
	}
	now := p.now()
	if cur.Data[FieldAccessToken] != seen.Data[FieldAccessToken] && !expiring(cur, now) && !locked(cur, now) {
		p.remember(path, cur) // another replica refreshed already
		return cur, nil
	}
	if locked(cur, now) {
		return p.awaitRefresh(ctx, svc, path, seen)
	}
	// Not locked, or locked by a replica whose refresh_lock_until has
	// passed (it died or hung): take the lock over with check-and-set.
	if !refreshable(svc, cur) {
		return nil, ErrUnlinked
	}
	lockData := clone(cur.Data)
	lockData[fieldRefreshLock] = gateway.Secret(now.Add(refreshLockTTL).Format(time.RFC3339Nano))
	lockVersion, err := p.store.Write(ctx, path, lockData, cur.Version)
	if errors.Is(err, gateway.ErrConflict) {
		return p.awaitRefresh(ctx, svc, path, seen)
	}
	if err != nil {
		return nil, storeError(path, err)
	}
	// From here on the lock is ours: whatever happens to the turn, the
	// entry is written back (new token or lock released) on a detached
	// context.
	tok, rerr := p.exchange(ctx, svc, cur.Data[FieldRefreshToken].Reveal())
	next := clone(cur.Data)
	delete(next, fieldRefreshLock)
	if errors.Is(rerr, ErrUnlinked) {
		next[fieldRefreshRefused] = gateway.Secret(p.now().UTC().Format(time.RFC3339))
	}
	if rerr == nil {
		next[FieldAccessToken] = gateway.Secret(tok.AccessToken)
		if tok.RefreshToken != "" {
			next[FieldRefreshToken] = gateway.Secret(tok.RefreshToken)
		}
		if tok.TokenType != "" {
			next[FieldTokenType] = gateway.Secret(tok.TokenType)
		}
		if !tok.Expiry.IsZero() {
			next[FieldExpiresAt] = gateway.Secret(tok.Expiry.UTC().Format(time.RFC3339))
		} else {
			delete(next, FieldExpiresAt)
		}
	}
	wctx, cancel := p.detached(ctx)
	defer cancel()
	version, err := p.store.Write(wctx, path, next, lockVersion)
	if errors.Is(err, gateway.ErrConflict) {
		// Someone (ops relinking) wrote meanwhile: theirs wins.
		e, err := p.store.Read(wctx, path)
		if err != nil {
			return nil, storeError(path, err)
		}
		p.remember(path, e)
		return e, nil
	}
	if err != nil {
		if rerr != nil {
			p.log.Error("refresh lock not released", "path", path, "error", err.Error())
			return nil, rerr
		}
		// The provider issued a token but Vault would not take it: use it
		// here rather than lose it; other replicas refresh again once the
		// lock expires.
		p.log.Error("refreshed token not stored", "path", path, "error", err.Error())
		e := &gateway.Entry{Data: next, Version: lockVersion}
		p.remember(path, e)
		return e, nil
	}
	if rerr != nil {
		// The lock is released and the entry unchanged.
		p.remember(path, &gateway.Entry{Data: next, Version: version})
		return nil, rerr
	}
	e := &gateway.Entry{Data: next, Version: version}
	p.remember(path, e)
	return e, nil
}

// awaitRefresh waits for the replica holding the lock to write its token,
// at most until ctx ends. A lock released without a new token means the
// other replica's refresh failed or was refused; this replica cannot tell
// which, so it is no reason to relink (ErrRefresh: the current token is
// used while it works). A lock past its refresh_lock_until is taken over.
func (p *Provider) awaitRefresh(ctx context.Context, svc *config.Service, path string, seen *gateway.Entry) (*gateway.Entry, error) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: another replica's refresh did not finish within the turn: %w", svc.Name, ErrRefresh)
		case <-t.C:
		}
		e, err := p.store.Read(ctx, path)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%s: another replica's refresh did not finish within the turn: %w", svc.Name, ErrRefresh)
			}
			return nil, storeError(path, err)
		}
		if locked(e, p.now()) {
			continue
		}
		if e.Data[FieldAccessToken] != seen.Data[FieldAccessToken] {
			p.remember(path, e)
			return e, nil
		}
		if e.Data[fieldRefreshLock] != "" {
			// A stale lock: take over with a fresh refresh.
			return p.refreshOnce(ctx, svc, path, seen)
		}
		if refused(e) {
			p.remember(path, e)
			return nil, fmt.Errorf("%s: the provider refused the refresh: %w", svc.Name, ErrUnlinked)
		}
		return nil, fmt.Errorf("%s: another replica's refresh failed: %w", svc.Name, ErrRefresh)
	}
}

// exchange asks the token endpoint for a new token, within the service's
// timeout. Only a 400 or 401 answer (e.g. invalid_grant) is a refusal
// (ErrUnlinked); a 5xx, a timeout or a connection error is ErrRefresh.
func (p *Provider) exchange(ctx context.Context, svc *config.Service, refreshToken string) (*oauth2.Token, error) {
	ctx, cancel := context.WithTimeout(ctx, svc.Timeout.Or(config.DefaultServiceTimeout))
	defer cancel()
	secret := ""
	if e, _, err := p.read(ctx, gateway.ServicePath(svc.Name)); err == nil {
		secret = e.Data[FieldClientSecret].Reveal()
	} else if !errors.Is(err, gateway.ErrNotFound) {
		return nil, err
	}
	conf := OAuth2Config(svc, secret, "")
	if p.httpClient != nil {
		ctx = context.WithValue(ctx, oauth2.HTTPClient, p.httpClient)
	}
	tok, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: refreshToken, Expiry: time.Unix(1, 0)}).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil {
			switch code := re.Response.StatusCode; code {
			case http.StatusBadRequest, http.StatusUnauthorized:
				return nil, fmt.Errorf("%s: refresh refused (%d %s): %w", svc.Name, code, re.ErrorCode, ErrUnlinked)
			default:
				return nil, fmt.Errorf("%s: token endpoint answered %d: %w", svc.Name, code, ErrRefresh)
			}
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: token endpoint timed out: %w", svc.Name, ErrRefresh)
		}
		return nil, fmt.Errorf("%s: token endpoint unreachable: %w", svc.Name, ErrRefresh)
	}
	return tok, nil
}

// OAuth2Config is the golang.org/x/oauth2 configuration of a linked
// service, shared by token refresh and the account-linking flow.
func OAuth2Config(svc *config.Service, clientSecret, redirectURL string) *oauth2.Config {
	o := svc.OAuth2
	return &oauth2.Config{
		ClientID:     o.ClientID,
		ClientSecret: clientSecret,
		Endpoint:     oauth2.Endpoint{AuthURL: o.AuthURL, TokenURL: o.TokenURL},
		RedirectURL:  redirectURL,
		Scopes:       o.Scopes,
	}
}

func clone(d gateway.SecretData) gateway.SecretData {
	out := make(gateway.SecretData, len(d)+1)
	for k, v := range d {
		out[k] = v
	}
	return out
}

func storeError(path string, err error) error {
	if errors.Is(err, gateway.ErrNotFound) {
		return ErrUnlinked
	}
	return fmt.Errorf("%s: %v: %w", path, err, ErrVault)
}
