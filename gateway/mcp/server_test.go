package mcp_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/auth"
	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/gateway/engine"
	"github.com/voicegw/voicegw/gateway/inmem"
	"github.com/voicegw/voicegw/gateway/mcp"
	"github.com/voicegw/voicegw/gateway/upstream"
)

// toolsYAML has every kind of tool: a custom-type enum with synonyms, a
// number, a date, SSML speech, a confirmed DELETE and an upstream 404.
const toolsYAML = `version: 1
alexa: { verify: false }
services:
  quotes: { base_url: UPSTREAM }
skills:
  stocks:
    types:
      STOCK_SYMBOL:
        - { value: AMZN, id: amzn, synonyms: [amazon] }
        - { value: XYZ }
    intents:
      GetQuote:
        description: The current price of a stock.
        samples: ["what is {Symbol} trading at"]
        slots:
          Symbol: { type: STOCK_SYMBOL, required: true, prompt: "Which stock?" }
        call:
          service: quotes
          path: /v1/quote/{{ .slots.Symbol }}
          extract: { name: data.name, price: { path: data.price, required: true } }
        say: "<speak>{{ .name }} is trading at <emphasis>{{ .price }}</emphasis> dollars.</speak>"
        errors: { "404": "I couldn't find {{ .slots.Symbol }}." }
      Buy:
        samples: ["buy {Count} shares of {Symbol} on {Day}"]
        slots:
          Count: { type: AMAZON.NUMBER, required: true }
          Symbol: { type: STOCK_SYMBOL, required: true }
          Day: { type: AMAZON.DATE }
          Note: { type: AMAZON.SearchQuery }
        call: { service: quotes, method: POST, path: /v1/orders, body: { n: "{{ .slots.Count }}", s: "{{ .slots.Symbol }}" } }
        say: Bought {{ .slots.Count }} {{ .slots.Symbol }}.
      CancelOrders:
        samples: ["cancel my orders"]
        confirm: Cancel every open order?
        call: { service: quotes, method: DELETE, path: /v1/orders }
        say: Cancelled.
      AMAZON.HelpIntent:
        samples: [help]
        say: Ask for a quote.
mcp:
  enabled: true
  auth: none
  skills: [stocks]
`

// quotesUpstream answers quotes for AMZN, 404 for anything else, and
// accepts orders; it records the requests.
type quotesUpstream struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []string
}

func newQuotesUpstream(t *testing.T) *quotesUpstream {
	u := &quotesUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.reqs = append(u.reqs, r.Method+" "+r.URL.Path)
		u.mu.Unlock()
		switch {
		case r.URL.Path == "/v1/quote/AMZN":
			_, _ = w.Write([]byte(`{"data": {"name": "Amazon", "price": 123.45}}`))
		case r.URL.Path == "/v1/orders":
			_, _ = w.Write([]byte(`{}`))
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error": "nf"}`))
		}
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *quotesUpstream) requests() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.reqs...)
}

// MustConfig parses src with UPSTREAM replaced.
func MustConfig(tb testing.TB, src, upstreamURL string) *config.Config {
	tb.Helper()
	src = strings.ReplaceAll(src, "UPSTREAM", upstreamURL)
	cfg, problems := config.Parse("mcp.yaml", []byte(src), func(string) (string, bool) { return "", false })
	if cfg == nil {
		tb.Fatal(problems.Err())
	}
	return cfg
}

// MustEngine is the engine for cfg over store.
func MustEngine(cfg *config.Config, store gateway.SecretStore) *engine.Engine {
	return engine.New(cfg, engine.Options{
		Caller:      upstream.New(upstream.DefaultOptions),
		Credentials: auth.New(store, 0),
		Logger:      slog.New(slog.DiscardHandler),
	})
}

// MustSession connects the Go SDK's client to endpoint.
func MustSession(tb testing.TB, endpoint string, hc *http.Client) *sdk.ClientSession {
	tb.Helper()
	client := sdk.NewClient(&sdk.Implementation{Name: "voicegw-test", Version: "1"}, nil)
	cs, err := client.Connect(context.Background(), &sdk.StreamableClientTransport{Endpoint: endpoint, HTTPClient: hc}, nil)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	tb.Cleanup(func() { _ = cs.Close() })
	return cs
}

func text(res *sdk.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if tc, ok := c.(*sdk.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, "\n")
}

func TestToolsList(t *testing.T) {
	up := newQuotesUpstream(t)
	cfg := MustConfig(t, toolsYAML, up.URL)
	srv := httptest.NewServer(mcp.NewHandler(cfg, MustEngine(cfg, inmem.New(nil)), mcp.Options{}))
	defer srv.Close()
	cs := MustSession(t, srv.URL, nil)
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*sdk.Tool{}
	var names []string
	for _, tl := range res.Tools {
		got[tl.Name] = tl
		names = append(names, tl.Name)
	}
	if strings.Join(names, ",") != "stocks_Buy,stocks_CancelOrders,stocks_GetQuote" {
		t.Fatalf("tools = %v (built-in intents are no tools)", names)
	}
	schema := func(name string) string {
		b, _ := json.Marshal(got[name].InputSchema)
		return string(b)
	}
	tests := []struct {
		name, got, want string
	}{
		{"description", got["stocks_GetQuote"].Description, "The current price of a stock."},
		{"default description", got["stocks_Buy"].Description, "buy {Count} shares of {Symbol} on {Day}"},
		{"enum schema", schema("stocks_GetQuote"),
			`{"properties":{"Symbol":{"enum":["AMZN","XYZ"],"type":"string"}},"required":["Symbol"],"type":"object"}`},
		{"typed schema", schema("stocks_Buy"),
			`{"properties":{"Count":{"type":"integer"},"Day":{"description":"a date, YYYY-MM-DD","format":"date","type":"string"},"Note":{"type":"string"},"Symbol":{"enum":["AMZN","XYZ"],"type":"string"}},"required":["Count","Symbol"],"type":"object"}`},
		{"confirmed argument", schema("stocks_CancelOrders"),
			`{"properties":{"confirmed":{"description":"true once the user has said yes to the confirmation question; without it the tool only asks the question","type":"boolean"}},"required":[],"type":"object"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got  %s\nwant %s", tc.got, tc.want)
			}
		})
	}
	hints := func(name string) (bool, bool) {
		a := got[name].Annotations
		return a.ReadOnlyHint, a.DestructiveHint != nil && *a.DestructiveHint
	}
	for _, tc := range []struct {
		tool                  string
		readOnly, destructive bool
	}{
		{"stocks_GetQuote", true, false},
		{"stocks_Buy", false, false},
		{"stocks_CancelOrders", false, true},
	} {
		ro, de := hints(tc.tool)
		if ro != tc.readOnly || de != tc.destructive {
			t.Errorf("%s: readOnlyHint %v destructiveHint %v, want %v %v", tc.tool, ro, de, tc.readOnly, tc.destructive)
		}
	}
}

func TestToolsCall(t *testing.T) {
	up := newQuotesUpstream(t)
	cfg := MustConfig(t, toolsYAML, up.URL)
	srv := httptest.NewServer(mcp.NewHandler(cfg, MustEngine(cfg, inmem.New(nil)), mcp.Options{}))
	defer srv.Close()
	cs := MustSession(t, srv.URL, nil)
	tests := []struct {
		name       string
		tool       string
		args       map[string]any
		wantText   string
		wantError  bool
		wantValues string
		wantCall   string
	}{
		{name: "answer without SSML, values as structured content", tool: "stocks_GetQuote",
			args: map[string]any{"Symbol": "AMZN"}, wantText: "Amazon is trading at 123.45 dollars.",
			wantValues: `{"name":"Amazon","price":123.45}`, wantCall: "GET /v1/quote/AMZN"},
		{name: "a synonym resolves as Alexa resolves it", tool: "stocks_GetQuote",
			args: map[string]any{"Symbol": "amazon"}, wantText: "Amazon is trading at 123.45 dollars.", wantCall: "GET /v1/quote/AMZN"},
		{name: "error speech is an error", tool: "stocks_GetQuote",
			args: map[string]any{"Symbol": "XYZ"}, wantText: "I couldn't find XYZ.", wantError: true, wantCall: "GET /v1/quote/XYZ"},
		{name: "missing required argument gets the prompt", tool: "stocks_GetQuote",
			args: map[string]any{}, wantText: "Which stock?", wantError: true},
		{name: "value outside the enum", tool: "stocks_GetQuote",
			args: map[string]any{"Symbol": "GOOG"}, wantText: "The argument Symbol must be one of: AMZN, XYZ.", wantError: true},
		{name: "unknown argument", tool: "stocks_GetQuote",
			args: map[string]any{"Symbol": "AMZN", "Sym": "x"}, wantText: `The tool stocks_GetQuote has no argument "Sym".`, wantError: true},
		{name: "number that is no integer", tool: "stocks_Buy",
			args: map[string]any{"Count": 1.5, "Symbol": "AMZN"}, wantText: "The argument Count must be a whole number.", wantError: true},
		{name: "number", tool: "stocks_Buy",
			args: map[string]any{"Count": 3, "Symbol": "AMZN"}, wantText: "Bought 3 AMZN.", wantCall: "POST /v1/orders"},
		{name: "confirm without confirmed asks and calls nothing", tool: "stocks_CancelOrders",
			args: nil, wantText: "Cancel every open order?"},
		{name: "confirmed false says okay and calls nothing", tool: "stocks_CancelOrders",
			args: map[string]any{"confirmed": false}, wantText: "Okay."},
		{name: "confirmed true runs the call", tool: "stocks_CancelOrders",
			args: map[string]any{"confirmed": true}, wantText: "Cancelled.", wantCall: "DELETE /v1/orders"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(up.requests())
			res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: tc.tool, Arguments: tc.args})
			if err != nil {
				t.Fatal(err)
			}
			if got := text(res); got != tc.wantText {
				t.Errorf("text = %q, want %q", got, tc.wantText)
			}
			if res.IsError != tc.wantError {
				t.Errorf("isError = %v, want %v", res.IsError, tc.wantError)
			}
			if tc.wantValues != "" {
				b, _ := json.Marshal(res.StructuredContent)
				if string(b) != tc.wantValues {
					t.Errorf("structuredContent = %s, want %s", b, tc.wantValues)
				}
			}
			calls := up.requests()[before:]
			switch {
			case tc.wantCall == "" && len(calls) > 0:
				t.Errorf("upstream got %v, want no call", calls)
			case tc.wantCall != "" && (len(calls) != 1 || calls[0] != tc.wantCall):
				t.Errorf("upstream got %v, want %s", calls, tc.wantCall)
			}
		})
	}
}

func TestPlainText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"<speak>A &amp; B <break time=\"1s\"/>costs <say-as interpret-as=\"digits\">12</say-as>.</speak>", "A & B costs 12."},
		{"<speak>Hello<emphasis>there</emphasis></speak>", "Hello there"},
	} {
		if got := mcp.PlainText(gateway.Speech{Text: tc.in, SSML: true}); got != tc.want {
			t.Errorf("PlainText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestStatelessTransport: the endpoint keeps no session, so GET (a stream
// of server messages) and DELETE (end a session) are not allowed.
func TestStatelessTransport(t *testing.T) {
	cfg := MustConfig(t, toolsYAML, "http://127.0.0.1:1")
	srv := httptest.NewServer(mcp.NewHandler(cfg, MustEngine(cfg, inmem.New(nil)), mcp.Options{}))
	defer srv.Close()
	for _, m := range []string{http.MethodGet, http.MethodDelete} {
		req, _ := http.NewRequest(m, srv.URL, nil)
		req.Header.Set("Accept", "application/json, text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s = %d, want 405", m, resp.StatusCode)
		}
	}
}
