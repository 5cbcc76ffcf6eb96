package scenario_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/voicegw/voicegw/gateway/alexa"
	"github.com/voicegw/voicegw/gateway/auth"
	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/gateway/engine"
	"github.com/voicegw/voicegw/gateway/inmem"
	"github.com/voicegw/voicegw/gateway/scenario"
	"github.com/voicegw/voicegw/gateway/upstream"
)

const foodConfig = `version: 1
alexa: { verify: false }
skills:
  food:
    invocation: food buddy
    types:
      DISH:
        - { value: pad thai, id: PT, synonyms: [noodles, phad thai] }
        - { value: curry }
    intents:
      Order:
        samples: ["order {Dish}"]
        slots: { Dish: { type: DISH } }
        confirm: "Order {{ .slots.Dish }}?"
        say: "[{{ .slots.Dish }}|{{ .slot_ids.Dish }}]"
`

// MustRunConfig is MustRun with another configuration.
func MustRunConfig(t *testing.T, cfgText, sc string) (string, int) {
	t.Helper()
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "config.yaml")
	scFile := filepath.Join(dir, "sc.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(scFile, []byte(sc), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	r := &scenario.Runner{
		Config: cfgFile,
		Out:    &out,
		Build: func(cfg *config.Config, store *inmem.Store) scenario.Handler {
			eng := engine.New(cfg, engine.Options{
				Caller:      upstream.New(upstream.DefaultOptions),
				Credentials: auth.New(store, 0),
			})
			return &alexa.Handler{Engine: eng}
		},
	}
	failed := r.Run([]string{scFile})
	return strings.ReplaceAll(out.String(), scFile, "SC"), failed
}

// TestEntityResolution: a value or synonym of the slot's custom type
// resolves as Alexa resolves it (the value's name and id), {value, id,
// name} is sent as given, anything else stays the spoken value.
func TestEntityResolution(t *testing.T) {
	out, failed := MustRunConfig(t, foodConfig, `skill: food
turns:
  - intent: Order
    slots: { Dish: noodles }
    confirmation: CONFIRMED
    expect: { say: "[pad thai|PT]" }
  - intent: Order
    slots: { Dish: Phad Thai }
    confirmation: CONFIRMED
    expect: { say: "[pad thai|PT]" }
  - intent: Order
    slots: { Dish: curry }
    confirmation: CONFIRMED
    expect: { say: "[curry|]" }
  - intent: Order
    slots: { Dish: { value: the usual, id: U1, name: green curry } }
    confirmation: CONFIRMED
    expect: { say: "[green curry|U1]" }
  - intent: Order
    slots: { Dish: sushi }
    confirmation: CONFIRMED
    expect: { say: "[sushi|]" }
  - intent: Order
    slots: { Dish: noodles }
    expect: { directive: Dialog.ConfirmIntent, say: "Order pad thai?" }
`)
	if failed != 0 {
		t.Fatalf("failed=%d:\n%s", failed, out)
	}
}

// TestScenarioErrors: scenario mistakes are errors of the scenario, at
// FILE:LINE:COL with a key path, without Go type names.
func TestScenarioErrors(t *testing.T) {
	for _, tc := range []struct {
		name, sc string
		want     []string
	}{
		{"misspelt intent", "skill: food\nturns:\n  - intent: Ordr\n    expect: { say: x }\n",
			[]string{`SC:3:13: turns[0].intent: skill food has no intent "Ordr" (did you mean Order?)`}},
		{"unknown built-in intent", "skill: food\nturns:\n  - intent: AMAZON.YesIntent\n",
			[]string{`SC:3:13: turns[0].intent: skill food has no intent "AMAZON.YesIntent"`}},
		{"slot the intent lacks", "skill: food\nturns:\n  - intent: Order\n    slots: { Dsh: curry }\n",
			[]string{`SC:4:14: turns[0].slots.Dsh: intent Order has no slot "Dsh" (did you mean Dish?)`}},
		{"misspelt expectation", "skill: food\nturns:\n  - intent: Order\n    expect:\n      say_contain: x\n",
			[]string{`SC:5:7: turns[0].expect.say_contain: field say_contain not found in expect (did you mean say_contains?)`}},
		{"misspelt slot key", "skill: food\nturns:\n  - intent: Order\n    slots: { Dish: { vlaue: x } }\n",
			[]string{`SC:4:22: turns[0].slots.Dish.vlaue: field vlaue not found in Dish (did you mean value?)`}},
		{"wrong type", "skill: food\nturns:\n  - intent: Order\n    expect: { end_session: maybe }\n",
			[]string{`SC:4:28: turns[0].expect.end_session: expected true or false, got string "maybe"`}},
		{"tab", "skill: food\nturns:\n  - intent: Order\n\t  expect: {}\n",
			[]string{`SC:4:1: turns[0].expect: a tab indents this line`}},
		{"indentation", "skill: food\nturns:\n  - intent: Order\n    slots: { Dish: curry }\n   expect: { say: x }\n",
			[]string{`SC:5:4: `, "indentation: expect is indented 3 spaces"}},
		{"launch and intent", "skill: food\nturns:\n  - { launch: true, intent: Order }\n",
			[]string{`SC:3:5: turns[0]: turn 1 needs exactly one of`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, failed := MustRunConfig(t, foodConfig, tc.sc)
			if failed != 1 {
				t.Fatalf("failed=%d, want 1:\n%s", failed, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "scenario.") || strings.Contains(out, "config.") {
				t.Errorf("output names a Go type:\n%s", out)
			}
		})
	}
}

// TestUnknownIntentFarFromAll: an intent that is no likely misspelling
// runs as the fallback, with a warning that names it.
func TestUnknownIntentFarFromAll(t *testing.T) {
	out, failed := MustRunConfig(t, foodConfig, "skill: food\nturns:\n  - intent: SomethingElse\n    expect: { say_contains: \"didn't get that\" }\n")
	if failed != 0 || !strings.Contains(out, `warning: SC:3:13: turns[0].intent: skill food has no intent "SomethingElse": the turn runs as the fallback`) {
		t.Fatalf("failed=%d:\n%s", failed, out)
	}
}
