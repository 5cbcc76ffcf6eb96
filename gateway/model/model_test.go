package model_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/gateway/model"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func noEnv(string) (string, bool) { return "", false }

// MustSkill parses src and returns its skill named name.
func MustSkill(tb testing.TB, file string, src []byte, name string) *config.Skill {
	tb.Helper()
	cfg, problems := config.Parse(file, src, noEnv)
	if cfg == nil {
		tb.Fatalf("parse %s: %v", file, problems.Err())
	}
	sk, ok := cfg.Skills[name]
	if !ok {
		tb.Fatalf("%s: no skill %q", file, name)
	}
	return sk
}

const shop = `
version: 1
services:
  api: { base_url: "https://api.example.com" }
skills:
  shop:
    invocation: corner shop
    types:
      PRODUCT:
        - { value: apple, id: APL, synonyms: [apples, green apple] }
        - { value: pear }
      COLOR:
        - { value: red }
    intents:
      Order:
        samples: ["order {Count} {Product}", "buy {Product}"]
        slots:
          Product:
            type: PRODUCT
            required: true
            prompt: "Which product would you like, {{ .user.id }}?"
            samples: ["{Product}", "I want {Product}"]
          Count: { type: AMAZON.NUMBER }
          When: { type: AMAZON.DATE, required: true }
        confirm: "Order {{ .slots.Count }} {{- .slots.Product | upper }} {{ if .slots.When }}on {{ .slots.When }}{{ else }}now{{ end }}?"
        call: { service: api, method: POST, path: /orders }
        say: Done.
      Cancel:
        samples: ["cancel my order"]
        confirm: "<speak>Cancel it <emphasis>now</emphasis>?</speak>"
        say: Cancelled.
      Status:
        samples: ["where is my order"]
        say: On its way.
      AMAZON.HelpIntent:
        samples: ["what can I buy"]
        say: You can order fruit.
`

func TestBuild(t *testing.T) {
	sk := MustSkill(t, "shop.yaml", []byte(shop), "shop")
	m := model.Build(sk, "")
	im := m.InteractionModel
	lm := im.LanguageModel

	if m.Locale != model.DefaultLocale {
		t.Errorf("Locale = %q, want %q", m.Locale, model.DefaultLocale)
	}
	if lm.InvocationName != "corner shop" {
		t.Errorf("invocationName = %q", lm.InvocationName)
	}
	intents := map[string]*model.Intent{}
	var names []string
	for _, in := range lm.Intents {
		intents[in.Name] = in
		names = append(names, in.Name)
	}
	wantNames := "AMAZON.CancelIntent AMAZON.FallbackIntent AMAZON.HelpIntent AMAZON.NavigateHomeIntent AMAZON.StopIntent Cancel Order Status"
	if got := strings.Join(names, " "); got != wantNames {
		t.Errorf("intents = %s\nwant      %s", got, wantNames)
	}

	t.Run("intents", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			samples string
			slots   string // name:type:samples, sorted by name
		}{
			{name: "AMAZON.CancelIntent"},
			{name: "AMAZON.FallbackIntent"},
			{name: "AMAZON.NavigateHomeIntent"},
			{name: "AMAZON.StopIntent"},
			{name: "AMAZON.HelpIntent", samples: "what can I buy"},
			{name: "Cancel", samples: "cancel my order"},
			{name: "Status", samples: "where is my order"},
			{
				name:    "Order",
				samples: "order {Count} {Product}|buy {Product}",
				slots:   "Count:AMAZON.NUMBER: Product:PRODUCT:{Product}|I want {Product} When:AMAZON.DATE:",
			},
		} {
			t.Run(tc.name, func(t *testing.T) {
				in := intents[tc.name]
				if in == nil {
					t.Fatalf("missing intent %s", tc.name)
				}
				if in.Samples == nil {
					t.Errorf("samples is nil, want [] or a list")
				}
				if got := strings.Join(in.Samples, "|"); got != tc.samples {
					t.Errorf("samples = %q, want %q", got, tc.samples)
				}
				var slots []string
				for _, s := range in.Slots {
					slots = append(slots, s.Name+":"+s.Type+":"+strings.Join(s.Samples, "|"))
				}
				if got := strings.Join(slots, " "); got != tc.slots {
					t.Errorf("slots = %q, want %q", got, tc.slots)
				}
			})
		}
	})

	t.Run("types", func(t *testing.T) {
		if len(lm.Types) != 2 || lm.Types[0].Name != "COLOR" || lm.Types[1].Name != "PRODUCT" {
			t.Fatalf("types = %+v, want COLOR, PRODUCT", lm.Types)
		}
		p := lm.Types[1].Values
		if len(p) != 2 {
			t.Fatalf("PRODUCT values = %d, want 2", len(p))
		}
		if p[0].ID != "APL" || p[0].Name.Value != "apple" || strings.Join(p[0].Name.Synonyms, ",") != "apples,green apple" {
			t.Errorf("PRODUCT[0] = %+v", p[0])
		}
		if p[1].ID != "" || p[1].Name.Value != "pear" || p[1].Name.Synonyms != nil {
			t.Errorf("PRODUCT[1] = %+v", p[1])
		}
	})

	t.Run("dialog", func(t *testing.T) {
		if im.Dialog == nil {
			t.Fatal("no dialog")
		}
		if im.Dialog.DelegationStrategy != "SKILL_RESPONSE" {
			t.Errorf("delegationStrategy = %q", im.Dialog.DelegationStrategy)
		}
		var got []string
		for _, di := range im.Dialog.Intents {
			s := di.Name + " confirm=" + di.Prompts.Confirmation
			for _, sl := range di.Slots {
				if !sl.ElicitationRequired || sl.ConfirmationRequired {
					t.Errorf("%s.%s: elicitationRequired=%v confirmationRequired=%v", di.Name, sl.Name, sl.ElicitationRequired, sl.ConfirmationRequired)
				}
				s += " " + sl.Name + ":" + sl.Type + "=" + sl.Prompts.Elicitation
			}
			if di.ConfirmationRequired != (di.Prompts.Confirmation != "") {
				t.Errorf("%s: confirmationRequired=%v with prompt %q", di.Name, di.ConfirmationRequired, di.Prompts.Confirmation)
			}
			got = append(got, s)
		}
		want := []string{
			"Cancel confirm=Confirm.Intent.Cancel",
			"Order confirm=Confirm.Intent.Order Product:PRODUCT=Elicit.Slot.Order.Product When:AMAZON.DATE=Elicit.Slot.Order.When",
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("dialog intents:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})

	t.Run("prompts", func(t *testing.T) {
		prompts := map[string]*model.Variation{}
		var ids []string
		for _, p := range im.Prompts {
			if len(p.Variations) != 1 {
				t.Fatalf("%s: %d variations, want 1", p.ID, len(p.Variations))
			}
			prompts[p.ID] = p.Variations[0]
			ids = append(ids, p.ID)
		}
		if got, want := strings.Join(ids, " "), "Confirm.Intent.Cancel Confirm.Intent.Order Elicit.Slot.Order.Product Elicit.Slot.Order.When"; got != want {
			t.Errorf("prompt ids = %s, want %s", got, want)
		}
		for _, tc := range []struct{ id, typ, value string }{
			{"Confirm.Intent.Cancel", "SSML", "<speak>Cancel it <emphasis>now</emphasis>?</speak>"},
			{"Confirm.Intent.Order", "PlainText", "Order {Count} on {When}?"},
			{"Elicit.Slot.Order.Product", "PlainText", "Which product would you like?"},
			{"Elicit.Slot.Order.When", "PlainText", "Which when?"},
		} {
			t.Run(tc.id, func(t *testing.T) {
				v := prompts[tc.id]
				if v == nil {
					t.Fatalf("no prompt %s", tc.id)
				}
				if v.Type != tc.typ || v.Value != tc.value {
					t.Errorf("got %s %q, want %s %q", v.Type, v.Value, tc.typ, tc.value)
				}
			})
		}
	})
}

func TestBuildNoDialog(t *testing.T) {
	src := `
version: 1
skills:
  plain:
    invocation: plain talk
    intents:
      Hello:
        samples: ["say hello"]
        say: Hello.
`
	m := model.Build(MustSkill(t, "plain.yaml", []byte(src), "plain"), "de-DE")
	if m.Locale != "de-DE" {
		t.Errorf("Locale = %q", m.Locale)
	}
	var buf bytes.Buffer
	if err := m.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var raw map[string]map[string]json.RawMessage
	if err := json.Unmarshal(buf.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	im := raw["interactionModel"]
	if _, ok := im["languageModel"]; !ok {
		t.Error("no languageModel")
	}
	// SPEC 8 names both keys: they are present, and empty.
	if got := strings.Join(strings.Fields(string(im["dialog"])), ""); got != `{"delegationStrategy":"SKILL_RESPONSE","intents":[]}` {
		t.Errorf("dialog = %s, want no intents", got)
	}
	if got := strings.TrimSpace(string(im["prompts"])); got != "[]" {
		t.Errorf("prompts = %s, want []", got)
	}
	if !strings.Contains(buf.String(), `"types": []`) {
		t.Errorf("types should be [] without custom types:\n%s", buf.String())
	}
}

func TestPromptText(t *testing.T) {
	slots := []string{"A", "B"}
	for _, tc := range []struct{ name, src, want string }{
		{"plain", "Which stock?", "Which stock?"},
		{"slot", "Buy {{ .slots.A }} now?", "Buy {A} now?"},
		{"trim markers", "Buy {{- .slots.A -}} now?", "Buy{A}now?"},
		{"unknown slot", "Buy {{ .slots.C }}?", "Buy?"},
		{"pipeline", "Buy {{ .slots.A | upper }} and {{ .slots.B }}?", "Buy and {B}?"},
		{"function", "Say {{ spell .slots.A }}.", "Say."},
		{"extract", "{{ .name }} costs {{ .price }}, buy {{ .slots.B }}?", "costs, buy {B}?"},
		{"if", "Buy {{ if .slots.A }}{{ .slots.A }} items{{ else }}one item{{ end }}?", "Buy {A} items?"},
		{"range", "{{ range .list }}x {{ end }}done", "x done"},
		{"comment", "Hi {{/* note */}} there", "Hi there"},
		{"ssml", "<speak>Buy <emphasis>{{ .slots.A }}</emphasis>?</speak>", "<speak>Buy <emphasis>{A}</emphasis>?</speak>"},
		{"unparsable", "Buy {{ .slots.A", "Buy {{ .slots.A"},
		{"unparsable closed", "Buy {{ end }} it", "Buy it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := model.PromptText(tc.src, slots); got != tc.want {
				t.Errorf("PromptText(%q) = %q, want %q", tc.src, got, tc.want)
			}
		})
	}
}

func TestGolden(t *testing.T) {
	for _, tc := range []struct{ name, config, skill string }{
		{"acceptance-stocks", "acceptance.yaml", "stocks"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join("testdata", tc.config))
			if err != nil {
				t.Fatal(err)
			}
			sk := MustSkill(t, tc.config, src, tc.skill)
			var buf bytes.Buffer
			if err := model.Build(sk, "en-US").WriteJSON(&buf); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("model differs from %s (go test -update rewrites it):\n%s", golden, buf.String())
			}
			// Determinism: a second build gives the same bytes.
			var again bytes.Buffer
			if err := model.Build(sk, "en-US").WriteJSON(&again); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), again.Bytes()) {
				t.Error("two builds differ")
			}
		})
	}
}

// TestBuildLocales: each locale's samples, prompts, type values and
// invocation name; multipleValues for a slot with multiple: true.
func TestBuildLocales(t *testing.T) {
	src := `
version: 1
skills:
  shop:
    locales: [en-US, de-DE]
    invocation: { en-US: shop buddy, de-DE: laden freund }
    types:
      FOOD:
        - { id: CHEESE, value: { en-US: cheese, de-DE: Käse }, synonyms: { en-US: [cheddar], de-DE: [Bergkäse] } }
        - { id: HAM, value: ham }
    intents:
      Order:
        samples: { en-US: ["order {Food}"], de-DE: ["bestelle {Food}"] }
        slots:
          Food: { type: FOOD, required: true, multiple: true, prompt: { en-US: "Which {{ .slots.Food }}?", de-DE: "Welches Essen?" } }
        confirm: { en-US: "Sure?", de-DE: "Sicher?" }
        say: ok
`
	sk := MustSkill(t, "shop.yaml", []byte(src), "shop")
	for _, tc := range []struct {
		locale, invocation, sample, value, synonym, prompt, confirm string
	}{
		{"en-US", "shop buddy", "order {Food}", "cheese", "cheddar", "Which {Food}?", "Sure?"},
		{"de-DE", "laden freund", "bestelle {Food}", "Käse", "Bergkäse", "Welches Essen?", "Sicher?"},
		{"de-AT", "laden freund", "bestelle {Food}", "Käse", "Bergkäse", "Welches Essen?", "Sicher?"},
	} {
		t.Run(tc.locale, func(t *testing.T) {
			m := model.Build(sk, tc.locale)
			lm := m.InteractionModel.LanguageModel
			if m.Locale != tc.locale || lm.InvocationName != tc.invocation {
				t.Errorf("locale %q invocation %q", m.Locale, lm.InvocationName)
			}
			var order *model.Intent
			for _, in := range lm.Intents {
				if in.Name == "Order" {
					order = in
				}
			}
			if order == nil || len(order.Samples) != 1 || order.Samples[0] != tc.sample {
				t.Fatalf("Order %+v", order)
			}
			if mv := order.Slots[0].MultipleValues; mv == nil || !mv.Enabled {
				t.Error("no multipleValues")
			}
			v := lm.Types[0].Values
			if v[0].Name.Value != tc.value || v[0].Name.Synonyms[0] != tc.synonym || v[1].Name.Value != "ham" {
				t.Errorf("type values %+v %+v", v[0].Name, v[1].Name)
			}
			prompts := map[string]string{}
			for _, p := range m.InteractionModel.Prompts {
				prompts[p.ID] = p.Variations[0].Value
			}
			if prompts[model.ElicitID("Order", "Food")] != tc.prompt || prompts[model.ConfirmID("Order")] != tc.confirm {
				t.Errorf("prompts %v", prompts)
			}
			var buf bytes.Buffer
			if err := m.WriteJSON(&buf); err != nil || !strings.Contains(buf.String(), `"multipleValues": {`) {
				t.Errorf("JSON: %v\n%s", err, buf.String())
			}
		})
	}
}
