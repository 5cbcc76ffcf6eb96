// Package linkingtest is a fake OAuth2 authorization server for tests of
// account linking: an httptest server whose /authorize sends the browser
// straight back and whose /token checks the client and PKCE and issues
// distinct token pairs, stopped when the test ends.
package linkingtest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"
)

// Config is what a Provider accepts and how it answers.
type Config struct {
	// ClientID is the only client the provider knows.
	ClientID string
	// ClientSecret is the secret /token requires of ClientID, in HTTP
	// Basic auth (URL-encoded, as RFC 6749 says) or in the form.
	ClientSecret string
	// RequirePKCE makes /authorize refuse a request without an S256
	// code_challenge. Without it PKCE is optional, but checked when the
	// client sends a challenge.
	RequirePKCE bool
	// Delay holds every /token answer this long, to widen the window in
	// which concurrent clients race.
	Delay time.Duration
	// OnIssue, when set, is called with every token pair /token issues and
	// the refresh token it redeemed ("" for an authorization code), before
	// the answer is sent. It runs with the provider locked: it must not
	// call the provider.
	OnIssue func(redeemed string, tok Token)
}

// Token is one token pair the provider issued.
type Token struct{ Access, Refresh string }

// Provider is a fake OAuth2 authorization server. GET /authorize sends
// the browser straight back to redirect_uri with a code and the same
// state (or error=access_denied after SetDeny). POST /token checks the
// client id and secret, the redirect_uri and the PKCE verifier against
// the S256 challenge /authorize saw, and issues a distinct token pair for
// grant_type authorization_code and refresh_token; each code and each
// refresh token works once. Its methods are safe for concurrent use.
type Provider struct {
	*httptest.Server
	cfg Config

	mu        sync.Mutex
	deny      bool
	expiresIn time.Duration
	n         int
	counts    Counts
	grants    map[string]*grant
	refreshes map[string]string // live refresh token -> its access token
	live      map[string]bool   // live access tokens
	last      Token
	secrets   []string
}

// grant is an authorization code /authorize issued.
type grant struct {
	challenge, redirectURI string
	used                   bool
}

// NewProvider starts a provider for cfg, issuing tokens that expire in an
// hour, and stops it when tb ends.
func NewProvider(tb testing.TB, cfg Config) *Provider {
	tb.Helper()
	p := &Provider{cfg: cfg, expiresIn: time.Hour,
		grants: map[string]*grant{}, refreshes: map[string]string{}, live: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /authorize", p.serveAuthorize)
	mux.HandleFunc("POST /token", p.serveToken)
	p.Server = httptest.NewServer(mux)
	tb.Cleanup(p.Close)
	return p
}

// S256 returns the PKCE code_challenge of verifier for the method S256.
func S256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// SetDeny makes /authorize answer error=access_denied while deny is true,
// as when the user declines, and grant codes again once it is false.
func (p *Provider) SetDeny(deny bool) {
	p.mu.Lock()
	p.deny = deny
	p.mu.Unlock()
}

// SetExpiresIn sets the expires_in of the tokens issued from now on.
func (p *Provider) SetExpiresIn(d time.Duration) {
	p.mu.Lock()
	p.expiresIn = d
	p.mu.Unlock()
}

// AddRefreshToken makes /token accept rt once, as a refresh token issued
// earlier (say, one a test stored as an existing link).
func (p *Provider) AddRefreshToken(rt string) {
	p.mu.Lock()
	p.refreshes[rt] = ""
	p.mu.Unlock()
}

// LastToken is the token pair issued last.
func (p *Provider) LastToken() Token {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

// Counts are what a Provider has answered so far.
type Counts struct {
	// Authorizations counts the authorization requests answered with a
	// redirect.
	Authorizations int
	// TokenRequests counts the requests to /token, refused ones included.
	TokenRequests int
	// Refreshes counts the refresh_token grants that issued a token pair.
	Refreshes int
}

// Counts returns what the provider has answered so far.
func (p *Provider) Counts() Counts {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts
}

// Live reports whether access is an access token the provider issued and
// has not replaced by a refresh since.
func (p *Provider) Live(access string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.live[access]
}

// Secrets are every code, verifier and token the provider saw or issued,
// for tests that check none of them was logged.
func (p *Provider) Secrets() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.secrets...)
}

// MustAuthorize opens the authorization URL as a browser would and
// returns where the provider sends the browser back to.
func (p *Provider) MustAuthorize(tb testing.TB, authURL string) *url.URL {
	tb.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(authURL)
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		tb.Fatalf("authorize = %d, want 302", resp.StatusCode)
	}
	u, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

// random returns a fresh value for a code or token; p.mu is held.
func (p *Provider) random(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	p.n++
	return fmt.Sprintf("%s-%d-%s", prefix, p.n, base64.RawURLEncoding.EncodeToString(b[:]))
}

func (p *Provider) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	back, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || back.Scheme == "" || q.Get("client_id") != p.cfg.ClientID || q.Get("response_type") != "code" || q.Get("state") == "" {
		http.Error(w, "bad authorization request", http.StatusBadRequest)
		return
	}
	if p.cfg.RequirePKCE && q.Get("code_challenge") == "" {
		http.Error(w, "PKCE with S256 required", http.StatusBadRequest)
		return
	}
	if q.Has("code_challenge") && q.Get("code_challenge_method") != "S256" {
		http.Error(w, "only S256", http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts.Authorizations++
	v := back.Query()
	v.Set("state", q.Get("state"))
	if p.deny {
		v.Set("error", "access_denied")
	} else {
		code := p.random("ac")
		p.grants[code] = &grant{challenge: q.Get("code_challenge"), redirectURI: back.String()}
		p.secrets = append(p.secrets, code)
		v.Set("code", code)
	}
	back.RawQuery = v.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

func tokenError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code})
}

func (p *Provider) serveToken(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.counts.TokenRequests++
	p.mu.Unlock()
	time.Sleep(p.cfg.Delay)
	if err := r.ParseForm(); err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	id, secret, ok := r.BasicAuth()
	if ok {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != p.cfg.ClientID || secret != p.cfg.ClientSecret {
		tokenError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var redeemed string
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		g := p.grants[r.PostForm.Get("code")]
		if g == nil || g.used || g.redirectURI != r.PostForm.Get("redirect_uri") {
			tokenError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		verifier := r.PostForm.Get("code_verifier")
		if verifier != "" {
			p.secrets = append(p.secrets, verifier)
		}
		if (g.challenge == "") != (verifier == "") || (verifier != "" && S256(verifier) != g.challenge) {
			tokenError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		g.used = true
	case "refresh_token":
		redeemed = r.PostForm.Get("refresh_token")
		old, ok := p.refreshes[redeemed]
		if !ok {
			tokenError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		delete(p.refreshes, redeemed)
		delete(p.live, old)
		p.counts.Refreshes++
	default:
		tokenError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	p.last = Token{Access: p.random("at"), Refresh: p.random("rt")}
	p.refreshes[p.last.Refresh] = p.last.Access
	p.live[p.last.Access] = true
	p.secrets = append(p.secrets, p.last.Access, p.last.Refresh)
	if p.cfg.OnIssue != nil {
		p.cfg.OnIssue(redeemed, p.last)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token": p.last.Access, "token_type": "Bearer",
		"expires_in": int(p.expiresIn / time.Second), "refresh_token": p.last.Refresh,
	})
}
