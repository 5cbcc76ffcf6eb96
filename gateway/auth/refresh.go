package auth

import (
	"context"
	"errors"
	"fmt"
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
// one call.
func (p *Provider) refresh(ctx context.Context, svc *config.Service, path string, seen *gateway.Entry) (*gateway.Entry, error) {
	v, err, _ := p.group.Do("refresh\x00"+path, func() (any, error) {
		return p.refreshOnce(ctx, svc, path, seen)
	})
	if err != nil {
		return nil, err
	}
	return v.(*gateway.Entry), nil
}

func (p *Provider) refreshOnce(ctx context.Context, svc *config.Service, path string, seen *gateway.Entry) (*gateway.Entry, error) {
	if !refreshable(svc, seen) {
		return nil, ErrUnlinked
	}
	cur, err := p.store.Read(ctx, path)
	if err != nil {
		return nil, storeError(path, err)
	}
	if cur.Data[FieldAccessToken] != seen.Data[FieldAccessToken] && !expiring(cur, p.now()) && !locked(cur, p.now()) {
		p.remember(path, cur) // another replica refreshed already
		return cur, nil
	}
	if locked(cur, p.now()) {
		return p.awaitRefresh(ctx, svc, path, seen)
	}
	lockData := clone(cur.Data)
	lockData[fieldRefreshLock] = gateway.Secret(p.now().Add(refreshLockTTL).Format(time.RFC3339Nano))
	lockVersion, err := p.store.Write(ctx, path, lockData, cur.Version)
	if errors.Is(err, gateway.ErrConflict) {
		return p.awaitRefresh(ctx, svc, path, seen)
	}
	if err != nil {
		return nil, storeError(path, err)
	}
	tok, rerr := p.exchange(ctx, svc, cur.Data[FieldRefreshToken].Reveal())
	next := clone(cur.Data)
	delete(next, fieldRefreshLock)
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
	// Write the new token, or release the lock after a failed refresh.
	version, err := p.store.Write(ctx, path, next, lockVersion)
	if errors.Is(err, gateway.ErrConflict) {
		// Someone (ops relinking) wrote meanwhile: theirs wins.
		e, err := p.store.Read(ctx, path)
		if err != nil {
			return nil, storeError(path, err)
		}
		p.remember(path, e)
		return e, nil
	}
	if err != nil {
		if rerr != nil {
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
		return nil, rerr
	}
	e := &gateway.Entry{Data: next, Version: version}
	p.remember(path, e)
	return e, nil
}

// awaitRefresh waits for the replica holding the lock to write its token.
func (p *Provider) awaitRefresh(ctx context.Context, svc *config.Service, path string, seen *gateway.Entry) (*gateway.Entry, error) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		e, err := p.store.Read(ctx, path)
		if err != nil {
			return nil, storeError(path, err)
		}
		if !locked(e, p.now()) {
			if e.Data[FieldAccessToken] != seen.Data[FieldAccessToken] {
				p.remember(path, e)
				return e, nil
			}
			if e.Data[fieldRefreshLock] != "" {
				// A stale lock: take over with a fresh refresh.
				return p.refreshOnce(ctx, svc, path, seen)
			}
			return nil, ErrUnlinked // the refresh was refused
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// exchange asks the token endpoint for a new token.
func (p *Provider) exchange(ctx context.Context, svc *config.Service, refreshToken string) (*oauth2.Token, error) {
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
		if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode >= 400 && re.Response.StatusCode < 500 {
			return nil, fmt.Errorf("%s: refresh refused (%d): %w", svc.Name, re.Response.StatusCode, ErrUnlinked)
		}
		return nil, fmt.Errorf("%s: %w", svc.Name, ErrRefresh)
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
