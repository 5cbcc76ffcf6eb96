package engine_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/auth"
	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/gateway/engine"
	"github.com/voicegw/voicegw/gateway/inmem"
	"github.com/voicegw/voicegw/gateway/upstream"
)

const platformConfig = `version: 1
server:
  errors: { default: { en-US: server sorry, de-DE: Server Entschuldigung } }
services:
  api: { base_url: UPSTREAM, timeout: 200ms, auth: { type: linked } }
skills:
  s:
    locales: [en-US, de-DE]
    launch: { say: { en-US: Welcome., de-DE: Willkommen. } }
    types:
      FOOD:
        - { id: CHEESE, value: { en-US: cheese, de-DE: Käse }, synonyms: { en-US: [cheddar], de-DE: [Bergkäse] } }
    intents:
      Order:
        samples: { en-US: ["order {Food}"], de-DE: ["bestelle {Food}"] }
        slots:
          Food: { type: FOOD, required: true, multiple: true, prompt: { en-US: "What food?", de-DE: "Welches Essen?" } }
          When: { type: AMAZON.DATE }
        call: { service: api, path: /fail }
        say: "{{ sayList .slots.Food }}"
      Say:
        samples: ["say it"]
        say: { en-US: English, de-DE: Deutsch }
`

// countingStore counts reads of the secret store with the upstream calls.
type countingStore struct {
	gateway.SecretStore
	reads *atomic.Int32
}

func (c *countingStore) Read(ctx context.Context, path string) (*gateway.Entry, error) {
	c.reads.Add(1)
	return c.SecretStore.Read(ctx, path)
}

// platformEngine is an engine over platformConfig whose upstream counts
// its calls and answers 500; the count includes secret store reads.
func platformEngine(t *testing.T, forget engine.Forgetter) (*engine.Engine, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(up.Close)
	cfg := mustConfig(t, platformConfig, up.URL)
	return engine.New(cfg, engine.Options{
		Caller: upstream.New(upstream.DefaultOptions),
		Credentials: auth.New(&countingStore{SecretStore: inmem.New(map[string]map[string]string{
			"users/amzn1.ask.account.T/api": {"access_token": "t"}}), reads: &calls}, 0),
		Forgetter: forget,
		Logger:    slog.New(slog.DiscardHandler),
	}), &calls
}

func mustConfig(t *testing.T, src, upstreamURL string) *config.Config {
	t.Helper()
	src = strings.ReplaceAll(src, "UPSTREAM", upstreamURL)
	cfg, problems := config.Parse("platform.yaml", []byte(src), func(string) (string, bool) { return "", false })
	if cfg == nil {
		t.Fatal(problems.Err())
	}
	return cfg
}

func TestLocaleChoice(t *testing.T) {
	e, _ := platformEngine(t, nil)
	for _, tc := range []struct{ locale, want string }{
		{"en-US", "English"}, {"de-DE", "Deutsch"}, {"de-AT", "Deutsch"}, {"en-GB", "English"},
		{"fr-FR", "English"}, {"", "English"},
	} {
		t.Run(tc.locale, func(t *testing.T) {
			r := e.Turn(context.Background(), &gateway.Turn{Skill: "s", Kind: gateway.KindIntent, Intent: "Say", Locale: tc.locale})
			if r.Speech.Text != tc.want {
				t.Errorf("%q: %q, want %q", tc.locale, r.Speech.Text, tc.want)
			}
		})
	}
	// Gateway-wide error speech given per locale answers in the turn's.
	r := e.Turn(context.Background(), &gateway.Turn{Skill: "s", Kind: gateway.KindIntent, Intent: "Order", Locale: "de-DE",
		UserID: "amzn1.ask.account.T", Slots: map[string]gateway.Slot{"Food": {Value: "Käse"}}})
	if r.Speech.Text != "Server Entschuldigung" {
		t.Errorf("error speech in de-DE: %q", r.Speech.Text)
	}
	r = e.Turn(context.Background(), &gateway.Turn{Skill: "s", Kind: gateway.KindIntent, Intent: "Order", Locale: "de-DE"})
	if r.Speech.Text != "Welches Essen?" || len(r.Directives) != 1 || r.Directives[0].Type != "Dialog.ElicitSlot" {
		t.Errorf("elicitation in de-DE: %+v", r)
	}
}

func TestMultiValueSlots(t *testing.T) {
	cfg := mustConfig(t, `version: 1
skills:
  s:
    intents:
      Order:
        samples: ["order {Food}"]
        slots: { Food: { type: AMAZON.Food, required: true, multiple: true } }
        say: "{{ sayList .slots.Food }} / {{ join \"+\" .slots.Food }} / {{ range .slot_ids.Food }}[{{ . }}]{{ end }} / {{ len .slots.Food }}"
`, "")
	e := engine.New(cfg, engine.Options{Credentials: auth.New(nil, 0), Logger: slog.New(slog.DiscardHandler)})
	for _, tc := range []struct {
		name string
		slot gateway.Slot
		want string
	}{
		{"three values, one resolved", gateway.Slot{Values: []gateway.Slot{{Value: "cheddar", Resolved: "cheese", ID: "C"}, {Value: "ham"}, {Value: "eggs"}}},
			"cheese, ham and eggs / cheese+ham+eggs / [C][][] / 3"},
		{"one value, as Alexa sends a single one", gateway.Slot{Value: "ham"}, "ham / ham / [] / 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.Turn(context.Background(), &gateway.Turn{Skill: "s", Kind: gateway.KindIntent, Intent: "Order",
				Slots: map[string]gateway.Slot{"Food": tc.slot}})
			if r.Speech.Text != tc.want || len(r.Directives) > 0 {
				t.Errorf("%q %v, want %q", r.Speech.Text, r.Directives, tc.want)
			}
		})
	}
	// Without values the required slot is elicited; an empty list is not a value.
	for _, s := range []gateway.Slot{{}, {Values: []gateway.Slot{}}, {Values: []gateway.Slot{{Value: ""}}}} {
		r := e.Turn(context.Background(), &gateway.Turn{Skill: "s", Kind: gateway.KindIntent, Intent: "Order",
			Slots: map[string]gateway.Slot{"Food": s}})
		if len(r.Directives) != 1 || r.Directives[0].Slot != "Food" {
			t.Errorf("%+v: not elicited: %+v", s, r)
		}
	}
}

func TestCanFulfill(t *testing.T) {
	e, calls := platformEngine(t, nil)
	slot := func(v string) gateway.Slot { return gateway.Slot{Value: v} }
	for _, tc := range []struct {
		name   string
		intent string
		locale string
		slots  map[string]gateway.Slot
		want   string
		slot   map[string]gateway.SlotFulfill
	}{
		{"value", "Order", "en-US", map[string]gateway.Slot{"Food": slot("cheese")}, "YES",
			map[string]gateway.SlotFulfill{"Food": {Understand: "YES", Fulfill: "YES"}}},
		{"synonym in its locale", "Order", "de-DE", map[string]gateway.Slot{"Food": slot("bergkäse")}, "YES",
			map[string]gateway.SlotFulfill{"Food": {Understand: "YES", Fulfill: "YES"}}},
		{"another locale's synonym", "Order", "de-DE", map[string]gateway.Slot{"Food": slot("cheddar")}, "YES",
			map[string]gateway.SlotFulfill{"Food": {Understand: "MAYBE", Fulfill: "YES"}}},
		{"several values, one unknown", "Order", "en-US", map[string]gateway.Slot{"Food": {Values: []gateway.Slot{slot("cheese"), slot("bread")}}}, "YES",
			map[string]gateway.SlotFulfill{"Food": {Understand: "MAYBE", Fulfill: "YES"}}},
		{"resolved by Alexa", "Order", "en-US", map[string]gateway.Slot{"Food": {Value: "chedar", Resolved: "cheese"}}, "YES",
			map[string]gateway.SlotFulfill{"Food": {Understand: "YES", Fulfill: "YES"}}},
		{"built-in type", "Order", "en-US", map[string]gateway.Slot{"When": slot("tomorrow")}, "YES",
			map[string]gateway.SlotFulfill{"When": {Understand: "YES", Fulfill: "YES"}}},
		{"a slot the intent lacks", "Order", "en-US", map[string]gateway.Slot{"Food": slot("cheese"), "Size": slot("large")}, "NO",
			map[string]gateway.SlotFulfill{"Food": {Understand: "YES", Fulfill: "YES"}, "Size": {Understand: "MAYBE", Fulfill: "NO"}}},
		{"an intent not configured", "Unknown", "en-US", nil, "NO", map[string]gateway.SlotFulfill{}},
		{"a built-in intent not configured", config.HelpIntent, "en-US", nil, "NO", map[string]gateway.SlotFulfill{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.Turn(context.Background(), &gateway.Turn{Skill: "s", Kind: gateway.KindCanFulfill, Intent: tc.intent, Locale: tc.locale, Slots: tc.slots})
			if r.CanFulfill == nil || !r.Empty {
				t.Fatalf("reply %+v", r)
			}
			if r.CanFulfill.Intent != tc.want || len(r.CanFulfill.Slots) != len(tc.slot) {
				t.Errorf("canFulfill %+v, want %s %v", r.CanFulfill, tc.want, tc.slot)
			}
			for k, v := range tc.slot {
				if r.CanFulfill.Slots[k] != v {
					t.Errorf("slot %s: %+v, want %+v", k, r.CanFulfill.Slots[k], v)
				}
			}
		})
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("CanFulfill made %d upstream calls and secret store reads", n)
	}
}

type forgetFunc func(ctx context.Context, user string) error

func (f forgetFunc) Forget(ctx context.Context, user string) error { return f(ctx, user) }

func TestDisabledForgets(t *testing.T) {
	got := make(chan string, 2)
	e, calls := platformEngine(t, forgetFunc(func(ctx context.Context, user string) error {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("forgetting has no budget")
		}
		got <- user
		return errors.New("vault down")
	}))
	// The turn's own context ends at once: forgetting goes on regardless.
	ctx, cancel := context.WithCancel(context.Background())
	r := e.Turn(ctx, &gateway.Turn{Skill: "s", Kind: gateway.KindDisabled, UserID: "amzn1.ask.account.X"})
	cancel()
	if !r.Empty || r.Speech.Text != "" {
		t.Errorf("reply %+v, want an empty acknowledgement even when forgetting fails", r)
	}
	select {
	case user := <-got:
		if user != "amzn1.ask.account.X" || calls.Load() != 0 {
			t.Errorf("forgot %q with %d calls", user, calls.Load())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the user was never forgotten")
	}
	// Without a secret store there is nothing to forget.
	e, _ = platformEngine(t, nil)
	if r := e.Turn(context.Background(), &gateway.Turn{Skill: "s", Kind: gateway.KindDisabled, UserID: "amzn1.ask.account.X"}); !r.Empty {
		t.Errorf("reply %+v", r)
	}
}
