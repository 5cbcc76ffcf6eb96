package mcp_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdkauth "github.com/modelcontextprotocol/go-sdk/auth"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/time/rate"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/inmem"
	"github.com/voicegw/voicegw/gateway/linking"
	"github.com/voicegw/voicegw/gateway/linking/linkingtest"
	"github.com/voicegw/voicegw/gateway/mcp"
	"github.com/voicegw/voicegw/gateway/mcp/mcptest"
	"github.com/voicegw/voicegw/gateway/ratelimit"
)

// linkedYAML exposes a skill whose tool needs the user's linked quotes
// account; PUBLIC, UPSTREAM and PROVIDER are replaced.
const linkedYAML = `version: 1
alexa: { verify: false }
server: { public_url: PUBLIC }
services:
  quotes:
    base_url: UPSTREAM
    auth: { type: linked }
    oauth2: { auth_url: PROVIDER/authorize, token_url: PROVIDER/token, client_id: voicegw-client }
skills:
  stocks:
    types:
      STOCK_SYMBOL: [{ value: AMZN, synonyms: [amazon] }]
    intents:
      GetQuote:
        description: The current price of a stock.
        samples: ["what is {Symbol} trading at"]
        slots: { Symbol: { type: STOCK_SYMBOL, required: true, prompt: "Which stock?" } }
        call:
          service: quotes
          path: /v1/quote/{{ .slots.Symbol }}
          extract: { name: data.name, price: { path: data.price, required: true } }
        say: "{{ .name }} is trading at {{ .price }} dollars."
mcp:
  enabled: true
  skills: [stocks]
  clients:
    alexa-plus: { redirect_uris: ["https://alexa.example.com/cb"] }
`

// clientRedirect is where the test clients want the code; nothing
// listens there: the browser stops before following it.
const clientRedirect = "http://127.0.0.1:1/callback"

// clock is the authorization server's clock, moved by tests.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time      { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) add(d time.Duration) { c.offset.Add(int64(d)) }

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testGateway is voicegw's MCP and linking paths over real HTTP, with the
// fake provider and an upstream that wants the provider's tokens.
type testGateway struct {
	URL      string
	store    gateway.SecretStore
	provider *linkingtest.Provider
	auth     *mcp.AuthServer
	clock    *clock
	log      *syncBuffer
	// secrets are values that must never be logged.
	secretsMu sync.Mutex
	secrets   []string
	// auths are the Authorization headers the upstream saw.
	authsMu sync.Mutex
	auths   []string
	// refused are provider tokens the upstream answers 401.
	refused sync.Map
}

func (g *testGateway) secret(s string) {
	g.secretsMu.Lock()
	g.secrets = append(g.secrets, s)
	g.secretsMu.Unlock()
}

// MustGateway serves linkedYAML over store (nil: in memory) with the
// static client alexa-plus's secret "alexa-secret".
func MustGateway(t *testing.T, store gateway.SecretStore) *testGateway {
	t.Helper()
	return MustGatewayWith(t, store, mcp.AuthOptions{})
}

// MustGatewayWith is MustGateway with the authorization server's limits
// of opts.
func MustGatewayWith(t *testing.T, store gateway.SecretStore, opts mcp.AuthOptions) *testGateway {
	t.Helper()
	g := &testGateway{clock: &clock{}, log: &syncBuffer{}}
	g.provider = linkingtest.NewProvider(t, linkingtest.Config{ClientID: "voicegw-client", ClientSecret: "provider-secret", RequirePKCE: true})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.authsMu.Lock()
		g.auths = append(g.auths, r.Header.Get("Authorization"))
		g.authsMu.Unlock()
		if _, no := g.refused.Load(r.Header.Get("Authorization")); no || !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(`{"data": {"name": "Amazon", "price": 123.45}}`))
	}))
	t.Cleanup(up.Close)
	var h atomic.Pointer[http.Handler]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*h.Load()).ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	g.URL = srv.URL
	src := strings.NewReplacer("PUBLIC", srv.URL, "UPSTREAM", up.URL, "PROVIDER", g.provider.URL).Replace(linkedYAML)
	cfg := MustConfig(t, src, "")
	if store == nil {
		store = inmem.New(nil)
	}
	g.store = store
	ctx := context.Background()
	for path, data := range map[string]gateway.SecretData{
		"services/quotes":                         {"client_secret": "provider-secret"},
		mcp.StaticClientSecretPath + "alexa-plus": {"client_secret": "alexa-secret"},
	} {
		if _, err := store.Write(ctx, path, data, -1); err != nil {
			t.Fatal(err)
		}
	}
	g.secret("provider-secret")
	g.secret("alexa-secret")
	log := slog.New(slog.NewTextHandler(g.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	l, err := linking.New(cfg, store, linking.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	opts.Logger, opts.Now = log, g.clock.now
	as := mcp.NewAuthServer(cfg, store, l, opts)
	g.auth = as
	mux := http.NewServeMux()
	mux.Handle("/link", l)
	mux.Handle("/link/", l)
	mux.Handle("/", mcp.New(cfg, MustEngine(cfg, store), as, mcp.Options{Logger: log}))
	var hh http.Handler = mux
	h.Store(&hh)
	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		logged := g.log.String()
		g.secretsMu.Lock()
		defer g.secretsMu.Unlock()
		for _, s := range append(g.secrets, g.provider.Secrets()...) {
			if s != "" && strings.Contains(logged, s) {
				t.Errorf("a secret was logged: %q", s)
			}
		}
	})
	return g
}

// browser is a new user agent with cookies that stops at clientRedirect.
func (g *testGateway) browser(t *testing.T) *mcptest.Browser {
	return mcptest.NewBrowser(clientRedirect)
}

// authorize runs /oauth/authorize in browser b (allowing on the consent
// page) and returns where it ends: the client's redirect URI with a code
// or an error, or else the status and body of the page it stopped at.
func (g *testGateway) authorize(t *testing.T, b *mcptest.Browser, params url.Values) (int, []byte, *url.URL) {
	t.Helper()
	u, status, body, err := b.Authorize(context.Background(), g.URL+"/oauth/authorize?"+params.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if u != nil && u.Query().Get("code") != "" {
		g.secret(u.Query().Get("code"))
	}
	return status, body, u
}

func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// register registers a public client with clientRedirect.
func (g *testGateway) register(t *testing.T) string {
	t.Helper()
	resp, body := post(t, g.URL+"/oauth/register", "application/json", `{"redirect_uris": ["`+clientRedirect+`"], "client_name": "test"}`, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("register = %d %s", resp.StatusCode, body)
	}
	var out struct {
		ClientID string `json:"client_id"`
	}
	_ = json.Unmarshal(body, &out)
	return out.ClientID
}

// code authorizes client with a fresh PKCE pair in a new browser and
// returns the code and its verifier.
func (g *testGateway) code(t *testing.T, client, redirect string) (code, verifier string) {
	t.Helper()
	verifier = strings.Repeat("v", 20) + fmt.Sprint(time.Now().UnixNano()) + "-verifier-0123456789"
	g.secret(verifier)
	_, _, u := g.authorize(t, mcptest.NewBrowser(redirect), url.Values{
		"response_type": {"code"}, "client_id": {client}, "redirect_uri": {redirect},
		"code_challenge": {s256(verifier)}, "code_challenge_method": {"S256"}, "state": {"st"},
	})
	if u == nil || u.Query().Get("code") == "" {
		t.Fatalf("authorize ended at %v", u)
	}
	if u.Query().Get("state") != "st" || u.Query().Get("iss") != g.URL {
		t.Fatalf("authorize answered state %q iss %q", u.Query().Get("state"), u.Query().Get("iss"))
	}
	return u.Query().Get("code"), verifier
}

func post(t *testing.T, u, ctype, body string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

type tokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	Error        string `json:"error"`
}

func (g *testGateway) token(t *testing.T, form url.Values, header http.Header) (int, tokens) {
	t.Helper()
	resp, body := post(t, g.URL+"/oauth/token", "application/x-www-form-urlencoded", form.Encode(), header)
	var tk tokens
	if err := json.Unmarshal(body, &tk); err != nil {
		t.Fatalf("token answer is not JSON: %s", body)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("token answer without Cache-Control: no-store")
	}
	g.secret(tk.AccessToken)
	g.secret(tk.RefreshToken)
	return resp.StatusCode, tk
}

func (g *testGateway) redeem(t *testing.T, client, code, verifier string) (int, tokens) {
	return g.token(t, url.Values{"grant_type": {"authorization_code"}, "client_id": {client},
		"code": {code}, "code_verifier": {verifier}, "redirect_uri": {clientRedirect}}, nil)
}

// mcpStatus is the status of an initialize request with token.
func (g *testGateway) mcpStatus(t *testing.T, token string) int {
	t.Helper()
	h := http.Header{"Accept": {"application/json, text/event-stream"}}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	resp, _ := post(t, g.URL+"/mcp", "application/json",
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`, h)
	return resp.StatusCode
}

// TestGoClientAuthorizesAndCalls: the Go SDK's client discovers the
// authorization server from the 401, registers itself, sends the user
// through the provider's flow, lists the tools and calls the linked one
// with the provider's token.
func TestGoClientAuthorizesAndCalls(t *testing.T) {
	g := MustGateway(t, nil)
	b := g.browser(t)
	handler, err := sdkauth.NewAuthorizationCodeHandler(&sdkauth.AuthorizationCodeHandlerConfig{
		DynamicClientRegistrationConfig: &sdkauth.DynamicClientRegistrationConfig{
			Metadata: &oauthex.ClientRegistrationMetadata{RedirectURIs: []string{clientRedirect}, ClientName: "go-sdk-test"},
		},
		RedirectURL: clientRedirect,
		AuthorizationCodeFetcher: func(ctx context.Context, args *sdkauth.AuthorizationArgs) (*sdkauth.AuthorizationResult, error) {
			u, status, body, err := b.Authorize(ctx, args.URL)
			if err != nil {
				return nil, err
			}
			if u == nil || u.Query().Get("code") == "" {
				return nil, fmt.Errorf("authorization ended with %d at %v: %s", status, u, body)
			}
			g.secret(u.Query().Get("code"))
			return &sdkauth.AuthorizationResult{Code: u.Query().Get("code"), State: u.Query().Get("state"), Iss: u.Query().Get("iss")}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	client := sdk.NewClient(&sdk.Implementation{Name: "go-sdk-test", Version: "1"}, nil)
	cs, err := client.Connect(context.Background(), &sdk.StreamableClientTransport{Endpoint: g.URL + "/mcp", OAuthHandler: handler}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer cs.Close()
	list, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Tools) != 1 || list.Tools[0].Name != "stocks_GetQuote" {
		t.Fatalf("tools = %v", list.Tools)
	}
	res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "stocks_GetQuote", Arguments: map[string]any{"Symbol": "amazon"}})
	if err != nil {
		t.Fatal(err)
	}
	if text(res) != "Amazon is trading at 123.45 dollars." || res.IsError {
		t.Fatalf("result = %q (isError %v)", text(res), res.IsError)
	}
	g.authsMu.Lock()
	auths := append([]string(nil), g.auths...)
	g.authsMu.Unlock()
	if want := "Bearer " + g.provider.LastToken().Access; len(auths) != 1 || auths[0] != want {
		t.Fatalf("upstream saw %d calls, want one with the provider's token", len(auths))
	}
	ts, err := handler.TokenSource(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ts.Token()
	if err != nil {
		t.Fatal(err)
	}
	g.secret(tok.AccessToken)
	g.secret(tok.RefreshToken)

	// A subject whose provider token is gone (and refused upstream) hears
	// how to get it back.
	g.refused.Store("Bearer "+g.provider.LastToken().Access, true)
	info, err := g.auth.Verify(context.Background(), tok.AccessToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.store.Delete(context.Background(), "users/"+info.UserID+"/quotes"); err != nil {
		t.Fatal(err)
	}
	res, err = cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "stocks_GetQuote", Arguments: map[string]any{"Symbol": "AMZN"}})
	if err != nil {
		t.Fatal(err)
	}
	if text(res) != mcp.UnlinkedText || !res.IsError {
		t.Fatalf("unlinked result = %q (isError %v)", text(res), res.IsError)
	}
}

// TestUnauthorized: without a token of voicegw's own, /mcp answers 401
// with the resource metadata, and the Go SDK's client without OAuth
// cannot connect.
func TestUnauthorized(t *testing.T) {
	g := MustGateway(t, nil)
	for _, tok := range []string{"", "vgw_at_forged", strings.Repeat("x", 300)} {
		h := http.Header{"Accept": {"application/json, text/event-stream"}}
		if tok != "" {
			h.Set("Authorization", "Bearer "+tok)
		}
		resp, _ := post(t, g.URL+"/mcp", "application/json", `{}`, h)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("token %.10q: status %d, want 401", tok, resp.StatusCode)
		}
		want := `Bearer resource_metadata="` + g.URL + `/.well-known/oauth-protected-resource"`
		if got := resp.Header.Get("WWW-Authenticate"); got != want {
			t.Fatalf("WWW-Authenticate = %q, want %q", got, want)
		}
	}
	client := sdk.NewClient(&sdk.Implementation{Name: "t", Version: "1"}, nil)
	if _, err := client.Connect(context.Background(), &sdk.StreamableClientTransport{Endpoint: g.URL + "/mcp"}, nil); err == nil {
		t.Fatal("connected without a token")
	}
	// The metadata documents point at each other.
	var prm oauthex.ProtectedResourceMetadata
	getJSON(t, g.URL+"/.well-known/oauth-protected-resource", &prm)
	if prm.Resource != g.URL+"/mcp" || len(prm.AuthorizationServers) != 1 || prm.AuthorizationServers[0] != g.URL {
		t.Fatalf("protected resource metadata = %+v", prm)
	}
	var asm oauthex.AuthServerMeta
	getJSON(t, g.URL+"/.well-known/oauth-authorization-server", &asm)
	if asm.Issuer != g.URL || asm.RegistrationEndpoint != g.URL+"/oauth/register" ||
		len(asm.CodeChallengeMethodsSupported) != 1 || asm.CodeChallengeMethodsSupported[0] != "S256" {
		t.Fatalf("authorization server metadata = %+v", asm)
	}
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d", u, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// TestTokenErrors: every refusal of the token endpoint is the RFC's error
// JSON, and none of them hands out a token.
func TestTokenErrors(t *testing.T) {
	g := MustGateway(t, nil)
	client := g.register(t)
	other := g.register(t)
	type tc struct {
		name       string
		form       func() url.Values
		header     http.Header
		wantStatus int
		wantError  string
	}
	fresh := func() (string, string) { return g.code(t, client, clientRedirect) }
	form := func(code, verifier string) url.Values {
		return url.Values{"grant_type": {"authorization_code"}, "client_id": {client}, "code": {code},
			"code_verifier": {verifier}, "redirect_uri": {clientRedirect}}
	}
	cases := []tc{
		{"wrong verifier", func() url.Values {
			c, _ := fresh()
			return form(c, "wrong-verifier-wrong-verifier-wrong-verifier-0")
		}, nil, 400, "invalid_grant"},
		{"missing verifier", func() url.Values {
			c, _ := fresh()
			return form(c, "")
		}, nil, 400, "invalid_request"},
		{"wrong redirect uri", func() url.Values {
			c, v := fresh()
			f := form(c, v)
			f.Set("redirect_uri", "http://127.0.0.1:1/other")
			return f
		}, nil, 400, "invalid_grant"},
		{"another client's code", func() url.Values {
			c, v := fresh()
			f := form(c, v)
			f.Set("client_id", other)
			return f
		}, nil, 400, "invalid_grant"},
		{"unknown code", func() url.Values { return form("made-up", "made-up-verifier-made-up-verifier-made-up") }, nil, 400, "invalid_grant"},
		{"unknown client", func() url.Values {
			c, v := fresh()
			f := form(c, v)
			f.Set("client_id", "nobody")
			return f
		}, nil, 401, "invalid_client"},
		{"static client without its secret", func() url.Values {
			return url.Values{"grant_type": {"refresh_token"}, "client_id": {"alexa-plus"}, "refresh_token": {"x"}}
		}, nil, 401, "invalid_client"},
		{"static client with a wrong secret", func() url.Values {
			return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}
		}, http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("alexa-plus:wrong"))}}, 401, "invalid_client"},
		{"unsupported grant", func() url.Values {
			return url.Values{"grant_type": {"password"}, "client_id": {client}}
		}, nil, 400, "unsupported_grant_type"},
		{"unknown refresh token", func() url.Values {
			return url.Values{"grant_type": {"refresh_token"}, "client_id": {client}, "refresh_token": {"vgw_rt_nope"}}
		}, nil, 400, "invalid_grant"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, tk := g.token(t, c.form(), c.header)
			if status != c.wantStatus || tk.Error != c.wantError || tk.AccessToken != "" {
				t.Fatalf("got %d %q (token issued: %v), want %d %q", status, tk.Error, tk.AccessToken != "", c.wantStatus, c.wantError)
			}
		})
	}

	t.Run("expired code", func(t *testing.T) {
		c, v := fresh()
		g.clock.add(mcp.CodeTTL + time.Second)
		defer g.clock.add(-(mcp.CodeTTL + time.Second))
		if status, tk := g.token(t, form(c, v), nil); status != 400 || tk.Error != "invalid_grant" {
			t.Fatalf("got %d %q", status, tk.Error)
		}
	})

	t.Run("reused code revokes what it granted", func(t *testing.T) {
		c, v := fresh()
		status, first := g.token(t, form(c, v), nil)
		if status != 200 || first.TokenType != "Bearer" || first.ExpiresIn != 3600 {
			t.Fatalf("first redemption: %d %+v", status, first.Error)
		}
		if s := g.mcpStatus(t, first.AccessToken); s != 200 {
			t.Fatalf("mcp with the first token = %d", s)
		}
		if status, tk := g.token(t, form(c, v), nil); status != 400 || tk.Error != "invalid_grant" {
			t.Fatalf("second redemption: %d %q", status, tk.Error)
		}
		if s := g.mcpStatus(t, first.AccessToken); s != 401 {
			t.Fatalf("mcp with the token of a reused code = %d, want 401", s)
		}
	})
}

// TestRefreshAndRevocation: refresh tokens rotate; an old one coming back
// revokes the grant; expired and revoked tokens answer 401.
func TestRefreshAndRevocation(t *testing.T) {
	g := MustGateway(t, nil)
	client := g.register(t)
	c, v := g.code(t, client, clientRedirect)
	status, tk := g.redeem(t, client, c, v)
	if status != 200 {
		t.Fatalf("redeem = %d %s", status, tk.Error)
	}
	refresh := func(rt, client string) (int, tokens) {
		return g.token(t, url.Values{"grant_type": {"refresh_token"}, "client_id": {client}, "refresh_token": {rt}}, nil)
	}
	other := g.register(t)
	if s, got := refresh(tk.RefreshToken, other); s != 400 || got.Error != "invalid_grant" {
		t.Fatalf("another client's refresh token: %d %q", s, got.Error)
	}
	if s, got := refresh(tk.AccessToken, client); s != 400 || got.Error != "invalid_grant" {
		t.Fatalf("access token as refresh token: %d %q", s, got.Error)
	}
	s, next := refresh(tk.RefreshToken, client)
	if s != 200 || next.RefreshToken == tk.RefreshToken || next.AccessToken == tk.AccessToken {
		t.Fatalf("refresh = %d %q, want a new pair", s, next.Error)
	}
	if st := g.mcpStatus(t, next.AccessToken); st != 200 {
		t.Fatalf("mcp with the refreshed token = %d", st)
	}

	t.Run("expired access token", func(t *testing.T) {
		g.clock.add(mcp.AccessTTL + time.Second)
		defer g.clock.add(-(mcp.AccessTTL + time.Second))
		if st := g.mcpStatus(t, next.AccessToken); st != 401 {
			t.Fatalf("expired token: %d, want 401", st)
		}
	})
	t.Run("expired refresh token", func(t *testing.T) {
		g.clock.add(mcp.RefreshTTL + time.Second)
		defer g.clock.add(-(mcp.RefreshTTL + time.Second))
		if s, got := refresh(next.RefreshToken, client); s != 400 || got.Error != "invalid_grant" {
			t.Fatalf("expired refresh token: %d %q", s, got.Error)
		}
	})
	t.Run("rotated refresh token coming back revokes the grant", func(t *testing.T) {
		if s, got := refresh(tk.RefreshToken, client); s != 400 || got.Error != "invalid_grant" {
			t.Fatalf("reused refresh token: %d %q", s, got.Error)
		}
		if st := g.mcpStatus(t, next.AccessToken); st != 401 {
			t.Fatalf("token after refresh reuse: %d, want 401", st)
		}
		if s, got := refresh(next.RefreshToken, client); s != 400 || got.Error != "invalid_grant" {
			t.Fatalf("refresh after revocation: %d %q", s, got.Error)
		}
	})
	t.Run("revoked by deleting the grant", func(t *testing.T) {
		c, v := g.code(t, client, clientRedirect)
		_, tk := g.redeem(t, client, c, v)
		info, err := g.auth.Verify(context.Background(), tk.AccessToken, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.store.Delete(context.Background(), mcp.GrantPath(info.UserID)); err != nil {
			t.Fatal(err)
		}
		if st := g.mcpStatus(t, tk.AccessToken); st != 401 {
			t.Fatalf("revoked token: %d, want 401", st)
		}
	})
}

// TestStaticClient: a client of mcp.clients authenticates with its secret
// from the store.
func TestStaticClient(t *testing.T) {
	g := MustGateway(t, nil)
	const redirect = "https://alexa.example.com/cb"
	c, v := g.code(t, "alexa-plus", redirect)
	basic := http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("alexa-plus:alexa-secret"))}}
	status, tk := g.token(t, url.Values{"grant_type": {"authorization_code"}, "code": {c}, "code_verifier": {v}, "redirect_uri": {redirect}}, basic)
	if status != 200 || g.mcpStatus(t, tk.AccessToken) != 200 {
		t.Fatalf("static client: %d %q", status, tk.Error)
	}
}

// TestAuthorizeErrors: a bad client or redirect URI is answered to the
// browser, never redirected; other mistakes go back to the client as the
// RFC's error parameters; a flow cannot be finished in another browser.
func TestAuthorizeErrors(t *testing.T) {
	g := MustGateway(t, nil)
	client := g.register(t)
	good := func() url.Values {
		return url.Values{"response_type": {"code"}, "client_id": {client}, "redirect_uri": {clientRedirect},
			"code_challenge": {s256("a-verifier-a-verifier-a-verifier-a-verifier")}, "code_challenge_method": {"S256"}, "state": {"st"}}
	}
	for _, tc := range []struct {
		name     string
		change   func(url.Values)
		status   int    // an answer to the browser
		redirect string // or an error sent back to the client
	}{
		{"unknown client", func(v url.Values) { v.Set("client_id", "nobody") }, 400, ""},
		{"wrong redirect uri", func(v url.Values) { v.Set("redirect_uri", "http://127.0.0.1:1/evil") }, 400, ""},
		{"missing redirect uri", func(v url.Values) { v.Del("redirect_uri") }, 400, ""},
		{"missing PKCE", func(v url.Values) { v.Del("code_challenge"); v.Del("code_challenge_method") }, 0, "invalid_request"},
		{"plain PKCE", func(v url.Values) { v.Set("code_challenge_method", "plain") }, 0, "invalid_request"},
		{"malformed challenge", func(v url.Values) { v.Set("code_challenge", "short") }, 0, "invalid_request"},
		{"token response type", func(v url.Values) { v.Set("response_type", "token") }, 0, "unsupported_response_type"},
		{"another resource", func(v url.Values) { v.Set("resource", "https://elsewhere.example.com/mcp") }, 0, "invalid_target"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := good()
			tc.change(v)
			status, body, u := g.authorize(t, g.browser(t), v)
			if tc.status != 0 {
				if status != tc.status || u != nil || !strings.HasPrefix(string(body), `{"error":`) {
					t.Fatalf("got %d %s to %v, want %d JSON to the browser", status, body, u, tc.status)
				}
				return
			}
			if u == nil || u.Query().Get("error") != tc.redirect || u.Query().Get("state") != "st" || u.Query().Get("code") != "" {
				t.Fatalf("ended at %v, want error=%s back at the client", u, tc.redirect)
			}
		})
	}

	t.Run("user denies", func(t *testing.T) {
		b := g.browser(t)
		b.Deny = true
		_, _, u := g.authorize(t, b, good())
		if u == nil || u.Query().Get("error") != "access_denied" || u.Query().Get("state") != "st" || u.Query().Get("code") != "" {
			t.Fatalf("ended at %v, want error=access_denied back at the client", u)
		}
		if g.provider.Counts().Authorizations != 0 {
			t.Fatalf("the provider saw %d authorizations after a denial", g.provider.Counts().Authorizations)
		}
	})

	t.Run("flow continued in another browser", func(t *testing.T) {
		first := g.browser(t).Client
		resp, err := first.Get(g.URL + "/oauth/authorize?" + good().Encode())
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		flow := mcptest.ConsentFlow(page)
		if resp.StatusCode != http.StatusOK || flow == "" {
			t.Fatalf("authorize = %d without a consent page", resp.StatusCode)
		}
		if !strings.Contains(string(page), "go-sdk") && !strings.Contains(string(page), "test") {
			t.Errorf("the consent page does not name the client")
		}
		allow := url.Values{"flow": {flow}, "decision": {"allow"}}
		// Continuing before consent, or consenting from another browser,
		// gets nowhere.
		if resp, u := g.browserGet(t, first, g.URL+"/oauth/authorize/continue?flow="+flow); resp.StatusCode != http.StatusForbidden || u != nil {
			t.Fatalf("continue before consent: %d to %v, want 403", resp.StatusCode, u)
		}
		if resp, err := g.browser(t).Client.PostForm(g.URL+"/oauth/authorize/consent", allow); err != nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("consent from another browser: %v %v, want 403", resp.StatusCode, err)
		}
		resp, err = first.PostForm(g.URL+"/oauth/authorize/consent", allow)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		// The first browser is sent to the provider; the provider sends
		// it back to /link/callback, which sends it to continue. Another
		// browser with that continue URL gets nothing.
		prov := g.provider.MustAuthorize(t, resp.Header.Get("Location"))
		cb, err := first.Get(prov.String())
		if err != nil {
			t.Fatal(err)
		}
		cb.Body.Close()
		next := cb.Header.Get("Location")
		if !strings.HasPrefix(next, "/oauth/authorize/continue?flow=") {
			t.Fatalf("callback sent the browser to %q", next)
		}
		resp, u := g.browserGet(t, g.browser(t).Client, g.URL+next)
		if resp.StatusCode != http.StatusForbidden || u != nil {
			t.Fatalf("another browser: %d to %v, want 403", resp.StatusCode, u)
		}
		resp, u = g.browserGet(t, first, g.URL+next)
		if u == nil || u.Query().Get("code") == "" {
			t.Fatalf("the first browser: %d to %v, want a code", resp.StatusCode, u)
		}
		g.secret(u.Query().Get("code"))
		// The provider's answer replayed links nothing more.
		replay, err := first.Get(prov.String())
		if err != nil {
			t.Fatal(err)
		}
		replay.Body.Close()
		if replay.StatusCode != http.StatusGone && replay.StatusCode != http.StatusBadRequest {
			t.Fatalf("replayed callback = %d, want 410 (or 400 once the flow is gone)", replay.StatusCode)
		}
		// The finished flow cannot be continued again.
		if resp, u := g.browserGet(t, first, g.URL+next); resp.StatusCode != http.StatusBadRequest || u != nil {
			t.Fatalf("continue after the code: %d to %v, want 400", resp.StatusCode, u)
		}
	})
}

func (g *testGateway) browserGet(t *testing.T, b *http.Client, u string) (*http.Response, *url.URL) {
	t.Helper()
	resp, err := b.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		return resp, nil
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	return resp, loc
}

// TestRegisterErrors: dynamic registration refuses what RFC 7591 and
// OAuth 2.1 refuse.
func TestRegisterErrors(t *testing.T) {
	g := MustGateway(t, nil)
	for _, tc := range []struct{ name, body, want string }{
		{"not JSON", `redirect_uris=x`, "invalid_client_metadata"},
		{"no redirect uri", `{"client_name": "x"}`, "invalid_redirect_uri"},
		{"http redirect off localhost", `{"redirect_uris": ["http://evil.example.com/cb"]}`, "invalid_redirect_uri"},
		{"fragment", `{"redirect_uris": ["https://ok.example.com/cb#x"]}`, "invalid_redirect_uri"},
		{"implicit grant", `{"redirect_uris": ["https://ok.example.com/cb"], "grant_types": ["implicit"]}`, "invalid_client_metadata"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := post(t, g.URL+"/oauth/register", "application/json", tc.body, nil)
			var e struct {
				Error string `json:"error"`
			}
			if resp.StatusCode != 400 || json.Unmarshal(body, &e) != nil || e.Error != tc.want {
				t.Fatalf("got %d %s, want 400 %s", resp.StatusCode, body, tc.want)
			}
		})
	}
}

// TestLimits: past the per-process ceilings, registration answers 429
// and authorization sends temporarily_unavailable back to the client,
// neither writing to the store.
func TestLimits(t *testing.T) {
	g := MustGatewayWith(t, nil, mcp.AuthOptions{Register: rate.NewLimiter(0, 1), Authorize: rate.NewLimiter(0, 0)})
	client := g.register(t)
	resp, body := post(t, g.URL+"/oauth/register", "application/json", `{"redirect_uris": ["`+clientRedirect+`"]}`, nil)
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), `"temporarily_unavailable"`) || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("second registration = %d %s", resp.StatusCode, body)
	}
	_, _, u := g.authorize(t, g.browser(t), url.Values{"response_type": {"code"}, "client_id": {client}, "redirect_uri": {clientRedirect},
		"code_challenge": {s256("a-verifier-a-verifier-a-verifier-a-verifier")}, "code_challenge_method": {"S256"}, "state": {"st"}})
	if u == nil || u.Query().Get("error") != "temporarily_unavailable" || u.Query().Get("state") != "st" {
		t.Fatalf("authorization over the ceiling ended at %v", u)
	}
}

// TestClientLimit: one client address cannot use up the process's
// ceilings; another address still registers.
func TestClientLimit(t *testing.T) {
	g := MustGatewayWith(t, nil, mcp.AuthOptions{Clients: ratelimit.New(2, time.Minute, 0)})
	client := g.register(t)
	g.register(t)
	resp, body := post(t, g.URL+"/oauth/register", "application/json", `{"redirect_uris": ["`+clientRedirect+`"]}`, nil)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third registration from one address = %d %s, want 429", resp.StatusCode, body)
	}
	_, _, u := g.authorize(t, g.browser(t), url.Values{"response_type": {"code"}, "client_id": {client}, "redirect_uri": {clientRedirect},
		"code_challenge": {s256("a-verifier-a-verifier-a-verifier-a-verifier")}, "code_challenge_method": {"S256"}, "state": {"st"}})
	if u == nil || u.Query().Get("error") != "temporarily_unavailable" {
		t.Fatalf("an authorization from the limited address ended at %v", u)
	}
}

// failingTokens fails writes of new tokens while on is set, as a Vault
// that times out would.
type failingTokens struct {
	gateway.SecretStore
	on atomic.Bool
}

func (s *failingTokens) Write(ctx context.Context, path string, data gateway.SecretData, cas int) (int, error) {
	if s.on.Load() && strings.HasPrefix(path, "mcp-tokens/") && cas == 0 {
		return 0, errors.New("vault: timeout")
	}
	return s.SecretStore.Write(ctx, path, data, cas)
}

// TestRetryAfterStoreFailure: when the new tokens cannot be stored, the
// refresh token (or code) is not burnt, so the client's retry succeeds
// instead of counting as reuse and revoking the grant.
func TestRetryAfterStoreFailure(t *testing.T) {
	store := &failingTokens{SecretStore: inmem.New(nil)}
	g := MustGateway(t, store)
	client := g.register(t)
	c, v := g.code(t, client, clientRedirect)
	store.on.Store(true)
	if s, got := g.redeem(t, client, c, v); s != http.StatusServiceUnavailable {
		t.Fatalf("redeem with a failing store = %d %q, want 503", s, got.Error)
	}
	store.on.Store(false)
	s, tk := g.redeem(t, client, c, v)
	if s != 200 {
		t.Fatalf("retried redeem = %d %q, want 200", s, tk.Error)
	}
	refresh := func() (int, tokens) {
		return g.token(t, url.Values{"grant_type": {"refresh_token"}, "client_id": {client}, "refresh_token": {tk.RefreshToken}}, nil)
	}
	store.on.Store(true)
	if s, _ := refresh(); s != http.StatusServiceUnavailable {
		t.Fatalf("refresh with a failing store = %d, want 503", s)
	}
	store.on.Store(false)
	s, next := refresh()
	if s != 200 {
		t.Fatalf("retried refresh = %d %q, want 200 (the grant must stand)", s, next.Error)
	}
	if st := g.mcpStatus(t, next.AccessToken); st != 200 {
		t.Fatalf("mcp with the token of the retried refresh = %d", st)
	}
}

// TestWrongMethods: each OAuth endpoint answers another method with 405,
// Allow and the OAuth error JSON.
func TestWrongMethods(t *testing.T) {
	g := MustGateway(t, nil)
	for _, tc := range []struct{ method, path, allow string }{
		{http.MethodGet, "/oauth/register", "POST"},
		{http.MethodPost, "/oauth/authorize", "GET"},
		{http.MethodPost, "/oauth/authorize/continue", "GET"},
		{http.MethodGet, "/oauth/authorize/consent", "POST"},
		{http.MethodGet, "/oauth/token", "POST"},
	} {
		req, _ := http.NewRequest(tc.method, g.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != tc.allow || !strings.Contains(string(body), `"invalid_request"`) {
			t.Errorf("%s %s = %d, Allow %q: %s", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"), body)
		}
	}
}
