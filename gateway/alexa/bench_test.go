package alexa_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/alexa"
)

const benchConfig = `
version: 1
alexa:
  verify: false
services:
  quotes:
    base_url: ${VOICEGW_TEST_UPSTREAM}
    timeout: 2s
skills:
  stocks:
    application_id: amzn1.ask.skill.bench
    intents:
      GetQuote:
        samples: ["quote {Symbol}"]
        slots:
          Symbol: { type: AMAZON.SearchQuery, required: true }
        call:
          service: quotes
          path: /v1/quote/{{ .slots.Symbol }}
          query: { range: 1d }
          extract:
            name: data.name
            price: { path: data.price, required: true }
        say: "{{ .name }} is trading at {{ .price }} dollars."
`

// echoIntent answers from templates alone: a slot, Sprig, a card and a
// session attribute.
const echoIntent = `      Echo:
        samples: ["echo {Symbol}"]
        slots:
          Symbol: { type: AMAZON.SearchQuery }
        say: "You said {{ .slots.Symbol | upper }}."
        card: { title: "Echo", text: "{{ .slots.Symbol }}" }
        session: { last: "{{ .slots.Symbol }}" }
`

const benchAnswer = `{"data":{"name":"Amazon","price":123.45,"currency":"USD"}}`

// BenchmarkTurn is one full turn through alexa.Handler.Serve: decode the
// envelope, run the engine, one GET to an httptest upstream answering a
// small JSON, extract, render and encode.
func BenchmarkTurn(b *testing.B) {
	MustUpstream(b, jsonHandler(http.StatusOK, benchAnswer))
	h := MustPipeline(b, benchConfig, nil)
	body := buildIntent("amzn1.ask.skill.bench", "GetQuote", map[string]string{"Symbol": "AMZN"})
	benchServe(b, h, body, "Amazon is trading at 123.45 dollars.")
}

// benchServe checks one answer, then serves body b.N times.
func benchServe(b *testing.B, h *alexa.Handler, body []byte, speech string) {
	if r := mustServe(b, h, body); r.Speech() != speech {
		b.Fatalf("speech %q, want %q", r.Speech(), speech)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if status, _ := h.Serve(ctx, "", nil, body); status != http.StatusOK {
			b.Fatalf("status %d", status)
		}
	}
}

// BenchmarkDirectUpstream is BenchmarkTurn's upstream request made
// directly with net/http over a transport tuned like upstream.New's, with
// a per-call timeout and a capped body read: BenchmarkTurn minus this is
// the gateway's overhead.
func BenchmarkDirectUpstream(b *testing.B) {
	up := MustUpstream(b, jsonHandler(http.StatusOK, benchAnswer))
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4 * 256,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	url := up.URL + "/v1/quote/AMZN?range=1d"
	call := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, http.NoBody)
		if err != nil {
			return err
		}
		req.Header.Set("Accept", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20+1))
		return err
	}
	if err := call(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := call(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTurnNoCall is a turn without an upstream call (a templated
// answer with a slot and a card): decode, engine and encode alone, the
// gateway's own cost with nothing to wait for.
func BenchmarkTurnNoCall(b *testing.B) {
	MustUpstream(b, jsonHandler(http.StatusOK, benchAnswer)) // the config names one
	h := MustPipeline(b, benchConfig+echoIntent, nil)
	body := buildIntent("amzn1.ask.skill.bench", "Echo", map[string]string{"Symbol": "amzn"})
	benchServe(b, h, body, "You said AMZN.")
}

// BenchmarkTurnNoCallDeadline is BenchmarkTurnNoCall as the server calls
// Serve, with server.deadline on the context: the cost of the watchdog
// that answers a turn held past its deadline.
func BenchmarkTurnNoCallDeadline(b *testing.B) {
	MustUpstream(b, jsonHandler(http.StatusOK, benchAnswer))
	h := MustPipeline(b, benchConfig+echoIntent, nil)
	body := buildIntent("amzn1.ask.skill.bench", "Echo", map[string]string{"Symbol": "amzn"})
	b.ReportAllocs()
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
		if status, _ := h.Serve(ctx, "", nil, body); status != http.StatusOK {
			b.Fatalf("status %d", status)
		}
		cancel()
	}
}

// BenchmarkTurnParallel is BenchmarkTurn from GOMAXPROCS goroutines at
// once: throughput across cores with the shared transport and caches.
func BenchmarkTurnParallel(b *testing.B) {
	MustUpstream(b, jsonHandler(http.StatusOK, benchAnswer))
	h := MustPipeline(b, benchConfig, nil)
	body := buildIntent("amzn1.ask.skill.bench", "GetQuote", map[string]string{"Symbol": "AMZN"})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if status, _ := h.Serve(ctx, "", nil, body); status != http.StatusOK {
				b.Errorf("status %d", status)
				return
			}
		}
	})
}

// BenchmarkDecode is the envelope check and decode alone (UTF-8, nesting,
// duplicate keys ignoring case, fields), for an IntentRequest as Alexa
// sends it.
func BenchmarkDecode(b *testing.B) {
	body := buildIntent("amzn1.ask.skill.bench", "GetQuote", map[string]string{"Symbol": "AMZN"})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := alexa.Decode(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncode is the response encoding alone: speech, a card, a
// session attribute and a reprompt, within Alexa's limits.
func BenchmarkEncode(b *testing.B) {
	reply := &gateway.Reply{
		Speech:   gateway.Speech{Text: "Amazon is trading at 123.45 dollars."},
		Reprompt: &gateway.Speech{Text: "Which other stock?"},
		Card:     &gateway.Card{Type: gateway.CardSimple, Title: "Amazon", Text: "123.45 USD"},
		Session:  map[string]any{"last_symbol": "AMZN"},
	}
	b.ReportAllocs()
	for b.Loop() {
		if out := alexa.Encode(reply); len(out) == 0 {
			b.Fatal("empty response")
		}
	}
}
