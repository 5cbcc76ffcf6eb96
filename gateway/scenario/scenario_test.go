package scenario_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/voicegw/voicegw/gateway/scenario"
)

const testConfig = `version: 1
alexa: { verify: false }
services:
  quotes:
    base_url: https://api.example.com/v2
    timeout: 300ms
    auth: { type: secret, field: api_key, header: X-Api-Key, format: "{{ .token }}" }
  notes:
    base_url: https://notes.example.com
    auth: { type: linked }
skills:
  stocks:
    application_id: amzn1.ask.skill.test
    launch: { say: Welcome. }
    intents:
      GetQuote:
        samples: ["quote for {Symbol}"]
        slots: { Symbol: { type: AMAZON.Corporation, required: true, prompt: "Which stock?" } }
        call:
          service: quotes
          method: POST
          path: /quote/{{ .slots.Symbol }}
          query: { range: 1d }
          body: { symbol: "{{ .slots.Symbol }}", n: 2 }
          extract: { price: { path: price, required: true } }
        say: "{{ .slots.Symbol }} is at {{ .price }}."
        card: { title: "{{ .slots.Symbol }}", text: "{{ .price }}" }
        session: { last: "{{ .slots.Symbol }}" }
        errors: { timeout: Too slow., "404": Unknown symbol. }
      ReadNote:
        samples: ["read my note"]
        call: { service: notes, path: /latest, extract: { text: note } }
        say: "Note: {{ .text }}"
`

// MustRun writes the config and a scenario, runs it through the real
// pipeline and returns the runner's output and failure count.
func MustRun(t *testing.T, sc string) (string, int) {
	t.Helper()
	return MustRunConfig(t, testConfig, sc)
}

const passing = `skill: stocks
secrets:
  services/quotes: { api_key: k-1 }
  users/amzn1.ask.account.TEST/notes: { access_token: n-1 }
stubs:
  - { service: quotes, method: POST, path: /v2/quote/AMZN, query: { range: 1d }, body: { price: 12.5 } }
  - { service: quotes, path: /quote/SLOW, delay: 2s, body: { price: 1 } }
  - { service: quotes, path: /quote/NOPE, status: 404, raw: "not json" }
  - { service: notes, path: /latest, body: { note: buy milk } }
turns:
  - launch: true
    expect: { say: Welcome., end_session: false, no_request: true }
  - intent: GetQuote
    expect: { directive: Dialog.ElicitSlot, say: "Which stock?", reprompt: "Which stock?", no_request: true }
  - intent: GetQuote
    slots: { Symbol: AMZN }
    expect:
      say: AMZN is at 12.5.
      card: { type: Simple, title: AMZN, text: "12.5" }
      session: { last: AMZN }
      end_session: true
      request:
        method: POST
        path: /v2/quote/AMZN
        query: { range: 1d }
        headers: { X-Api-Key: k-1 }
        body: { symbol: AMZN, n: 2 }
  - intent: GetQuote
    slots: { Symbol: SLOW }
    expect: { say: Too slow. }
  - intent: GetQuote
    slots: { Symbol: NOPE }
    expect: { say_contains: Unknown }
  - intent: ReadNote
    expect: { say: "Note: buy milk", request: { headers: { Authorization: Bearer n-1 } }, session: { last: AMZN } }
  - intent: ReadNote
    user: amzn1.ask.account.OTHER
    expect: { say_contains: link your account, no_request: true }
`

func TestRunnerPasses(t *testing.T) {
	out, failed := MustRun(t, passing)
	if failed != 0 || !strings.Contains(out, "ok   SC\n") || !strings.HasSuffix(out, "1 passed, 0 failed\n") {
		t.Fatalf("failed=%d, output:\n%s", failed, out)
	}
}

// TestRunnerReportsFailures: each failed expectation names the file, the
// line of its key, the turn, the expected and the actual value.
func TestRunnerReportsFailures(t *testing.T) {
	sc := `skill: stocks
secrets:
  services/quotes: { api_key: k-1 }
stubs:
  - { service: quotes, path: /quote/AMZN, body: { price: 12.5 } }
turns:
  - intent: GetQuote
    slots: { Symbol: AMZN }
    expect:
      say: AMZN is at 13.
      say_contains: cheap
      end_session: false
      card: { title: MSFT }
      session: { last: MSFT }
      directive: Dialog.ElicitSlot
      no_request: true
      request: { method: GET, path: /quote/MSFT, query: { range: 5d }, headers: { X-Api-Key: other }, body: { n: 3 } }
  - intent: GetQuote
    slots: { Symbol: IBM }
    expect: { say: whatever }
`
	out, failed := MustRun(t, sc)
	if failed != 1 {
		t.Fatalf("failed = %d, want 1:\n%s", failed, out)
	}
	for _, want := range []string{
		"FAIL SC",
		`SC:10: turn 1: say: expected "AMZN is at 13.", got "AMZN is at 12.5."`,
		`SC:11: turn 1: say_contains: expected speech containing "cheap", got "AMZN is at 12.5."`,
		`SC:12: turn 1: end_session: expected false, got true`,
		`SC:13: turn 1: card: expected "title MSFT", got "title AMZN"`,
		`SC:14: turn 1: session: expected {"last":"MSFT"}, got {"last":"AMZN"}`,
		`SC:15: turn 1: directive: expected "Dialog.ElicitSlot", got ""`,
		`SC:16: turn 1: no_request: expected "no upstream request", got "POST quotes /v2/quote/AMZN?range=1d"`,
		`SC:17: turn 1: request: expected "method GET", got "method POST"`,
		`SC:17: turn 1: request: expected "path /quote/MSFT", got "path /v2/quote/AMZN"`,
		`SC:17: turn 1: request: expected "query range=5d", got "query range=1d"`,
		`SC:17: turn 1: request: expected "header X-Api-Key: other", got "header X-Api-Key: k-1"`,
		`SC:17: turn 1: request: expected {"n":3}, got {"symbol":"AMZN","n":2}`,
		`SC:18: turn 2: no stub matches the upstream request POST quotes /v2/quote/IBM?range=1d`,
		"0 passed, 1 failed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}

func TestRunnerRejectsBadFiles(t *testing.T) {
	for _, tc := range []struct {
		name, sc, want string
	}{
		{"unknown key", "skill: stocks\nturns:\n  - intent: X\n    expcet: {}\n", "field expcet not found"},
		{"no skill", "turns:\n  - launch: true\n", "skill is required"},
		{"unknown skill", "skill: nope\nturns:\n  - launch: true\n", `no skill "nope"`},
		{"launch and intent", "skill: stocks\nturns:\n  - { launch: true, intent: X }\n", "turn 1 needs exactly one of"},
		{"stub for an unknown service", "skill: stocks\nstubs:\n  - { service: nope, path: / }\nturns:\n  - launch: true\n", `no service of the config: "nope"`},
		{"bad delay", "skill: stocks\nstubs:\n  - { service: quotes, path: /, delay: soon }\nturns:\n  - launch: true\n", `invalid duration "soon"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, failed := MustRun(t, tc.sc)
			if failed != 1 || !strings.Contains(out, tc.want) {
				t.Fatalf("failed=%d, want output with %q:\n%s", failed, tc.want, out)
			}
		})
	}
}

func TestDiscover(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"examples/a.yaml", "scenarios/b.yaml", "other/c.yaml"} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got := scenario.Discover(filepath.Join(dir, "config.yaml"))
	re := regexp.MustCompile(`(examples/a|scenarios/b)\.yaml$`)
	if len(got) != 2 || !re.MatchString(got[0]) || !re.MatchString(got[1]) {
		t.Fatalf("Discover = %v", got)
	}
}

// TestListForSingleSlot: a list is only for a slot with multiple: true,
// and an item of a list is a value or {value, id, name}, not a list.
func TestListForSingleSlot(t *testing.T) {
	out, failed := MustRun(t, `skill: stocks
turns:
  - intent: GetQuote
    slots: { Symbol: [AMZN, MSFT] }
`)
	if failed != 1 || !strings.Contains(out, "SC:4:14: turns[0].slots.Symbol: slot Symbol of intent GetQuote takes one value: give a string, or set multiple: true on the slot") {
		t.Errorf("output:\n%s", out)
	}
	out, failed = MustRun(t, `skill: stocks
turns:
  - intent: GetQuote
    slots: { Symbol: [[AMZN]] }
`)
	if failed != 1 || !strings.Contains(out, "SC:4:22: turns[0].slots.Symbol: expected a mapping, got a list") {
		t.Errorf("output:\n%s", out)
	}
}
