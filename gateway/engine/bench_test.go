package engine_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/inmem"
)

const engineBench = `version: 1
alexa: { verify: false }
services:
  quotes: { base_url: UPSTREAM, timeout: 2s }
skills:
  stocks:
    application_id: amzn1.ask.skill.bench
    intents:
      GetQuote:
        samples: ["quote {Symbol}"]
        slots: { Symbol: { type: AMAZON.SearchQuery, required: true } }
        call:
          service: quotes
          path: /v1/quote/{{ .slots.Symbol }}
          query: { range: 1d }
          extract: { name: data.name, price: { path: data.price, required: true } }
        say: "{{ .name }} is trading at {{ .price }} dollars."
      Echo:
        samples: ["echo {Symbol}"]
        slots: { Symbol: { type: AMAZON.SearchQuery } }
        say: "You said {{ .slots.Symbol | upper }}."
        card: { title: "Echo", text: "{{ .slots.Symbol }}" }
        session: { last: "{{ .slots.Symbol }}" }
`

// benchTurn runs the engine alone (no envelope, no encoding) on one
// neutral turn of intent, checking the first answer.
func benchTurn(b *testing.B, intent, speech string) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"data":{"name":"Amazon","price":123.45,"currency":"USD"}}`)
	}))
	b.Cleanup(up.Close)
	e := MustEngine(b, engineBench, up.URL, inmem.New(nil))
	turn := func() *gateway.Turn {
		return &gateway.Turn{Skill: "stocks", ApplicationID: "amzn1.ask.skill.bench", Kind: gateway.KindIntent,
			Type: "IntentRequest", Intent: intent, Slots: map[string]gateway.Slot{"Symbol": {Value: "AMZN"}},
			UserID: "amzn1.ask.account.BENCH", Locale: "en-US", Confirmation: gateway.ConfirmNone}
	}
	ctx := context.Background()
	if r := e.Turn(ctx, turn()); r.Speech.Text != speech {
		b.Fatalf("speech %q, want %q", r.Speech.Text, speech)
	}
	b.ReportAllocs()
	for b.Loop() {
		e.Turn(ctx, turn())
	}
}

// BenchmarkEngineCall is the engine's turn with one GET to an httptest
// upstream: credentials, request templates, the call, extraction, speech.
func BenchmarkEngineCall(b *testing.B) {
	benchTurn(b, "GetQuote", "Amazon is trading at 123.45 dollars.")
}

// BenchmarkEngineNoCall is the engine's turn with templates only: a slot,
// Sprig, a card and a session attribute.
func BenchmarkEngineNoCall(b *testing.B) { benchTurn(b, "Echo", "You said AMZN.") }
