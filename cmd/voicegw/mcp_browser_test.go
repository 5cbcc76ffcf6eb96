package main

// The MCP authorization in real headless Chromium: the consent page,
// the provider's flow through /link/callback, back to the client with a
// code; then the Go SDK's client calls the tool with the tokens. It also
// captures the README's screenshot of the consent page
// (VOICEGW_SCREENSHOTS=1 writes docs/mcp-consent.png).

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// bearer adds a token to every request.
type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

func TestMCPBrowser(t *testing.T) {
	ctx := startLinkFlowBrowser(t)
	e := startMCP(t)
	dir := t.TempDir()
	if os.Getenv("VOICEGW_SCREENSHOTS") == "1" {
		dir = filepath.Join("..", "..", "docs")
	}
	console := watchLinkFlowConsole(ctx)

	// The MCP client's redirect URI: a page on loopback that receives the
	// code, as a desktop assistant's would.
	codes := make(chan url.Values, 1)
	client := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case codes <- r.URL.Query():
		default:
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte("<!doctype html><title>Connected</title><p id=done>Connected.</p>"))
	}))
	t.Cleanup(client.Close)
	redirect := client.URL + "/callback"

	status, body := e2ePost(t, http.DefaultClient, e.gateway.URL+"/oauth/register", nil,
		[]byte(`{"redirect_uris": ["`+redirect+`"], "client_name": "Desk Assistant"}`))
	var reg struct {
		ClientID string `json:"client_id"`
	}
	if status != http.StatusCreated || json.Unmarshal(body, &reg) != nil {
		t.Fatalf("register = %d %s", status, body)
	}
	verifier := "browser-verifier-" + strings.Repeat("0123456789", 4)
	sum := sha256.Sum256([]byte(verifier))
	auth := e.gateway.URL + "/oauth/authorize?" + url.Values{
		"response_type": {"code"}, "client_id": {reg.ClientID}, "redirect_uri": {redirect},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
		"state": {"s-1"}, "resource": {e.gateway.URL + "/mcp"},
	}.Encode()

	page := linkFlowOpen(t, ctx, auth)
	if page.Status != http.StatusOK {
		t.Fatalf("authorize in the browser = %d", page.Status)
	}
	if h1 := linkFlowText(t, ctx, "consent"); h1 != "Connect Desk Assistant?" {
		t.Errorf("consent page says %q", h1)
	}
	linkFlowShot(t, ctx, dir, "mcp-consent.png")
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.ID("allow")))
	if err != nil {
		t.Fatalf("allow: %v", err)
	}
	if resp.Status != http.StatusOK || !strings.HasPrefix(resp.URL, redirect+"?") {
		t.Fatalf("the browser ended on %s with %d, want the client's redirect URI", resp.URL, resp.Status)
	}
	got := <-codes
	if got.Get("state") != "s-1" || got.Get("iss") != e.gateway.URL || got.Get("code") == "" {
		t.Fatalf("the client got %v", got)
	}
	if e.provider.Counts().Authorizations != 1 {
		t.Fatalf("the provider saw %d authorizations, want 1", e.provider.Counts().Authorizations)
	}
	if entries := console.Entries(); len(entries) > 0 {
		t.Errorf("the browser logged (a CSP violation?):\n%s", strings.Join(entries, "\n"))
	}

	form := url.Values{"grant_type": {"authorization_code"}, "client_id": {reg.ClientID}, "code": {got.Get("code")},
		"code_verifier": {verifier}, "redirect_uri": {redirect}}
	tr, err := http.PostForm(e.gateway.URL+"/oauth/token", form)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(tr.Body).Decode(&tok)
	tr.Body.Close()
	if err != nil || tr.StatusCode != http.StatusOK {
		t.Fatalf("token = %d %v", tr.StatusCode, err)
	}
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "browser-test", Version: "1"}, nil).Connect(context.Background(),
		&sdk.StreamableClientTransport{Endpoint: e.gateway.URL + "/mcp", HTTPClient: &http.Client{Transport: bearer{tok.AccessToken}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "stocks_GetQuote", Arguments: map[string]any{"Symbol": "amazon"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Content) != 1 || res.Content[0].(*sdk.TextContent).Text != mcpSay || res.IsError {
		t.Fatalf("result = %+v", res.Content)
	}
}
