package scenario_test

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/voicegw/voicegw/gateway/alexa"
	"github.com/voicegw/voicegw/gateway/auth"
	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/gateway/engine"
	"github.com/voicegw/voicegw/gateway/inmem"
	"github.com/voicegw/voicegw/gateway/mcp"
	"github.com/voicegw/voicegw/gateway/scenario"
	"github.com/voicegw/voicegw/gateway/upstream"
)

// MustRunMCP is MustRun with testConfig's skill also exposed to MCP and
// the runner able to send MCP turns.
func MustRunMCP(t *testing.T, sc string) (string, int) {
	t.Helper()
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "config.yaml")
	scFile := filepath.Join(dir, "sc.yaml")
	src := testConfig + "mcp: { enabled: true, auth: none, skills: [stocks] }\n"
	src = strings.Replace(src, "  notes:\n    base_url: https://notes.example.com\n    auth: { type: linked }\n", "  notes:\n    base_url: https://notes.example.com\n", 1)
	if err := os.WriteFile(cfgFile, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(scFile, []byte(sc), 0o600); err != nil {
		t.Fatal(err)
	}
	newEngine := func(cfg *config.Config, store *inmem.Store) *engine.Engine {
		return engine.New(cfg, engine.Options{Caller: upstream.New(upstream.DefaultOptions), Credentials: auth.New(store, 0)})
	}
	var out bytes.Buffer
	r := &scenario.Runner{
		Config: cfgFile,
		Out:    &out,
		Build: func(cfg *config.Config, store *inmem.Store) scenario.Handler {
			return &alexa.Handler{Engine: newEngine(cfg, store)}
		},
		MCP: func(cfg *config.Config, store *inmem.Store) http.Handler {
			return mcp.NewHandler(cfg, newEngine(cfg, store), mcp.Options{UserHeader: scenario.UserHeader})
		},
	}
	failed := r.Run([]string{scFile})
	return strings.ReplaceAll(out.String(), scFile, "SC"), failed
}

// TestMCPTurns: one scenario file tests both assistants: the same stub
// answers an Alexa turn and an MCP turn with the same sentence.
func TestMCPTurns(t *testing.T) {
	out, failed := MustRunMCP(t, `skill: stocks
secrets:
  services/quotes: { api_key: k-1 }
stubs:
  - { service: quotes, method: POST, path: /v2/quote/AMZN, body: { price: 12.5 } }
  - { service: quotes, method: POST, path: /v2/quote/NOPE, status: 404, body: {} }
  - { service: notes, path: /latest, body: { note: buy milk } }
turns:
  - intent: GetQuote
    slots: { Symbol: AMZN }
    expect: { say: AMZN is at 12.5. }
  - tool: stocks_GetQuote
    arguments: { Symbol: AMZN }
    expect:
      say: AMZN is at 12.5.
      is_error: false
      values: { price: 12.5 }
      request: { path: /v2/quote/AMZN, headers: { X-Api-Key: k-1 } }
  - tool: stocks_GetQuote
    arguments: { Symbol: NOPE }
    expect: { say: Unknown symbol., is_error: true }
  - tool: stocks_GetQuote
    expect: { say: "Which stock?", is_error: true, no_request: true }
  - tool: stocks_ReadNote
    expect: { say: "Note: buy milk" }
`)
	if failed != 0 {
		t.Fatalf("failed %d:\n%s", failed, out)
	}

	out, failed = MustRunMCP(t, `skill: stocks
secrets:
  services/quotes: { api_key: k-1 }
stubs:
  - { service: quotes, method: POST, path: /v2/quote/AMZN, body: { price: 12.5 } }
turns:
  - tool: stocks_GetQuote
    arguments: { Symbol: AMZN }
    expect:
      say: AMZN is at 13.
      is_error: true
      values: { price: 13 }
  - tool: stocks_Nope
    expect: { say: x }
`)
	want := `FAIL SC
     SC:10: turn 1: say: expected "AMZN is at 13.", got "AMZN is at 12.5."
     SC:11: turn 1: is_error: expected true, got false
     SC:12: turn 1: values: expected {"price":13}, got {"price":12.5}
     SC:13: turn 2: tool "stocks_Nope": unknown tool "stocks_Nope" (is skill stocks in mcp.skills?)
0 passed, 1 failed
`
	if failed != 1 || out != want {
		t.Fatalf("got:\n%s\nwant:\n%s", out, want)
	}
}

func TestMCPTurnParse(t *testing.T) {
	for _, tc := range []struct{ name, turn, want string }{
		{"tool and intent", "  - { tool: stocks_GetQuote, intent: GetQuote }", "turn 1 is an MCP turn (tool)"},
		{"arguments on an intent", "  - { intent: GetQuote, arguments: { Symbol: X } }", "arguments belong to an MCP turn"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := scenario.Parse("sc.yaml", []byte("skill: stocks\nturns:\n"+tc.turn+"\n"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse: %v, want %q", err, tc.want)
			}
		})
	}
}
