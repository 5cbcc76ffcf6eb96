package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/voicegw/voicegw/gateway/alexa"
	"github.com/voicegw/voicegw/gateway/alexa/alexatest"
)

// TestRejectedRequests: every refused Alexa request (400, 404, 413) has a
// log line with a request id and is counted on /metrics by status and a
// fixed reason, with label values that come from the configuration only.
func TestRejectedRequests(t *testing.T) {
	pki := alexatest.MustPKI(t)
	quotes := newE2EUpstream(t, e2eQuote)
	logs := &syncBuffer{}
	d := newDeps(slog.New(slog.NewJSONHandler(logs, nil)))
	d.verify = alexa.VerifierConfig{Roots: pki.Roots, Fetcher: alexatest.NewFetcher(pki)}
	cfg := mustE2EConfig(t, fmt.Sprintf(e2eConfig, "true", quotes.URL))
	srv := httptest.NewServer(d.server(d.runtime(cfg, nil), cfg).Handler())
	defer srv.Close()
	client := srv.Client()

	signed := func(body []byte) http.Header {
		return alexatest.Header(alexatest.CanonicalURL, alexatest.Sign(t, pki.LeafKey, body))
	}
	good := e2eQuoteRequest(e2eAppID, time.Now())
	stale := e2eQuoteRequest(e2eAppID, time.Now().Add(-time.Hour))
	otherApp := e2eQuoteRequest("amzn1.ask.skill.attacker-app", time.Now())
	malformed := []byte(`{"version":"1.0","request":{"type":"LaunchRequest","requestId":"amzn1.echo-api.request.MALFORMED"}}`)
	tooLarge := bytes.Repeat([]byte(" "), int(cfg.Server.MaxBodyBytes)+1)
	tests := []struct {
		name    string
		path    string
		header  http.Header
		body    []byte
		chunked bool
		status  int
		reason  string
		// skill is the skill label it is counted under: a configured
		// skill's name, or "".
		skill string
		// requestID is the id the log line must carry; "" means one of
		// the gateway's own ("voicegw." and 16 hex digits).
		requestID string
	}{
		{name: "no signature", path: "/alexa", body: good, status: 400, reason: "signature"},
		{name: "forged signature", path: "/alexa", header: signed([]byte("other")), body: good, status: 400, reason: "signature"},
		{name: "malformed envelope", path: "/alexa", header: signed(malformed), body: malformed, status: 400, reason: "envelope", requestID: "amzn1.echo-api.request.MALFORMED"},
		{name: "stale timestamp", path: "/alexa", header: signed(stale), body: stale, status: 400, reason: "timestamp", requestID: "*"},
		{name: "unknown application id", path: "/alexa", header: signed(otherApp), body: otherApp, status: 404, reason: "unknown skill", requestID: "*"},
		{name: "unknown skill in the URL", path: "/alexa/attacker-chosen-skill", header: signed(good), body: good, status: 404, reason: "unknown skill", requestID: "*"},
		{name: "wrong application id for the skill", path: "/alexa/stocks", header: signed(otherApp), body: otherApp, status: 400, reason: "application id", skill: "stocks", requestID: "*"},
		{name: "Content-Length over max_body_bytes", path: "/alexa", body: tooLarge, status: 413, reason: "body too large"},
		{name: "chunked body over max_body_bytes", path: "/alexa/attacker-chosen-skill", body: tooLarge, chunked: true, status: 413, reason: "body too large"},
	}
	counts := map[string]int{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(logs.String())
			var body io.Reader = bytes.NewReader(tc.body)
			if tc.chunked {
				body = io.MultiReader(body) // hides the length: sent chunked
			}
			req, err := http.NewRequest(http.MethodPost, srv.URL+tc.path, body)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.header {
				req.Header[k] = v
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			out, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, out)
			}
			counts[fmt.Sprintf(`reason=%q,skill=%q,status="%d"`, tc.reason, tc.skill, tc.status)]++
			var line struct {
				Msg       string `json:"msg"`
				RequestID string `json:"request_id"`
				Status    int    `json:"status"`
				Reason    string `json:"reason"`
			}
			for _, l := range strings.Split(strings.TrimSpace(logs.String()[before:]), "\n") {
				if err := json.Unmarshal([]byte(l), &line); err == nil && line.Msg == "request rejected" {
					break
				}
				line.Msg = ""
			}
			if line.Msg == "" {
				t.Fatalf("no \"request rejected\" log line: %s", logs.String()[before:])
			}
			if line.Status != tc.status || line.Reason != tc.reason {
				t.Errorf("log line has status %d reason %q, want %d %q", line.Status, line.Reason, tc.status, tc.reason)
			}
			switch tc.requestID {
			case "":
				if !strings.HasPrefix(line.RequestID, "voicegw.") || len(line.RequestID) != len("voicegw.")+16 {
					t.Errorf("request_id %q, want one of the gateway's own", line.RequestID)
				}
			case "*":
				if !strings.HasPrefix(line.RequestID, "amzn1.echo-api.request.") {
					t.Errorf("request_id %q, want the envelope's requestId", line.RequestID)
				}
			default:
				if line.RequestID != tc.requestID {
					t.Errorf("request_id %q, want %q", line.RequestID, tc.requestID)
				}
			}
		})
	}

	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(b)
	for labels, n := range counts {
		want := fmt.Sprintf("voicegw_alexa_requests_total{%s} %d", labels, n)
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, leaked := range []string{"attacker-chosen-skill", "attacker-app", "MALFORMED"} {
		if strings.Contains(text, leaked) {
			t.Errorf("a request made %q a label value", leaked)
		}
	}
}
