package engine_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/auth"
	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/gateway/engine"
	"github.com/voicegw/voicegw/gateway/inmem"
	"github.com/voicegw/voicegw/gateway/upstream"
)

// MustEngine compiles src (with UPSTREAM replaced) into an engine over an
// in-memory store.
func MustEngine(tb testing.TB, src, upstreamURL string, store gateway.SecretStore) *engine.Engine {
	tb.Helper()
	src = strings.ReplaceAll(src, "UPSTREAM", upstreamURL)
	cfg, problems := config.Parse("engine.yaml", []byte(src), func(string) (string, bool) { return "", false })
	if cfg == nil {
		tb.Fatal(problems.Err())
	}
	return engine.New(cfg, engine.Options{
		Caller:      upstream.New(upstream.DefaultOptions),
		Credentials: auth.New(store, 0),
		Logger:      slog.New(slog.DiscardHandler),
	})
}

const precedence = `version: 1
alexa: { verify: false }
server:
  errors: { default: server default, "503": server 503 }
services:
  api: { base_url: UPSTREAM, timeout: 200ms }
  keyed: { base_url: UPSTREAM, auth: { type: secret, field: k } }
  linked: { base_url: UPSTREAM, auth: { type: linked } }
skills:
  s:
    application_id: amzn1.ask.skill.s
    errors: { 4xx: skill 4xx, default: skill default }
    intents:
      Call:
        samples: ["call {Status}"]
        slots: { Status: { type: AMAZON.NUMBER } }
        call: { service: api, path: "/{{ .slots.Status }}", extract: { v: { path: v, required: true } } }
        say: "got {{ .v }}"
        errors: { "404": intent 404 }
      Plain:
        samples: ["plain {Status}"]
        slots: { Status: { type: AMAZON.NUMBER } }
        call: { service: api, path: "/{{ .slots.Status }}", extract: { v: { path: v, required: true } } }
        say: "got {{ .v }}"
      Keyed:
        samples: ["keyed"]
        call: { service: keyed, path: /200 }
        say: ok
      Linked:
        samples: ["linked"]
        call: { service: linked, path: /200 }
        say: ok
`

// precedenceUpstream answers /200, /missing (no value), /slow (never)
// and any other /NNN with that status.
func precedenceUpstream(t *testing.T) *httptest.Server {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/200":
			_, _ = w.Write([]byte(`{"v": 1}`))
		case "/missing":
			_, _ = w.Write([]byte(`{}`))
		case "/slow":
			<-r.Context().Done()
		default:
			var code int
			for _, c := range strings.TrimPrefix(r.URL.Path, "/") {
				code = code*10 + int(c-'0')
			}
			w.WriteHeader(code)
		}
	}))
	t.Cleanup(up.Close)
	return up
}

type precedenceCase struct{ intent, status, want string }

func runPrecedence(t *testing.T, e *engine.Engine, cases []precedenceCase) {
	for _, tc := range cases {
		t.Run(tc.intent+" "+tc.status, func(t *testing.T) {
			reply := e.Turn(context.Background(), &gateway.Turn{
				Skill: "s", Kind: gateway.KindIntent, Intent: tc.intent, UserID: "amzn1.ask.account.E",
				Slots: map[string]gateway.Slot{"Status": {Value: tc.status}},
			})
			if reply.Speech.Text != tc.want {
				t.Fatalf("speech = %q, want %q", reply.Speech.Text, tc.want)
			}
		})
	}
}

// TestErrorPrecedence: for each key, most specific first, the intent's,
// the skill's and the gateway's speech; configured speech beats every
// built-in sentence, except that an unlinked user always hears how to link.
func TestErrorPrecedence(t *testing.T) {
	e := MustEngine(t, precedence, precedenceUpstream(t).URL, inmem.New(nil))
	runPrecedence(t, e, []precedenceCase{
		{"Call", "200", "got 1"},
		{"Call", "404", "intent 404"},
		{"Call", "403", "skill 4xx"},
		{"Call", "503", "server 503"},
		{"Call", "500", "skill default"},
		{"Plain", "404", "skill 4xx"},
		{"Call", "missing", "skill default"},
		{"Call", "slow", "skill default"},
		{"Keyed", "", "skill default"},
		{"Linked", "", "To use linked, please link your account in the Alexa app."},
	})
}

// TestBuiltinErrors: with no errors configured anywhere, each kind has its
// own sentence; statuses get the default one.
func TestBuiltinErrors(t *testing.T) {
	bare := strings.Replace(strings.Replace(precedence,
		`  errors: { default: server default, "503": server 503 }`+"\n", "", 1),
		`    errors: { 4xx: skill 4xx, default: skill default }`+"\n", "", 1)
	bare = strings.Replace(bare, `        errors: { "404": intent 404 }`+"\n", "", 1)
	e := MustEngine(t, bare, precedenceUpstream(t).URL, inmem.New(nil))
	runPrecedence(t, e, []precedenceCase{
		{"Call", "404", "Sorry, something went wrong. Please try again later."},
		{"Call", "503", "Sorry, something went wrong. Please try again later."},
		{"Call", "missing", "Sorry, I couldn't find that information."},
		{"Call", "slow", "Sorry, that is taking too long right now. Please try again in a moment."},
		{"Keyed", "", "Sorry, I can't reach my secure storage right now. Please try again later."},
		{"Linked", "", "To use linked, please link your account in the Alexa app."},
	})
}

func TestSkillFor(t *testing.T) {
	e := MustEngine(t, precedence+`  other:
    intents: { X: { samples: [x], say: x } }
`, "http://127.0.0.1:1", nil)
	for _, tc := range []struct {
		name, skill, app, want string
		err                    error
	}{
		{"by application id", "", "amzn1.ask.skill.s", "s", nil},
		{"unknown application id", "", "amzn1.ask.skill.nope", "", gateway.ErrUnknownSkill},
		{"by name with its id", "s", "amzn1.ask.skill.s", "s", nil},
		{"by name with another id", "s", "amzn1.ask.skill.other", "", gateway.ErrWrongApplication},
		{"by name without an id configured", "other", "amzn1.ask.skill.anything", "other", nil},
		{"unknown name", "nope", "amzn1.ask.skill.s", "", gateway.ErrUnknownSkill},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := e.SkillFor(tc.skill, tc.app)
			if got != tc.want || !errors.Is(err, tc.err) {
				t.Fatalf("SkillFor(%q, %q) = %q, %v; want %q, %v", tc.skill, tc.app, got, err, tc.want, tc.err)
			}
		})
	}
}
