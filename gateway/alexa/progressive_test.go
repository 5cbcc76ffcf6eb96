package alexa_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/alexa"
	"github.com/voicegw/voicegw/gateway/auth"
	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/gateway/engine"
	"github.com/voicegw/voicegw/gateway/upstream"
)

func TestAlexaEndpoint(t *testing.T) {
	for _, tc := range []struct {
		endpoint string
		ok       bool
	}{
		{"https://api.amazonalexa.com", true},
		{"https://api.eu.amazonalexa.com", true},
		{"https://api.fe.amazonalexa.com/", true},
		{"http://api.amazonalexa.com", false},
		{"https://api.amazonalexa.com.evil.example", false},
		{"https://evilamazonalexa.com", false},
		{"https://user@api.amazonalexa.com", false},
		{"https://127.0.0.1", false},
		{"", false},
	} {
		t.Run(tc.endpoint, func(t *testing.T) {
			if got := alexa.AlexaEndpoint(tc.endpoint); got != tc.ok {
				t.Fatalf("AlexaEndpoint(%q) = %v, want %v", tc.endpoint, got, tc.ok)
			}
		})
	}
}

// directiveAPI is a stand-in for the Alexa Progressive Response API.
type directiveAPI struct {
	mu    sync.Mutex
	got   []map[string]any
	auth  []string
	times []time.Time
}

func (d *directiveAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/directives" {
		http.Error(w, "wrong route", http.StatusNotFound)
		return
	}
	var body map[string]any
	b, _ := io.ReadAll(r.Body)
	_ = json.Unmarshal(b, &body)
	d.mu.Lock()
	d.got = append(d.got, body)
	d.auth = append(d.auth, r.Header.Get("Authorization"))
	d.times = append(d.times, time.Now())
	d.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (d *directiveAPI) calls() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.got)
}

func TestProgressiveSend(t *testing.T) {
	api := &directiveAPI{}
	srv := httptest.NewServer(api)
	defer srv.Close()
	turn := &gateway.Turn{RequestID: "amzn1.echo-api.request.1", APIEndpoint: srv.URL, APIToken: "api-token"}

	p := &alexa.Progressive{}
	if err := p.Send(context.Background(), turn, gateway.Speech{Text: "One moment."}); err == nil {
		t.Fatal("default Allow accepted a non-Alexa endpoint")
	}
	if api.calls() != 0 {
		t.Fatal("a refused endpoint was called")
	}
	p.Allow = func(string) bool { return true }
	if err := p.Send(context.Background(), turn, gateway.Speech{Text: "One moment."}); err != nil {
		t.Fatal(err)
	}
	if api.calls() != 1 || api.auth[0] != "Bearer api-token" {
		t.Fatalf("calls=%d auth=%v", api.calls(), api.auth)
	}
	want := map[string]any{
		"header":    map[string]any{"requestId": "amzn1.echo-api.request.1"},
		"directive": map[string]any{"type": "VoicePlayer.Speak", "speech": "One moment."},
	}
	if b1, b2 := mustJSON(api.got[0]), mustJSON(want); b1 != b2 {
		t.Fatalf("directive = %s, want %s", b1, b2)
	}
	turn.APIToken = ""
	if err := p.Send(context.Background(), turn, gateway.Speech{Text: "x"}); err == nil {
		t.Fatal("sent without an apiAccessToken")
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestProgressiveTurn runs a turn whose call is slower than
// progressive_after: the progressive speech reaches the directive API
// while the call runs, and the final answer still comes.
func TestProgressiveTurn(t *testing.T) {
	api := &directiveAPI{}
	apiSrv := httptest.NewServer(api)
	defer apiSrv.Close()
	delay := map[string]time.Duration{"/slow": 400 * time.Millisecond, "/fast": 0}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay[r.URL.Path])
		_, _ = io.WriteString(w, `{"v":"done"}`)
	}))
	defer up.Close()
	src := strings.ReplaceAll(`version: 1
server: { progressive_after: 100ms }
alexa: { verify: false }
services:
  api: { base_url: UPSTREAM, timeout: 2s }
skills:
  s:
    application_id: amzn1.ask.skill.p
    intents:
      Slow:
        samples: ["slow for {Who}"]
        slots: { Who: { type: AMAZON.FirstName } }
        progressive: "<speak>One moment for {{ .slots.Who }}</speak>"
        call: { service: api, path: /slow, extract: { v: v } }
        say: "It is {{ .v }}."
      Fast:
        samples: ["fast"]
        progressive: One moment.
        call: { service: api, path: /fast, extract: { v: v } }
        say: "It is {{ .v }}."
`, "UPSTREAM", up.URL)
	cfg, problems := config.Parse("p.yaml", []byte(src), func(string) (string, bool) { return "", false })
	if cfg == nil {
		t.Fatal(problems.Err())
	}
	eng := engine.New(cfg, engine.Options{
		Caller:      upstream.New(upstream.DefaultOptions),
		Credentials: auth.New(nil, 0),
		Progress:    &alexa.Progressive{Allow: func(string) bool { return true }},
	})
	h := &alexa.Handler{Engine: eng}
	for _, tc := range []struct {
		intent     string
		directives int
	}{{"Fast", 0}, {"Slow", 1}} {
		t.Run(tc.intent, func(t *testing.T) {
			before := api.calls()
			body := alexa.BuildRequest(alexa.RequestSpec{
				ApplicationID: "amzn1.ask.skill.p", UserID: "amzn1.ask.account.P", Type: "IntentRequest",
				Intent: tc.intent, Slots: map[string]string{"Who": "Ann & Bob"},
				APIEndpoint: apiSrv.URL, APIToken: "api-token",
			})
			start := time.Now()
			status, out := h.Serve(context.Background(), "s", nil, body)
			var resp alexa.Response
			if err := json.Unmarshal(out, &resp); err != nil || status != 200 {
				t.Fatalf("status %d: %s", status, out)
			}
			if resp.Speech() != "It is done." {
				t.Fatalf("speech = %q", resp.Speech())
			}
			if got := api.calls() - before; got != tc.directives {
				t.Fatalf("%d progressive directives, want %d", got, tc.directives)
			}
			if tc.directives == 1 {
				api.mu.Lock()
				sent, at := api.got[len(api.got)-1], api.times[len(api.times)-1]
				api.mu.Unlock()
				speech := sent["directive"].(map[string]any)["speech"]
				if speech != "<speak>One moment for Ann &amp; Bob</speak>" {
					t.Fatalf("progressive speech = %q", speech)
				}
				if d := at.Sub(start); d < 90*time.Millisecond || d > 350*time.Millisecond {
					t.Fatalf("progressive speech sent after %s, want about 100ms", d)
				}
			}
		})
	}
}
