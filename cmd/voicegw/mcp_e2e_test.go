package main

// End-to-end tests of the MCP platform (SPEC 13) with clients nobody here
// wrote: the official TypeScript SDK's client (scripts/mcp-client.mjs,
// installed by scripts/install-mcp-client.sh) and the Go SDK's client,
// against the gateway as serve wires it, a real Vault with a token of
// scripts/voicegw-policy.hcl, the fake OAuth provider and a fake upstream.

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdkauth "github.com/modelcontextprotocol/go-sdk/auth"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/voicegw/voicegw/gateway/alexa"
	"github.com/voicegw/voicegw/gateway/linking/linkingtest"
	"github.com/voicegw/voicegw/gateway/mcp/mcptest"
	"github.com/voicegw/voicegw/gateway/server"
	"github.com/voicegw/voicegw/gateway/vault"
	"github.com/voicegw/voicegw/gateway/vault/vaulttest"
)

const (
	mcpAppID        = "amzn1.ask.skill.mcpstocks"
	mcpClientID     = "voicegw-mcp-e2e"
	mcpClientSecret = "cs-mcp-e2e-0f1e2d3c4b5a6978"
	mcpSay          = "Amazon is trading at 123.45 dollars."
)

// mcpConfig is one skill for both assistants: Alexa and MCP clients.
const mcpConfig = `version: 1
server:
  public_url: ${VGW_PUBLIC_URL}
alexa:
  verify: false
vault:
  address: ${VAULT_ADDR}
  kv_mount: secret
  prefix: voicegw
services:
  quotes:
    base_url: ${VGW_UPSTREAM}
    auth: { type: linked }
    oauth2:
      auth_url: ${VGW_PROVIDER}/authorize
      token_url: ${VGW_PROVIDER}/token
      client_id: ` + mcpClientID + `
skills:
  stocks:
    application_id: ` + mcpAppID + `
    invocation: stock buddy
    types:
      STOCK_SYMBOL:
        - { value: AMZN, synonyms: [amazon] }
    intents:
      GetQuote:
        description: The current price of a stock.
        samples: ["what is {Symbol} trading at"]
        slots:
          Symbol: { type: STOCK_SYMBOL, required: true, prompt: "Which stock?" }
        call:
          service: quotes
          path: /v1/quote/{{ .slots.Symbol }}
          extract:
            name: data.name
            price: { path: data.price, required: true }
        say: "{{ .name }} is trading at {{ .price }} dollars."
mcp:
  enabled: true
  skills: [stocks]
`

// mcpEnv is a running gateway with Vault, the provider and the upstream.
type mcpEnv struct {
	vault    *vaulttest.Server
	provider *linkingtest.Provider
	gateway  *httptest.Server
	cfgFile  string
	logs     *syncBuffer
	mu       sync.Mutex
	auths    []string // Authorization headers the upstream saw
}

func startMCP(t *testing.T) *mcpEnv {
	t.Helper()
	e := &mcpEnv{vault: vaulttest.Start(t), logs: &syncBuffer{}}
	policyToken := e.vault.PolicyToken(t, "../../scripts/voicegw-policy.hcl")
	e.vault.Put(t, "voicegw/services/quotes", map[string]any{"client_secret": mcpClientSecret})
	e.provider = linkingtest.NewProvider(t, linkingtest.Config{ClientID: mcpClientID, ClientSecret: mcpClientSecret, RequirePKCE: true})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		e.mu.Lock()
		e.auths = append(e.auths, auth)
		e.mu.Unlock()
		tok := strings.TrimPrefix(auth, "Bearer ")
		if tok == auth || !e.provider.Live(tok) && tok != "alexa-user-token" || r.URL.Path != "/v1/quote/AMZN" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(e2eQuote))
	}))
	t.Cleanup(up.Close)
	var handler atomic.Pointer[http.Handler]
	e.gateway = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*handler.Load()).ServeHTTP(w, r) }))
	t.Cleanup(e.gateway.Close)
	for k, v := range map[string]string{"VAULT_ADDR": e.vault.Addr, "VGW_PUBLIC_URL": e.gateway.URL,
		"VGW_UPSTREAM": up.URL, "VGW_PROVIDER": e.provider.URL} {
		t.Setenv(k, v)
	}
	e.cfgFile = filepath.Join(t.TempDir(), "mcp.yaml")
	if err := os.WriteFile(e.cfgFile, []byte(mcpConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := mustE2EConfig(t, mcpConfig)
	log := newLogger(e.logs, -4)
	store, err := vault.New(cfg.Vault, vault.Options{Logger: log, Token: policyToken})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	h := server.New(newDeps(log).runtime(cfg, store), nil, log).Handler()
	handler.Store(&h)
	return e
}

// alexaSays is what an Echo user hears for "what is amazon trading at":
// Alexa resolves "amazon" to AMZN by entity resolution, which the built
// envelope leaves out, so it names AMZN.
func (e *mcpEnv) alexaSays(t *testing.T, user string) string {
	t.Helper()
	body := alexa.BuildRequest(alexa.RequestSpec{ApplicationID: mcpAppID, UserID: user, Type: "IntentRequest",
		Intent: "GetQuote", Slots: map[string]string{"Symbol": "AMZN"}})
	status, out := e2ePost(t, http.DefaultClient, e.gateway.URL+"/alexa", nil, body)
	return e2eSpeech(t, status, out)
}

// subjects lists the MCP subjects with linked tokens in Vault.
func (e *mcpEnv) subjects(t *testing.T) []string {
	t.Helper()
	sec, err := e.vault.Client().Logical().List("secret/metadata/voicegw/users")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	if sec != nil {
		keys, _ := sec.Data["keys"].([]any)
		for _, k := range keys {
			if s := strings.TrimSuffix(fmt.Sprint(k), "/"); strings.HasPrefix(s, "mcp.") {
				out = append(out, s)
			}
		}
	}
	return out
}

var hexKey = regexp.MustCompile(`^[0-9a-f]{64}$`)

// checkTokensHashed: every key under mcp-tokens/ is a SHA-256, and no
// entry holds a token of voicegw's own.
func (e *mcpEnv) checkTokensHashed(t *testing.T) {
	t.Helper()
	sec, err := e.vault.Client().Logical().List("secret/metadata/voicegw/mcp-tokens")
	if err != nil || sec == nil {
		t.Fatalf("list mcp-tokens: %v", err)
	}
	keys, _ := sec.Data["keys"].([]any)
	n := 0
	for _, k := range keys {
		key := fmt.Sprint(k)
		if key == "grants/" {
			continue
		}
		n++
		if !hexKey.MatchString(key) {
			t.Errorf("mcp-tokens/%s is not a SHA-256 hash", key)
		}
		data := readVault(t, e.vault, "mcp-tokens/"+key)
		for f, v := range data {
			if strings.Contains(fmt.Sprint(v), "vgw_") {
				t.Errorf("mcp-tokens/%s field %s holds a token", key, f)
			}
		}
	}
	if n < 2 {
		t.Errorf("mcp-tokens holds %d tokens, want an access and a refresh token at least", n)
	}
	if strings.Contains(e.logs.String(), "vgw_at_") || strings.Contains(e.logs.String(), "vgw_rt_") {
		t.Errorf("a token of voicegw's own was logged")
	}
	for _, s := range e.provider.Secrets() {
		if strings.Contains(e.logs.String(), s) {
			t.Errorf("a provider secret was logged")
		}
	}
}

// TestMCPTypeScriptClientE2E: the official TypeScript SDK's client, which
// has never seen the skill, registers itself, links the user's quotes
// account through the provider, lists the tools and hears the same answer
// as an Echo user.
func TestMCPTypeScriptClientE2E(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	dir := os.Getenv("VOICEGW_MCP_CLIENT_DIR")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache", "voicegw", "mcp-client")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@modelcontextprotocol", "sdk", "package.json")); err != nil {
		t.Fatalf("the MCP TypeScript SDK is not in %s: run scripts/install-mcp-client.sh (make test does)", dir)
	}
	e := startMCP(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "../../scripts/mcp-client.mjs", e.gateway.URL+"/mcp", "stocks_GetQuote", `{"Symbol": "amazon"}`)
	cmd.Env = append(os.Environ(), "VOICEGW_MCP_CLIENT_DIR="+dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("mcp-client.mjs: %v\nstdout:\n%s\nstderr:\n%s\ngateway log:\n%s", err, stdout.String(), stderr.String(), e.logs.String())
	}
	out := stdout.String()
	t.Logf("TypeScript client transcript:\n%s", out)
	for _, want := range []string{
		"registered: client ",
		"authorize: " + e.gateway.URL + "/oauth/authorize (PKCE S256)",
		`consent: "Connect voicegw e2e (TypeScript SDK)?" -> Allow`,
		"tokens: Bearer access token for 3600 s, with a refresh token: true",
		"connected: voicegw ",
		"tool: stocks_GetQuote - The current price of a stock. (readOnlyHint true)",
		"text: " + mcpSay,
		`structuredContent: {"name":"Amazon","price":123.45}`,
		"isError: false",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("transcript lacks %q", want)
		}
	}
	subjects := e.subjects(t)
	if len(subjects) != 1 {
		t.Fatalf("Vault has MCP subjects %v, want one", subjects)
	}
	if tok := fmt.Sprint(readVault(t, e.vault, "users/"+subjects[0]+"/quotes")["access_token"]); !e.provider.Live(tok) {
		t.Errorf("users/%s/quotes does not hold the provider's token", subjects[0])
	}
	e.checkTokensHashed(t)

	// The Echo user with a linked account hears the same sentence.
	const user = "amzn1.ask.account.MCPE2E"
	e.vault.Put(t, "voicegw/users/"+user+"/quotes", map[string]any{"access_token": "alexa-user-token", "token_type": "Bearer"})
	if got := e.alexaSays(t, user); got != mcpSay {
		t.Errorf("Alexa says %q, the MCP client heard %q\n%s", got, mcpSay, e.logs.String())
	}
}

// TestMCPGoClientVault: the Go SDK's client through the whole flow over
// Vault with the policy's token; `voicegw link rm --user <subject>` then
// revokes its tokens.
func TestMCPGoClientVault(t *testing.T) {
	e := startMCP(t)
	const redirect = "http://127.0.0.1:1/callback"
	browser := mcptest.NewBrowser(redirect)
	handler, err := sdkauth.NewAuthorizationCodeHandler(&sdkauth.AuthorizationCodeHandlerConfig{
		DynamicClientRegistrationConfig: &sdkauth.DynamicClientRegistrationConfig{
			Metadata: &oauthex.ClientRegistrationMetadata{RedirectURIs: []string{redirect}, ClientName: "go-sdk-e2e"},
		},
		RedirectURL: redirect,
		AuthorizationCodeFetcher: func(ctx context.Context, args *sdkauth.AuthorizationArgs) (*sdkauth.AuthorizationResult, error) {
			u, status, _, err := browser.Authorize(ctx, args.URL)
			if err != nil {
				return nil, err
			}
			if u == nil || u.Query().Get("code") == "" {
				return nil, fmt.Errorf("authorization ended with %d", status)
			}
			return &sdkauth.AuthorizationResult{Code: u.Query().Get("code"), State: u.Query().Get("state"), Iss: u.Query().Get("iss")}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	client := sdk.NewClient(&sdk.Implementation{Name: "go-sdk-e2e", Version: "1"}, nil)
	cs, err := client.Connect(context.Background(), &sdk.StreamableClientTransport{Endpoint: e.gateway.URL + "/mcp", OAuthHandler: handler}, nil)
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, e.logs.String())
	}
	defer cs.Close()
	res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "stocks_GetQuote", Arguments: map[string]any{"Symbol": "AMZN"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Content) != 1 || res.Content[0].(*sdk.TextContent).Text != mcpSay || res.IsError {
		t.Fatalf("result = %+v", res.Content)
	}
	e.checkTokensHashed(t)

	subjects := e.subjects(t)
	if len(subjects) != 1 {
		t.Fatalf("Vault has MCP subjects %v, want one", subjects)
	}
	ts, err := handler.TokenSource(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ts.Token()
	if err != nil {
		t.Fatal(err)
	}
	status := func() int {
		req, _ := http.NewRequest(http.MethodPost, e.gateway.URL+"/mcp", strings.NewReader(
			`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := status(); s != http.StatusOK {
		t.Fatalf("tools/list with the token = %d", s)
	}
	t.Setenv("VAULT_TOKEN", e.vault.Token)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"link", "rm", "-c", e.cfgFile, "--user", subjects[0]}, &stdout, &stderr); code != 0 {
		t.Fatalf("link rm: exit %d: %s", code, stderr.String())
	}
	if want := "revoked the MCP tokens of " + subjects[0] + "\nremoved users/" + subjects[0] + "/quotes\n"; stdout.String() != want {
		t.Errorf("link rm printed %q, want %q", stdout.String(), want)
	}
	if s := status(); s != http.StatusUnauthorized {
		t.Fatalf("tools/list after link rm = %d, want 401", s)
	}
	if readVault(t, e.vault, "users/"+subjects[0]+"/quotes") != nil {
		t.Errorf("link rm left the subject's quotes token")
	}
}
