package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/voicegw/voicegw/gateway/config"
)

func noEnv(string) (string, bool) { return "", false }

// MustParse parses src and fails the test on any error.
func MustParse(tb testing.TB, src string, env map[string]string) *config.Config {
	tb.Helper()
	cfg, problems := config.Parse("test.yaml", []byte(src), envLookup(env))
	if cfg == nil {
		tb.Fatalf("Parse: %v", problems.Err())
	}
	if err := problems.Err(); err != nil {
		tb.Fatalf("Parse returned a config and errors: %v", err)
	}
	return cfg
}

// MustExec renders a compiled template or fails the test.
func MustExec(tb testing.TB, t interface {
	Execute(map[string]any) (string, error)
}, data map[string]any) string {
	tb.Helper()
	out, err := t.Execute(data)
	if err != nil {
		tb.Fatalf("Execute: %v", err)
	}
	return out
}

func TestDefaults(t *testing.T) {
	cfg := MustParse(t, `
version: 1
vault:
  address: https://vault.example.com/
services:
  api: { base_url: "https://api.example.com/v1/" }
  linked:
    base_url: https://linked.example.com
    auth: { type: linked }
  keyed:
    base_url: https://keyed.example.com
    auth: { type: secret, field: api_key, query: key }
skills:
  demo:
    intents:
      Hi:
        samples: [hi]
        call: { service: api }
        say: Hi.
      Open: { samples: [open], say: Open., end_session: false }
`, nil)

	s := cfg.Server
	checks := []struct {
		name      string
		got, want any
	}{
		{"server.listen", s.Listen, "127.0.0.1:8080"},
		{"server.deadline", s.Deadline.D, 6 * time.Second},
		{"server.deadline Or", s.Deadline.Or(time.Minute), time.Minute},
		{"server.max_body_bytes", s.MaxBodyBytes, int64(131072)},
		{"server.progressive_after", s.ProgressiveAfter.D, time.Second},
		{"alexa verifying", cfg.Alexa.Verifying(), true},
		{"alexa.timestamp_tolerance", cfg.Alexa.TimestampTolerance.D, 150 * time.Second},
		{"vault.auth.method", cfg.Vault.Auth.Method, "token"},
		{"vault.kv_mount", cfg.Vault.KVMount, "secret"},
		{"vault.prefix", cfg.Vault.Prefix, "voicegw"},
		{"vault.cache_ttl", cfg.Vault.CacheTTL.D, 30 * time.Second},
		{"vault.timeout", cfg.Vault.Timeout.D, 2 * time.Second},
		{"service name", cfg.Services["api"].Name, "api"},
		{"service timeout", cfg.Services["api"].Timeout.D, 3 * time.Second},
		{"service retries", cfg.Services["api"].Retries, 0},
		{"service max_response_bytes", cfg.Services["api"].MaxResponseBytes, int64(1 << 20)},
		{"service URL path trimmed", cfg.Services["api"].URL.String(), "https://api.example.com/v1"},
		{"auth type", cfg.Services["api"].Auth.Type, "none"},
		{"auth header", cfg.Services["linked"].Auth.Header, "Authorization"},
		{"auth format", cfg.Services["linked"].Auth.Format, "Bearer {{ .token }}"},
		{"auth format rendered", MustExec(t, cfg.Services["linked"].Format, map[string]any{"token": "t0k"}), "Bearer t0k"},
		{"query auth format", cfg.Services["keyed"].Auth.Format, "{{ .token }}"},
		{"launch say", MustExec(t, cfg.Skills["demo"].LaunchC.Say.T, nil), "Welcome. What would you like to do?"},
		{"launch end_session", cfg.Skills["demo"].LaunchC.EndSession, false},
		{"intent end_session", cfg.Skills["demo"].Intents["Hi"].C.EndSession, true},
		{"intent end_session false", cfg.Skills["demo"].Intents["Open"].C.EndSession, false},
		{"help end_session", cfg.Skills["demo"].HelpC.EndSession, false},
		{"stop end_session", cfg.Skills["demo"].StopC.EndSession, true},
		{"stop say", MustExec(t, cfg.Skills["demo"].StopC.Say.T, nil), "Goodbye."},
		{"fallback end_session", cfg.Skills["demo"].FallbackC.EndSession, false},
		{"call method", cfg.Skills["demo"].Intents["Hi"].C.Calls[0].Method, "GET"},
		{"call path", MustExec(t, cfg.Skills["demo"].Intents["Hi"].C.Calls[0].Path, nil), "/"},
		{"call service", cfg.Skills["demo"].Intents["Hi"].C.Calls[0].Service, cfg.Services["api"]},
		{"call body", cfg.Skills["demo"].Intents["Hi"].C.Calls[0].Body, (*config.Body)(nil)},
		{"file", cfg.File, "test.yaml"},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if !reflect.DeepEqual(c.got, c.want) {
				t.Errorf("got %#v, want %#v", c.got, c.want)
			}
		})
	}
	for _, name := range []string{"help", "fallback"} {
		if sk := cfg.Skills["demo"]; (name == "help" && sk.HelpC.Reprompt == nil) || (name == "fallback" && sk.FallbackC.Reprompt == nil) {
			t.Errorf("%s has no reprompt", name)
		}
	}
}

func TestEnvExpansion(t *testing.T) {
	const base = `
version: 1
skills:
  demo:
    intents:
      Hi:
        samples: [hi]
        say: Hi.
`
	env := map[string]string{
		"LISTEN": "0.0.0.0:9000",
		"MAX":    "262144",
		"ID":     "42",
		"NO":     "false",
		"EMPTY":  "",
		"A":      "alpha",
		"B":      "beta",
		"NESTED": "${A}",
		"NAME":   "Bob",
	}
	tests := []struct {
		name  string
		yaml  string
		check func(t *testing.T, cfg *config.Config) (got, want any)
	}{
		{"plain", "server:\n  listen: ${LISTEN}", func(t *testing.T, c *config.Config) (any, any) {
			return c.Server.Listen, "0.0.0.0:9000"
		}},
		{"default when unset", "server:\n  listen: \"${UNSET:-127.0.0.1:7000}\"", func(t *testing.T, c *config.Config) (any, any) {
			return c.Server.Listen, "127.0.0.1:7000"
		}},
		{"default when empty", "server:\n  listen: \"${EMPTY:-127.0.0.1:7000}\"", func(t *testing.T, c *config.Config) (any, any) {
			return c.Server.Listen, "127.0.0.1:7000"
		}},
		{"set value beats default", "server:\n  listen: \"${LISTEN:-127.0.0.1:7000}\"", func(t *testing.T, c *config.Config) (any, any) {
			return c.Server.Listen, "0.0.0.0:9000"
		}},
		{"unset without default is empty", "server:\n  listen: \"${UNSET}\"", func(t *testing.T, c *config.Config) (any, any) {
			return c.Server.Listen, config.DefaultListen
		}},
		{"number field", "server:\n  max_body_bytes: ${MAX}", func(t *testing.T, c *config.Config) (any, any) {
			return c.Server.MaxBodyBytes, int64(262144)
		}},
		{"number field default", "server:\n  max_body_bytes: ${UNSET:-65536}", func(t *testing.T, c *config.Config) (any, any) {
			return c.Server.MaxBodyBytes, int64(65536)
		}},
		{"bool field", "alexa:\n  verify: ${NO}", func(t *testing.T, c *config.Config) (any, any) {
			return c.Alexa.Verifying(), false
		}},
		{"duration", "server:\n  deadline: \"${UNSET:-3s}\"", func(t *testing.T, c *config.Config) (any, any) {
			return c.Server.Deadline.D, 3 * time.Second
		}},
		{"several in one string", "server:\n  public_url: \"https://${A}.example.com/${B}\"", func(t *testing.T, c *config.Config) (any, any) {
			return c.Server.PublicURL, "https://alpha.example.com/beta"
		}},
		{"not expanded twice", "server:\n  errors: { default: \"${NESTED}\" }", func(t *testing.T, c *config.Config) (any, any) {
			return MustExec(t, c.Errors["default"].T, nil), "${A}"
		}},
		{"dollar without braces is literal", "server:\n  errors: { default: \"$A costs $5\" }", func(t *testing.T, c *config.Config) (any, any) {
			return MustExec(t, c.Errors["default"].T, nil), "$A costs $5"
		}},
		{"inside a template", "server:\n  errors: { default: \"Sorry ${NAME}, {{ .user.id }}\" }", func(t *testing.T, c *config.Config) (any, any) {
			return MustExec(t, c.Errors["default"].T, map[string]any{"user": map[string]string{"id": "u1"}}), "Sorry Bob, u1"
		}},
		{"in a list", `services: { api: { base_url: "https://api.example.com", auth: { type: linked },
  oauth2: { auth_url: "https://a.example.com", token_url: "https://t.example.com", client_id: c, scopes: ["${A}", "x${B}"] } } }`,
			func(t *testing.T, c *config.Config) (any, any) {
				return c.Services["api"].OAuth2.Scopes, []string{"alpha", "xbeta"}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := MustParse(t, base+tc.yaml+"\n", env)
			if got, want := tc.check(t, cfg); !reflect.DeepEqual(got, want) {
				t.Errorf("got %#v, want %#v", got, want)
			}
		})
	}
}

// TestBody checks the JSON and form bodies of SPEC 3.2, including values
// from the environment that stay strings when quoted.
func TestBody(t *testing.T) {
	src := `
version: 1
services:
  api: { base_url: "https://api.example.com" }
skills:
  demo:
    intents:
      Order:
        samples: ["order {Count} {Item}"]
        slots:
          Count: { type: AMAZON.NUMBER }
          Item: { type: AMAZON.Food }
        calls:
          - service: api
            method: POST
            path: /orders
            body:
              item: "{{ .slots.Item }}"
              note: "two {{ .slots.Item }}s"
              count: "{{ .slots.Count | atoi }}"
              tags: ["{{ .slots.Item }}", fixed, 3]
              meta:
                env_num: ${ID}
                env_str: "${ID}"
                env_single: '${ID}'
                yes: true
                none: null
                pi: 3.5
              list: "{{ list 1 2 }}"
            extract: { id: id }
          - service: api
            method: POST
            path: /forms
            content_type: form
            body: { item: "{{ .slots.Item }}", n: 2, id: "{{ .id }}", flag: false, skip: null, s: "${ID}" }
        say: Done.
`
	cfg := MustParse(t, src, map[string]string{"ID": "42"})
	calls := cfg.Skills["demo"].Intents["Order"].C.Calls
	data := map[string]any{
		"slots": map[string]string{"Count": "3", "Item": `pi"zza</a>`},
		"id":    int64(7),
	}
	got, err := calls[0].Body.JSON(data)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"item":"pi\"zza</a>","note":"two pi\"zza</a>s","count":3,"tags":["pi\"zza</a>","fixed",3],` +
		`"meta":{"env_num":42,"env_str":"42","env_single":"42","yes":true,"none":null,"pi":3.5},"list":[1,2]}`
	if string(got) != want {
		t.Errorf("JSON body =\n%s, want\n%s", got, want)
	}
	if calls[0].Form {
		t.Error("json call is a form")
	}
	if !calls[1].Form {
		t.Fatal("form call is not a form")
	}
	form, err := calls[1].Body.Form(data)
	if err != nil {
		t.Fatal(err)
	}
	if want := "flag=false&id=7&item=pi%22zza%3C%2Fa%3E&n=2&s=42"; string(form) != want {
		t.Errorf("form body = %s, want %s", form, want)
	}
}

// TestCompiled checks the compiled form of the SPEC example.
func TestCompiled(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "config", "valid-spec-example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	input, _, _ := cutSeparator(string(raw))
	cfg := MustParse(t, input, goldenEnv)
	sk := cfg.Skills["stocks"]
	in := sk.Intents["GetQuote"]
	c := in.C
	call := c.Calls[0]
	slots := map[string]any{"slots": map[string]string{"Symbol": "a/../b?x=1"}, "name": "Amazon", "price": 123.45}

	checks := []struct {
		name      string
		got, want any
	}{
		{"vault address", cfg.Vault.Address, "https://vault.example.com"},
		{"vault role id from env", cfg.Vault.Auth.RoleID, "role-1"},
		{"public url", cfg.Server.PublicURL, "https://voice.example.com"},
		{"gateway default error", MustExec(t, cfg.Errors["default"].T, nil), "Sorry, something went wrong. Please try again later."},
		{"oauth2 scopes", cfg.Services["quotes"].OAuth2.Scopes, []string{"read"}},
		{"weather query", cfg.Services["weather"].Auth.Query, "appid"},
		{"weather format", cfg.Services["weather"].Auth.Format, "{{ .token }}"},
		{"skill name", sk.Name, "stocks"},
		{"extract refs", sk.ExtractRefs, []string{"name", "price"}},
		{"intent name", in.Name, "GetQuote"},
		{"compiled intent", c.Intent, "GetQuote"},
		{"slots", len(c.Slots), 1},
		{"slot", [3]any{c.Slots[0].Name, c.Slots[0].Type, c.Slots[0].Required}, [3]any{"Symbol", "STOCK_SYMBOL", true}},
		{"slot prompt", MustExec(t, c.Slots[0].Prompt.T, nil), "Which stock?"},
		{"service", call.Service, cfg.Services["quotes"]},
		{"method", call.Method, "GET"},
		{"escaped path", MustExec(t, call.Path, slots), "/v1/quote/a%2F..%2Fb%3Fx=1"},
		{"query", [2]any{call.Query[0].Name, MustExec(t, call.Query[0].T, nil)}, [2]any{"range", "1d"}},
		{"headers", len(call.Headers), 0},
		{"no body", call.Body, (*config.Body)(nil)},
		{"extract", call.Extract, []config.Extract{{Name: "name", Path: "data.name"}, {Name: "price", Path: "data.price", Required: true}}},
		{"extracts", c.Extracts, []string{"name", "price"}},
		{"say", MustExec(t, c.Say.T, slots), "Amazon is trading at 123.45 dollars."},
		{"say is plain text", c.Say.SSML, false},
		{"no confirm", c.Confirm, (*config.Speech)(nil)},
		{"no reprompt", c.Reprompt, (*config.Speech)(nil)},
		{"card title", MustExec(t, c.CardTitle.T, slots), "Amazon"},
		{"card text", MustExec(t, c.CardText.T, slots), "123.45 USD"},
		{"session", [2]any{c.Session[0].Name, MustExec(t, c.Session[0].T, slots)}, [2]any{"last_symbol", "a/../b?x=1"}},
		{"progressive", MustExec(t, c.Progressive.T, nil), "One moment while I check."},
		{"end session", c.EndSession, true},
		{"error keys", keys(c.Errors), []string{"404", "4xx", "timeout"}},
		{"404 speech", MustExec(t, c.Errors["404"].T, slots), "I couldn't find a/../b?x=1."},
		{"skill errors", keys(sk.ErrorsC), []string{"default"}},
		{"launch reprompt", MustExec(t, sk.LaunchC.Reprompt.T, nil), "Which stock would you like?"},
		{"help", MustExec(t, sk.HelpC.Say.T, nil), "You can ask, what is Amazon trading at."},
		{"help intent", sk.HelpC.Intent, config.HelpIntent},
	}
	for _, ch := range checks {
		t.Run(ch.name, func(t *testing.T) {
			if !reflect.DeepEqual(ch.got, ch.want) {
				t.Errorf("got %#v, want %#v", ch.got, ch.want)
			}
		})
	}
}

func keys(m config.ErrorSpeech) []string {
	var out []string
	for _, k := range []string{"404", "4xx", "5xx", "timeout", "unlinked", "vault", "missing", "default"} {
		if m[k] != nil {
			out = append(out, k)
		}
	}
	return out
}

func TestSpeech(t *testing.T) {
	src := `
version: 1
skills:
  demo:
    launch: { say: "<speak>Hi {{ .user.id }}</speak>", reprompt: "Hi {{ .user.id }}" }
    intents:
      Hi:
        samples: [hi]
        say: "  <speak>{{ .session.who }} & {{ range .session.list }}{{ . }}{{ end }}</speak>"
        card: { title: "{{ .session.who }}" }
        session: { seen: "{{ .session.count }}" }
`
	cfg := MustParse(t, src, nil)
	sk := cfg.Skills["demo"]
	data := map[string]any{
		"user":    map[string]string{"id": "<u&1>"},
		"session": map[string]any{"who": `"R&D"`, "list": []any{"<a>", "'b'"}, "count": 1},
	}
	tests := []struct {
		name string
		sp   *config.Speech
		ssml bool
		want string
	}{
		{"ssml launch", sk.LaunchC.Say, true, "<speak>Hi &lt;u&amp;1&gt;</speak>"},
		{"plain reprompt", sk.LaunchC.Reprompt, false, "Hi <u&1>"},
		{"ssml after spaces, with range", sk.Intents["Hi"].C.Say, true, "  <speak>&quot;R&amp;D&quot; & &lt;a&gt;&apos;b&apos;</speak>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.sp.SSML != tc.ssml {
				t.Errorf("SSML = %v, want %v", tc.sp.SSML, tc.ssml)
			}
			if got := MustExec(t, tc.sp.T, data); got != tc.want {
				t.Errorf("speech = %q, want %q", got, tc.want)
			}
		})
	}
	if got := MustExec(t, sk.Intents["Hi"].C.CardTitle.T, data); got != `"R&D"` {
		t.Errorf("card title = %q: cards are not escaped", got)
	}
	if want := []string{"count", "list", "who"}; !reflect.DeepEqual(cfg.SessionRefs, want) {
		t.Errorf("SessionRefs = %q, want %q", cfg.SessionRefs, want)
	}
}

// TestProblemsAllAtOnce checks that validation goes on after a problem and
// that problems come sorted by position, whatever order they were found in.
func TestProblemsAllAtOnce(t *testing.T) {
	src := `version: 1
skills:
  demo:
    intents:
      Get:
        samples: [get]
        call: { service: nope, path: x }
        say: "{{ .nmae }}"
services:
  api: { base_url: ftp://x, timeout: soon }
server:
  deadline: 1 minute
vault:
  address: https://vault.example.com
  cache_ttl: -5s
  timeout: 0s
`
	cfg, problems := config.Parse("c.yaml", []byte(src), noEnv)
	if cfg != nil {
		t.Error("Parse returned a config")
	}
	want := []string{
		`c.yaml:7:26: skills.demo.intents.Get.call.service: no service "nope"`,
		`c.yaml:7:38: skills.demo.intents.Get.call.path: must start with /`,
		`c.yaml:8:14: skills.demo.intents.Get.say: unknown field .nmae: not a slot, session or extract name`,
		`c.yaml:10:20: services.api.base_url: must be an absolute http or https URL, not "ftp://x"`,
		`c.yaml:10:38: services.api.timeout: invalid duration "soon" (use e.g. 500ms, 2s, 1m)`,
		`c.yaml:12:13: server.deadline: invalid duration "1 minute" (use e.g. 500ms, 2s, 1m)`,
		`c.yaml:15:14: vault.cache_ttl: must be positive`,
		`c.yaml:16:12: vault.timeout: must be positive`,
	}
	var got []string
	for _, p := range problems {
		got = append(got, p.Error())
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	err := problems.Err()
	if err == nil {
		t.Fatal("Err() = nil")
	}
	if err.Error() != strings.Join(want, "\n") {
		t.Errorf("Err() =\n%v", err)
	}
	var p *config.Problem
	if !errors.As(err, &p) || p.Line != 7 || p.Col != 26 || p.Path != "skills.demo.intents.Get.call.service" {
		t.Errorf("errors.As(Err()) = %+v", p)
	}
}

func TestWarningsDoNotFail(t *testing.T) {
	src := `version: 1
alexa: { verify: false }
services:
  todo: { base_url: "https://todo.example.com", auth: { type: linked } }
skills:
  demo:
    intents:
      Hi: { samples: [hi], say: Hi., call: { service: todo, path: /x } }
`
	cfg, problems := config.Parse("w.yaml", []byte(src), noEnv)
	if cfg == nil {
		t.Fatalf("Parse returned nil with only warnings: %v", problems)
	}
	if err := problems.Err(); err != nil {
		t.Errorf("Err() = %v, want nil", err)
	}
	if len(problems.Errors()) != 0 {
		t.Errorf("Errors() = %v", problems.Errors())
	}
	var got []string
	for _, p := range problems.Warnings() {
		got = append(got, p.Error())
	}
	want := []string{
		`w.yaml:1:1: warning: no vault configured: linked services answer "unlinked" and secret services answer "vault"`,
		`w.yaml:2:10: warning: alexa.verify: request verification is off: use only for local testing`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if cfg.Vault != nil {
		t.Error("Vault is set")
	}
	if cfg.Alexa.Verifying() {
		t.Error("Verifying() = true")
	}
}

func TestProblemError(t *testing.T) {
	tests := []struct {
		name string
		p    config.Problem
		want string
	}{
		{"error", config.Problem{File: "c.yaml", Line: 42, Col: 7, Path: "skills.s.call.service", Msg: `no service "qoutes"`},
			`c.yaml:42:7: skills.s.call.service: no service "qoutes"`},
		{"no path", config.Problem{File: "c.yaml", Line: 1, Col: 1, Msg: "empty configuration"}, "c.yaml:1:1: empty configuration"},
		{"warning", config.Problem{File: "c.yaml", Line: 3, Col: 5, Path: "alexa.verify", Msg: "off", Warning: true},
			"c.yaml:3:5: warning: alexa.verify: off"},
		{"warning without path", config.Problem{File: "c.yaml", Line: 1, Col: 1, Msg: "no vault", Warning: true},
			"c.yaml:1:1: warning: no vault"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.p.Error(); got != tc.want {
				t.Errorf("Error() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	src := "version: 1\nserver: { listen: \"${VOICEGW_TEST_LISTEN}\" }\nskills: { demo: { intents: { Hi: { samples: [hi], say: Hi. } } } }\n"
	if err := os.WriteFile(good, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("VOICEGW_TEST_LISTEN", "127.0.0.1:1234")

	tests := []struct {
		name    string
		path    string
		listen  string
		problem string
	}{
		{"good", good, "127.0.0.1:1234", ""},
		{"missing", filepath.Join(dir, "nope.yaml"), "", filepath.Join(dir, "nope.yaml") + ":1:1: open "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, problems := config.Load(tc.path)
			if tc.problem == "" {
				if cfg == nil {
					t.Fatalf("Load: %v", problems.Err())
				}
				if cfg.File != tc.path || cfg.Server.Listen != tc.listen {
					t.Errorf("File, Listen = %q, %q", cfg.File, cfg.Server.Listen)
				}
				return
			}
			if cfg != nil {
				t.Error("Load returned a config")
			}
			if len(problems) != 1 || !strings.HasPrefix(problems[0].Error(), tc.problem) {
				t.Errorf("problems = %v, want one starting %q", problems, tc.problem)
			}
		})
	}
}

// TestAnchors checks that merge keys and aliases decode as YAML says.
func TestAnchors(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "config", "valid-anchors.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	input, _, _ := cutSeparator(string(raw))
	cfg := MustParse(t, input, nil)
	b := cfg.Services["b"]
	two := cfg.Skills["demo"].Intents["Two"].C
	checks := []struct {
		name      string
		got, want any
	}{
		{"merged timeout", b.Timeout.D, 2 * time.Second},
		{"merged headers", b.Headers, map[string]string{"User-Agent": "voicegw"}},
		{"own base url", b.URL.Host, "b.example.com"},
		{"merged say", MustExec(t, two.Say.T, nil), "One."},
		{"own calls", len(two.Calls), 1},
		{"call service", two.Calls[0].Service, b},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if !reflect.DeepEqual(c.got, c.want) {
				t.Errorf("got %#v, want %#v", c.got, c.want)
			}
		})
	}
	body, err := two.Calls[0].Body.JSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"x":1,"y":["a","b"]}`; string(body) != want {
		t.Errorf("aliased body = %s, want %s", body, want)
	}
}
