package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/voicegw/voicegw/gateway/alexa"
	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/gateway/server"
)

// e2eAppID is the application id of the end-to-end test skill.
const e2eAppID = "amzn1.ask.skill.e2e"

// e2eUser is the userId of the end-to-end requests.
const e2eUser = "amzn1.ask.account.E2E"

// e2eDiscard is a logger that drops everything.
var e2eDiscard = slog.New(slog.NewTextHandler(io.Discard, nil))

// e2eCertBase is where the test fetcher serves the certificate chains.
const e2eCertBase = "https://s3.amazonaws.com/echo.api/"

// e2ePKI is a test CA, the chains signed under it and a forger's chain,
// generated once per test binary relative to the real clock.
type e2ePKI struct {
	roots     *x509.CertPool
	leafKey   *rsa.PrivateKey
	forgerKey *rsa.PrivateKey
	chains    map[string][]byte
}

var (
	e2ePKIOnce sync.Once
	e2ePKIVal  *e2ePKI
	e2ePKIErr  error
)

func mustE2EPKI(tb testing.TB) *e2ePKI {
	tb.Helper()
	e2ePKIOnce.Do(func() { e2ePKIVal, e2ePKIErr = newE2EPKI() })
	if e2ePKIErr != nil {
		tb.Fatalf("test PKI: %v", e2ePKIErr)
	}
	return e2ePKIVal
}

func newE2EPKI() (*e2ePKI, error) {
	keys := make([]*rsa.PrivateKey, 4)
	for i := range keys {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		keys[i] = k
	}
	rootKey, interKey, leafKey, forgerKey := keys[0], keys[1], keys[2], keys[3]
	now := time.Now()
	var serial int64
	var firstErr error
	issue := func(cn string, san []string, isCA bool, from, to time.Duration, parent *x509.Certificate, pub *rsa.PublicKey, signer *rsa.PrivateKey) (*x509.Certificate, []byte) {
		serial++
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			DNSNames:     san,
			NotBefore:    now.Add(from),
			NotAfter:     now.Add(to),
		}
		if isCA {
			tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
			tmpl.KeyUsage = x509.KeyUsageCertSign
		} else {
			tmpl.KeyUsage = x509.KeyUsageDigitalSignature
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		}
		if parent == nil {
			parent = tmpl
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("%s: %w", cn, err)
		}
		c, _ := x509.ParseCertificate(der)
		return c, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	year := 365 * 24 * time.Hour
	san := []string{"echo-api.amazon.com"}
	root, _ := issue("e2e root", nil, true, -year, year, nil, &rootKey.PublicKey, rootKey)
	inter, interPEM := issue("e2e intermediate", nil, true, -year, year, root, &interKey.PublicKey, rootKey)
	_, valid := issue("echo-api.amazon.com", san, false, -time.Hour, 24*time.Hour, inter, &leafKey.PublicKey, interKey)
	_, expired := issue("echo-api.amazon.com", san, false, -48*time.Hour, -24*time.Hour, inter, &leafKey.PublicKey, interKey)
	_, wrongSAN := issue("echo-api.amazon.com", []string{"evil.example"}, false, -time.Hour, 24*time.Hour, inter, &leafKey.PublicKey, interKey)
	_, cnOnly := issue("echo-api.amazon.com", nil, false, -time.Hour, 24*time.Hour, inter, &leafKey.PublicKey, interKey)
	_, self := issue("echo-api.amazon.com", san, false, -time.Hour, 24*time.Hour, nil, &forgerKey.PublicKey, forgerKey)
	if firstErr != nil {
		return nil, firstErr
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	chain := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	return &e2ePKI{
		roots:     roots,
		leafKey:   leafKey,
		forgerKey: forgerKey,
		chains: map[string][]byte{
			e2eCertBase + "echo-api-cert.pem": chain(valid, interPEM),
			e2eCertBase + "expired.pem":       chain(expired, interPEM),
			e2eCertBase + "wrong-san.pem":     chain(wrongSAN, interPEM),
			e2eCertBase + "cn-only.pem":       chain(cnOnly, interPEM),
			e2eCertBase + "self-signed.pem":   self,
		},
	}, nil
}

// e2eFetcher serves the test chains from memory and counts downloads.
type e2eFetcher struct {
	chains map[string][]byte
	n      atomic.Int64
}

func (f *e2eFetcher) Fetch(_ context.Context, url string) ([]byte, error) {
	f.n.Add(1)
	if b, ok := f.chains[url]; ok {
		return b, nil
	}
	return nil, fmt.Errorf("status 404")
}

// e2eSign returns the base64 RSA-SHA256 signature of body.
func e2eSign(tb testing.TB, key *rsa.PrivateKey, body []byte) string {
	tb.Helper()
	sum := sha256.Sum256(body)
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		tb.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

// e2eCounter is an upstream that answers a quote and counts hits.
type e2eCounter struct {
	*httptest.Server
	hits atomic.Int64
}

func newE2EQuotes(tb testing.TB) *e2eCounter {
	c := &e2eCounter{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"data":{"name":"Amazon","price":123.45}}`)
	}))
	tb.Cleanup(c.Close)
	return c
}

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

// mustE2EConfig parses src as cmd/voicegw would load it.
func mustE2EConfig(tb testing.TB, src string) *config.Config {
	tb.Helper()
	cfg, ps := config.Parse("e2e.yaml", []byte(src), os.LookupEnv)
	if err := ps.Err(); err != nil {
		tb.Fatalf("config: %v", err)
	}
	return cfg
}

// e2eServe serves rt as voicegw serve does, on a loopback httptest server.
func e2eServe(tb testing.TB, rt *server.Runtime) *httptest.Server {
	tb.Helper()
	srv := httptest.NewServer(server.New(rt, nil, e2eDiscard).Handler())
	tb.Cleanup(srv.Close)
	return srv
}

// e2ePost sends body with header to url and returns the status and body.
func e2ePost(tb testing.TB, client *http.Client, url string, header http.Header, body []byte) (int, []byte) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		tb.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp.StatusCode, out
}

// e2eSpeech decodes a 200 Alexa response and returns its speech.
func e2eSpeech(tb testing.TB, status int, body []byte) string {
	tb.Helper()
	if status != http.StatusOK {
		tb.Fatalf("status %d, want 200: %s", status, body)
	}
	var r alexa.Response
	if err := json.Unmarshal(body, &r); err != nil {
		tb.Fatalf("not an Alexa response: %v: %s", err, body)
	}
	return r.Speech()
}

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
	pki := mustE2EPKI(t)
	quotes := newE2EQuotes(t)
	fetcher := &e2eFetcher{chains: pki.chains}
	d := newDeps(e2eDiscard)
	d.verify = alexa.VerifierConfig{Roots: pki.roots, Fetcher: fetcher}
	cfg := mustE2EConfig(t, fmt.Sprintf(e2eConfig, "true", quotes.URL))
	if !cfg.Alexa.Verifying() {
		t.Fatal("config does not verify")
	}
	srv := e2eServe(t, d.runtime(cfg, nil))
	client := srv.Client()
	good := e2eCertBase + "echo-api-cert.pem"
	header := func(certURL, sig string) http.Header {
		h := http.Header{}
		if certURL != "" {
			h.Set(alexa.HeaderCertURL, certURL)
		}
		if sig != "" {
			h.Set(alexa.HeaderSignature, sig)
		}
		return h
	}

	t.Run("signed", func(t *testing.T) {
		for _, path := range []string{"/alexa", "/alexa/stocks"} {
			before := quotes.hits.Load()
			body := e2eQuoteRequest(e2eAppID, time.Now())
			status, out := e2ePost(t, client, srv.URL+path, header(good, e2eSign(t, pki.leafKey, body)), body)
			if got, want := e2eSpeech(t, status, out), "Amazon is trading at 123.45 dollars."; got != want {
				t.Fatalf("%s: speech %q, want %q", path, got, want)
			}
			if quotes.hits.Load() != before+1 {
				t.Fatalf("%s: upstream not called", path)
			}
		}
		if n := fetcher.n.Load(); n != 1 {
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
		{"no SignatureCertChainUrl", func() (http.Header, []byte) {
			b := e2eQuoteRequest(e2eAppID, time.Now())
			return header("", e2eSign(t, pki.leafKey, b)), b
		}},
		{"not base64", func() (http.Header, []byte) {
			return header(good, "%%%"), e2eQuoteRequest(e2eAppID, time.Now())
		}},
		{"http certificate URL", func() (http.Header, []byte) {
			b := e2eQuoteRequest(e2eAppID, time.Now())
			return header("http://s3.amazonaws.com/echo.api/echo-api-cert.pem", e2eSign(t, pki.leafKey, b)), b
		}},
		{"certificate URL port 563", func() (http.Header, []byte) {
			b := e2eQuoteRequest(e2eAppID, time.Now())
			return header("https://s3.amazonaws.com:563/echo.api/echo-api-cert.pem", e2eSign(t, pki.leafKey, b)), b
		}},
		{"certificate URL host", func() (http.Header, []byte) {
			b := e2eQuoteRequest(e2eAppID, time.Now())
			return header("https://notamazon.com/echo.api/echo-api-cert.pem", e2eSign(t, pki.leafKey, b)), b
		}},
		{"certificate URL path", func() (http.Header, []byte) {
			b := e2eQuoteRequest(e2eAppID, time.Now())
			return header("https://s3.amazonaws.com/echo.api/../invalid.path/echo-api-cert.pem", e2eSign(t, pki.leafKey, b)), b
		}},
		{"body altered after signing", func() (http.Header, []byte) {
			b := e2eQuoteRequest(e2eAppID, time.Now())
			sig := e2eSign(t, pki.leafKey, b)
			return header(good, sig), bytes.Replace(b, []byte(`"AMZN"`), []byte(`"GOOG"`), 1)
		}},
		{"signature over re-encoded JSON", func() (http.Header, []byte) {
			b := indent(e2eQuoteRequest(e2eAppID, time.Now()))
			return header(good, e2eSign(t, pki.leafKey, reencode(b))), b
		}},
		{"signed by another key", func() (http.Header, []byte) {
			b := e2eQuoteRequest(e2eAppID, time.Now())
			return header(good, e2eSign(t, pki.forgerKey, b)), b
		}},
		{"self-signed certificate", func() (http.Header, []byte) {
			b := e2eQuoteRequest(e2eAppID, time.Now())
			return header(e2eCertBase+"self-signed.pem", e2eSign(t, pki.forgerKey, b)), b
		}},
		{"expired certificate", func() (http.Header, []byte) {
			b := e2eQuoteRequest(e2eAppID, time.Now())
			return header(e2eCertBase+"expired.pem", e2eSign(t, pki.leafKey, b)), b
		}},
		{"wrong SAN", func() (http.Header, []byte) {
			b := e2eQuoteRequest(e2eAppID, time.Now())
			return header(e2eCertBase+"wrong-san.pem", e2eSign(t, pki.leafKey, b)), b
		}},
		{"CN only", func() (http.Header, []byte) {
			b := e2eQuoteRequest(e2eAppID, time.Now())
			return header(e2eCertBase+"cn-only.pem", e2eSign(t, pki.leafKey, b)), b
		}},
		{"replayed old request", func() (http.Header, []byte) {
			b := e2eQuoteRequest(e2eAppID, time.Now().Add(-10*time.Minute))
			return header(good, e2eSign(t, pki.leafKey, b)), b
		}},
		{"timestamp from the future", func() (http.Header, []byte) {
			b := e2eQuoteRequest(e2eAppID, time.Now().Add(10*time.Minute))
			return header(good, e2eSign(t, pki.leafKey, b)), b
		}},
		{"invalid JSON, bad signature", func() (http.Header, []byte) {
			b := []byte(`{"version":`)
			return header(good, e2eSign(t, pki.forgerKey, b)), b
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
		status, out := e2ePost(t, client, srv.URL+"/alexa/stocks", header(good, e2eSign(t, pki.leafKey, body)), body)
		if status != http.StatusBadRequest {
			t.Fatalf("status %d, want 400: %s", status, out)
		}
		if quotes.hits.Load() != before {
			t.Error("the request reached the upstream")
		}
		// Without a skill in the path the id picks no skill: 404.
		status, out = e2ePost(t, client, srv.URL+"/alexa", header(good, e2eSign(t, pki.leafKey, body)), body)
		if status != http.StatusNotFound {
			t.Fatalf("/alexa: status %d, want 404: %s", status, out)
		}
	})

	t.Run("unknown skill", func(t *testing.T) {
		body := e2eQuoteRequest(e2eAppID, time.Now())
		status, out := e2ePost(t, client, srv.URL+"/alexa/nosuch", header(good, e2eSign(t, pki.leafKey, body)), body)
		if status != http.StatusNotFound {
			t.Fatalf("status %d, want 404: %s", status, out)
		}
	})
}

// TestServeVerifyIsTheDefault checks that a config without alexa.verify
// verifies, and that only verify: false turns it off.
func TestServeVerifyIsTheDefault(t *testing.T) {
	quotes := newE2EQuotes(t)
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
