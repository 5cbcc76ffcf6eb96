package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/voicegw/voicegw/gateway/alexa"
)

// TestMetricsEndToEnd: turns through the real server show up on /metrics
// by skill, intent and outcome, upstream calls by service and status, and
// nothing a request says becomes a label value.
func TestMetricsEndToEnd(t *testing.T) {
	up := newE2EUpstream(t, `{"price": 1}`)
	t.Setenv("VGW_METRICS_UPSTREAM", up.URL)
	cfg := mustE2EConfig(t, `version: 1
alexa: { verify: false }
services:
  quotes: { base_url: "${VGW_METRICS_UPSTREAM}" }
skills:
  stocks:
    application_id: amzn1.ask.skill.metrics
    intents:
      GetQuote:
        samples: ["quote"]
        call: { service: quotes, path: /q, extract: { price: { path: price, required: true } } }
        say: "It is {{ .price }}."
      Missing:
        samples: ["missing"]
        call: { service: quotes, path: /q, extract: { nope: { path: nope, required: true } } }
        say: "never"
`)
	d := newDeps(e2eDiscard)
	srv := httptest.NewServer(d.server(d.runtime(cfg, nil), cfg).Handler())
	defer srv.Close()
	turn := func(intent string) {
		body := alexa.BuildRequest(alexa.RequestSpec{ApplicationID: "amzn1.ask.skill.metrics",
			UserID: e2eUser, Type: "IntentRequest", Intent: intent})
		status, out := e2ePost(t, srv.Client(), srv.URL+"/alexa", nil, body)
		if status != 200 {
			t.Fatalf("%s: %d %s", intent, status, out)
		}
	}
	turn("GetQuote")
	turn("GetQuote")
	turn("Missing")
	turn("AttackerChosenIntent")
	e2ePost(t, srv.Client(), srv.URL+"/alexa/attacker-chosen-skill", nil, []byte(`{}`))

	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	text := string(b)
	for _, want := range []string{
		`voicegw_turns_total{intent="GetQuote",outcome="ok",skill="stocks"} 2`,
		`voicegw_turns_total{intent="Missing",outcome="missing",skill="stocks"} 1`,
		`voicegw_turns_total{intent="other",outcome="ok",skill="stocks"} 1`,
		`voicegw_upstream_requests_total{service="quotes",status="200"} 3`,
		`voicegw_upstream_request_seconds_count{service="quotes"} 3`,
		`voicegw_alexa_requests_total{reason="",skill="stocks",status="200"} 4`,
		`voicegw_alexa_requests_total{reason="envelope",skill="",status="400"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, leaked := range []string{"AttackerChosenIntent", "attacker-chosen-skill"} {
		if strings.Contains(text, leaked) {
			t.Errorf("a request made %q a label value", leaked)
		}
	}
}
