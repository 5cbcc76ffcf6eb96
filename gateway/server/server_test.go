package server_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/voicegw/voicegw/gateway/alexa"
	"github.com/voicegw/voicegw/gateway/auth"
	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/gateway/engine"
	"github.com/voicegw/voicegw/gateway/inmem"
	"github.com/voicegw/voicegw/gateway/server"
	"github.com/voicegw/voicegw/gateway/upstream"
)

const serverConfig = `
version: 1
server:
  max_body_bytes: 2048
  deadline: 1s
alexa:
  verify: false
services:
  down:
    base_url: ${VOICEGW_TEST_DOWN}
    timeout: 300ms
skills:
  stocks:
    application_id: amzn1.ask.skill.stocks
    launch: { say: Welcome to stocks. }
    intents:
      Down:
        samples: ["down"]
        call: { service: down, path: /x }
        say: unreachable
  open:
    launch: { say: Welcome to open. }
`

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// mustRuntime wires a runtime for serverConfig as cmd/voicegw does.
func mustRuntime(t *testing.T, ready func() server.Readiness) *server.Runtime {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close()
	t.Setenv("VOICEGW_TEST_DOWN", down)
	cfg, ps := config.Parse("server.yaml", []byte(serverConfig), os.LookupEnv)
	if err := ps.Err(); err != nil {
		t.Fatal(err)
	}
	client := upstream.New(upstream.DefaultOptions)
	t.Cleanup(client.CloseIdle)
	eng := engine.New(cfg, engine.Options{
		Caller:      client,
		Credentials: auth.New(inmem.New(nil), config.DefaultCacheTTL),
		Logger:      quiet,
	})
	return &server.Runtime{
		Alexa:        &alexa.Handler{Engine: eng, Logger: quiet},
		MaxBodyBytes: cfg.Server.MaxBodyBytes,
		Ready:        ready,
	}
}

func launch(appID string) []byte {
	return alexa.BuildRequest(alexa.RequestSpec{ApplicationID: appID, UserID: "amzn1.ask.account.TEST", Type: "LaunchRequest"})
}

// padTo pads a JSON body with trailing whitespace to exactly n bytes.
func padTo(b []byte, n int) []byte {
	return append(b, []byte(strings.Repeat(" ", n-len(b)))...)
}

// chunked hides a body's length so that the client sends it chunked.
type chunked struct{ io.Reader }

func TestServer(t *testing.T) {
	notReady := func() server.Readiness {
		return server.Readiness{Vault: "unreachable", Reason: "vault unreachable"}
	}
	outage := func() server.Readiness { return server.Readiness{Vault: "unreachable"} }
	tests := []struct {
		name    string
		method  string
		path    string
		body    []byte
		chunked bool
		ready   func() server.Readiness
		// want is the status; speech, when set, must be the response's;
		// errKey, when set, must be a key of the JSON body.
		want   int
		speech string
		errKey string
	}{
		{name: "launch by application id", method: "POST", path: "/alexa", body: launch("amzn1.ask.skill.stocks"), want: 200, speech: "Welcome to stocks."},
		{name: "launch by skill name", method: "POST", path: "/alexa/stocks", body: launch("amzn1.ask.skill.stocks"), want: 200, speech: "Welcome to stocks."},
		{name: "skill without application id takes any", method: "POST", path: "/alexa/open", body: launch("amzn1.ask.skill.whatever"), want: 200, speech: "Welcome to open."},
		{name: "body of exactly max_body_bytes", method: "POST", path: "/alexa/stocks", body: padTo(launch("amzn1.ask.skill.stocks"), 2048), want: 200, speech: "Welcome to stocks."},
		{name: "upstream down is spoken, not a 5xx", method: "POST", path: "/alexa", want: 200, speech: "Sorry, something went wrong. Please try again later.",
			body: alexa.BuildRequest(alexa.RequestSpec{ApplicationID: "amzn1.ask.skill.stocks", UserID: "amzn1.ask.account.TEST", Type: "IntentRequest", Intent: "Down"})},

		{name: "over max_body_bytes", method: "POST", path: "/alexa", body: padTo(launch("amzn1.ask.skill.stocks"), 2049), want: 413, errKey: "error"},
		{name: "chunked over max_body_bytes", method: "POST", path: "/alexa", body: padTo(launch("amzn1.ask.skill.stocks"), 100000), chunked: true, want: 413, errKey: "error"},
		{name: "bad envelope", method: "POST", path: "/alexa", body: []byte(`{"version":"1.0"}`), want: 400, errKey: "error"},
		{name: "not JSON", method: "POST", path: "/alexa/stocks", body: []byte(`<xml/>`), want: 400, errKey: "error"},
		{name: "empty body", method: "POST", path: "/alexa", body: nil, want: 400, errKey: "error"},
		{name: "bad envelope before unknown skill", method: "POST", path: "/alexa/nope", body: []byte(`{}`), want: 400, errKey: "error"},
		{name: "bad user id", method: "POST", path: "/alexa", want: 400, errKey: "error",
			body: alexa.BuildRequest(alexa.RequestSpec{ApplicationID: "amzn1.ask.skill.stocks", UserID: "amzn1.ask.account/../../x", Type: "LaunchRequest"})},
		{name: "unknown skill name", method: "POST", path: "/alexa/nope", body: launch("amzn1.ask.skill.stocks"), want: 404, errKey: "error"},
		{name: "unknown application id", method: "POST", path: "/alexa", body: launch("amzn1.ask.skill.unknown"), want: 404, errKey: "error"},
		{name: "application id mismatch", method: "POST", path: "/alexa/stocks", body: launch("amzn1.ask.skill.other"), want: 400, errKey: "error"},

		{name: "healthz", method: "GET", path: "/healthz", want: 200},
		{name: "healthz while not ready", method: "GET", path: "/healthz", ready: notReady, want: 200},
		{name: "readyz without check", method: "GET", path: "/readyz", want: 200, errKey: "status"},
		{name: "readyz ready", method: "GET", path: "/readyz", ready: func() server.Readiness { return server.Readiness{Vault: "ok"} }, want: 200, errKey: "vault"},
		{name: "readyz during a later outage stays ready", method: "GET", path: "/readyz", ready: outage, want: 200, errKey: "vault"},
		{name: "readyz not ready", method: "GET", path: "/readyz", ready: notReady, want: 503, errKey: "reason"},
		{name: "unknown route", method: "GET", path: "/nope", want: 404, errKey: "error"},
		{name: "wrong method", method: "GET", path: "/alexa", want: 405, errKey: "error"},
		{name: "link not configured", method: "GET", path: "/link", want: 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(server.New(mustRuntime(t, tc.ready), nil, quiet).Handler())
			defer srv.Close()
			var body io.Reader
			if tc.body != nil {
				body = strings.NewReader(string(tc.body))
				if tc.chunked {
					body = chunked{body}
				}
			}
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			out, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.want, out)
			}
			if tc.speech != "" {
				var r alexa.Response
				if err := json.Unmarshal(out, &r); err != nil {
					t.Fatalf("not an Alexa response: %v: %s", err, out)
				}
				if r.Speech() != tc.speech {
					t.Errorf("speech %q, want %q", r.Speech(), tc.speech)
				}
				if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
					t.Errorf("Content-Type %q", ct)
				}
			}
			if tc.errKey != "" {
				var m map[string]any
				if err := json.Unmarshal(out, &m); err != nil {
					t.Fatalf("body is not a JSON object: %v: %s", err, out)
				}
				if _, ok := m[tc.errKey]; !ok {
					t.Errorf("body %s has no %q", out, tc.errKey)
				}
				if _, ok := m["version"]; ok {
					t.Errorf("an error answer carries an Alexa body: %s", out)
				}
			}
		})
	}
}

// TestServerSwap checks that a swapped runtime serves the next request.
func TestServerSwap(t *testing.T) {
	s := server.New(mustRuntime(t, func() server.Readiness { return server.Readiness{Reason: "vault unreachable"} }), nil, quiet)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	get := func() int {
		resp, err := srv.Client().Get(srv.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := get(); got != 503 {
		t.Fatalf("before swap: %d", got)
	}
	s.Swap(mustRuntime(t, nil))
	if got := get(); got != 200 {
		t.Fatalf("after swap: %d", got)
	}
}
