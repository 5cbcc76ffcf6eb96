package main

import (
	"bytes"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/voicegw/voicegw/gateway/alexa"
	"github.com/voicegw/voicegw/gateway/alexa/alexatest"
)

// e2eAppID is the application id of the end-to-end test skill.
const e2eAppID = "amzn1.ask.skill.e2e"

// e2eConfig is a one-skill configuration; %s are verify and the upstream.
const e2eConfig = `version: 1
server:
  max_body_bytes: 16384
  deadline: 2s
alexa:
  verify: %s
  timestamp_tolerance: 150s
services:
  quotes:
    base_url: %s
    timeout: 1s
skills:
  stocks:
    application_id: ` + e2eAppID + `
    invocation: stock buddy
    intents:
      GetQuote:
        samples: ["quote for {Symbol}"]
        slots:
          Symbol: { type: AMAZON.SearchQuery, required: true, prompt: "Which stock?" }
        call:
          service: quotes
          path: /v1/quote/{{ .slots.Symbol }}
          extract:
            name: data.name
            price: { path: data.price, required: true }
        say: "{{ .name }} is trading at {{ .price }} dollars."
`

// e2eQuoteRequest is a GetQuote request for AMZN sent at ts.
func e2eQuoteRequest(appID string, ts time.Time) []byte {
	return alexa.BuildRequest(alexa.RequestSpec{
		ApplicationID: appID,
		UserID:        e2eUser,
		Type:          "IntentRequest",
		Intent:        "GetQuote",
		Slots:         map[string]string{"Symbol": "AMZN"},
		Timestamp:     ts,
	})
}

func TestServeVerifiesRequests(t *testing.T) {
	pki := alexatest.MustPKI(t)
	quotes := newE2EUpstream(t, e2eQuote)
	fetcher := alexatest.NewFetcher(pki)
	d := newDeps(e2eDiscard)
	d.verify = alexa.VerifierConfig{Roots: pki.Roots, Fetcher: fetcher}
	cfg := mustE2EConfig(t, fmt.Sprintf(e2eConfig, "true", quotes.URL))
	if !cfg.Alexa.Verifying() {
		t.Fatal("config does not verify")
	}
	srv := e2eServe(t, d.runtime(cfg, nil))
	client := srv.Client()
	good := alexatest.CanonicalURL
	header := alexatest.Header

	t.Run("signed", func(t *testing.T) {
		for _, path := range []string{"/alexa", "/alexa/stocks"} {
			before := quotes.hits.Load()
			body := e2eQuoteRequest(e2eAppID, time.Now())
			status, out := e2ePost(t, client, srv.URL+path, header(good, alexatest.Sign(t, pki.LeafKey, body)), body)
			if got, want := e2eSpeech(t, status, out), "Amazon is trading at 123.45 dollars."; got != want {
				t.Fatalf("%s: speech %q, want %q", path, got, want)
			}
			if quotes.hits.Load() != before+1 {
				t.Fatalf("%s: upstream not called", path)
			}
		}
		if n := fetcher.Total(); n != 1 {
			t.Errorf("certificate fetched %d times for two requests, want 1 (cached)", n)
		}
	})

	indent := func(b []byte) []byte {
		var out bytes.Buffer
		_ = json.Indent(&out, b, "", "  ")
		return out.Bytes()
	}
	reencode := func(b []byte) []byte {
		var v any
		_ = json.Unmarshal(b, &v)
		out, _ := json.Marshal(v)
		return out
	}
	// signed makes a quote request sent at now+skew, signed with key, whose
	// certificate chain is at certURL.
	signed := func(certURL string, key *rsa.PrivateKey, skew time.Duration) func() (http.Header, []byte) {
		return func() (http.Header, []byte) {
			b := e2eQuoteRequest(e2eAppID, time.Now().Add(skew))
			return header(certURL, alexatest.Sign(t, key, b)), b
		}
	}
	forged := []struct {
		name string
		make func() (http.Header, []byte)
	}{
		{"no signature headers", func() (http.Header, []byte) {
			return http.Header{}, e2eQuoteRequest(e2eAppID, time.Now())
		}},
		{"no Signature-256", func() (http.Header, []byte) {
			return header(good, ""), e2eQuoteRequest(e2eAppID, time.Now())
		}},
		{"no SignatureCertChainUrl", signed("", pki.LeafKey, 0)},
		{"not base64", func() (http.Header, []byte) {
			return header(good, "%%%"), e2eQuoteRequest(e2eAppID, time.Now())
		}},
		{"http certificate URL", signed("http://s3.amazonaws.com/echo.api/echo-api-cert.pem", pki.LeafKey, 0)},
		{"certificate URL port 563", signed("https://s3.amazonaws.com:563/echo.api/echo-api-cert.pem", pki.LeafKey, 0)},
		{"certificate URL host", signed("https://notamazon.com/echo.api/echo-api-cert.pem", pki.LeafKey, 0)},
		{"certificate URL path", signed("https://s3.amazonaws.com/echo.api/../invalid.path/echo-api-cert.pem", pki.LeafKey, 0)},
		{"body altered after signing", func() (http.Header, []byte) {
			b := e2eQuoteRequest(e2eAppID, time.Now())
			sig := alexatest.Sign(t, pki.LeafKey, b)
			return header(good, sig), bytes.Replace(b, []byte(`"AMZN"`), []byte(`"GOOG"`), 1)
		}},
		{"signature over re-encoded JSON", func() (http.Header, []byte) {
			b := indent(e2eQuoteRequest(e2eAppID, time.Now()))
			return header(good, alexatest.Sign(t, pki.LeafKey, reencode(b))), b
		}},
		{"signed by another key", signed(good, pki.ForgerKey, 0)},
		{"self-signed certificate", signed(alexatest.URL(alexatest.SelfSigned), pki.ForgerKey, 0)},
		{"expired certificate", signed(alexatest.URL(alexatest.Expired), pki.LeafKey, 0)},
		{"wrong SAN", signed(alexatest.URL(alexatest.WrongSAN), pki.LeafKey, 0)},
		{"CN only", signed(alexatest.URL(alexatest.CNOnly), pki.LeafKey, 0)},
		{"replayed old request", signed(good, pki.LeafKey, -10*time.Minute)},
		{"timestamp from the future", signed(good, pki.LeafKey, 10*time.Minute)},
		{"invalid JSON, bad signature", func() (http.Header, []byte) {
			b := []byte(`{"version":`)
			return header(good, alexatest.Sign(t, pki.ForgerKey, b)), b
		}},
	}
	for _, tc := range forged {
		t.Run(tc.name, func(t *testing.T) {
			before := quotes.hits.Load()
			h, body := tc.make()
			for _, path := range []string{"/alexa", "/alexa/stocks"} {
				status, out := e2ePost(t, client, srv.URL+path, h, body)
				if status != http.StatusBadRequest {
					t.Fatalf("%s: status %d, want 400: %s", path, status, out)
				}
				if bytes.Contains(out, []byte(`"response"`)) || bytes.Contains(out, []byte(`"outputSpeech"`)) {
					t.Errorf("%s: 400 with an Alexa body: %s", path, out)
				}
			}
			if quotes.hits.Load() != before {
				t.Errorf("a forged request reached the upstream")
			}
		})
	}

	t.Run("wrong application id for the named skill", func(t *testing.T) {
		before := quotes.hits.Load()
		body := e2eQuoteRequest("amzn1.ask.skill.someone-else", time.Now())
		status, out := e2ePost(t, client, srv.URL+"/alexa/stocks", header(good, alexatest.Sign(t, pki.LeafKey, body)), body)
		if status != http.StatusBadRequest {
			t.Fatalf("status %d, want 400: %s", status, out)
		}
		if quotes.hits.Load() != before {
			t.Error("the request reached the upstream")
		}
		// Without a skill in the path the id picks no skill: 404.
		status, out = e2ePost(t, client, srv.URL+"/alexa", header(good, alexatest.Sign(t, pki.LeafKey, body)), body)
		if status != http.StatusNotFound {
			t.Fatalf("/alexa: status %d, want 404: %s", status, out)
		}
	})

	t.Run("unknown skill", func(t *testing.T) {
		body := e2eQuoteRequest(e2eAppID, time.Now())
		status, out := e2ePost(t, client, srv.URL+"/alexa/nosuch", header(good, alexatest.Sign(t, pki.LeafKey, body)), body)
		if status != http.StatusNotFound {
			t.Fatalf("status %d, want 404: %s", status, out)
		}
	})
}

// TestServeVerifyIsTheDefault checks that a config without alexa.verify
// verifies, and that only verify: false turns it off.
func TestServeVerifyIsTheDefault(t *testing.T) {
	quotes := newE2EUpstream(t, e2eQuote)
	body := e2eQuoteRequest(e2eAppID, time.Now())
	for _, tc := range []struct {
		name, verify string
		want         int
	}{
		{"default", "", http.StatusBadRequest},
		{"true", "true", http.StatusBadRequest},
		{"false", "false", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := fmt.Sprintf(e2eConfig, tc.verify, quotes.URL)
			if tc.verify == "" {
				src = strings.Replace(src, "  verify: \n", "", 1)
			}
			d := newDeps(e2eDiscard)
			srv := e2eServe(t, d.runtime(mustE2EConfig(t, src), nil))
			status, out := e2ePost(t, srv.Client(), srv.URL+"/alexa", nil, body)
			if status != tc.want {
				t.Fatalf("unsigned request: status %d, want %d: %s", status, tc.want, out)
			}
		})
	}
}
