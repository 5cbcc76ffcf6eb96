package alexa_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/alexa"
	"github.com/voicegw/voicegw/gateway/alexa/alexatest"
)

// verifyAppID is the application id of the requests the verifier tests sign.
const verifyAppID = "amzn1.ask.skill.verify"

// verifyTolerance is the timestamp tolerance the verifier tests use.
const verifyTolerance = 150 * time.Second

// testClock is an adjustable clock for the verifier.
type testClock struct{ ns atomic.Int64 }

func newTestClock(t time.Time) *testClock {
	c := &testClock{}
	c.Set(t)
	return c
}

func (c *testClock) Now() time.Time  { return time.Unix(0, c.ns.Load()) }
func (c *testClock) Set(t time.Time) { c.ns.Store(t.UnixNano()) }

// newTestVerifier returns a verifier over the test PKI, its fetcher and
// its clock (at alexatest.Base).
func newTestVerifier(tb testing.TB) (*alexa.Verifier, *alexatest.Fetcher, *testClock) {
	tb.Helper()
	p := alexatest.MustPKI(tb)
	f := alexatest.NewFetcher(p)
	clock := newTestClock(alexatest.Base)
	v := alexa.NewVerifier(alexa.VerifierConfig{
		Tolerance: verifyTolerance,
		Roots:     p.Roots,
		Fetcher:   f,
		Now:       clock.Now,
	})
	return v, f, clock
}

// signedBody is the request body the verifier tests sign, sent at ts.
func signedBody(ts time.Time) []byte {
	return alexa.BuildRequest(alexa.RequestSpec{
		ApplicationID: verifyAppID,
		UserID:        "amzn1.ask.account.VERIFY",
		Type:          "IntentRequest",
		Intent:        "GetQuote",
		Slots:         map[string]string{"Symbol": "AMZN"},
		Timestamp:     ts,
	})
}

// signatureCase is one row of the signature table: the request as sent
// and the error it must get ("" for none).
type signatureCase struct {
	name    string
	certURL string
	sig     func(tb testing.TB, p *alexatest.PKI, body []byte) string
	// body is what is sent; nil means the signed body.
	body func(signed []byte) []byte
	// signed, when set, replaces signedBody(alexatest.Base) as the body that is
	// signed and sent.
	signed []byte
	// fetched is the normalised URL that must have been fetched ("" for
	// none at all).
	fetched string
	wantErr string
}

// leafSig signs with the key of the leaves chained to the test root.
func leafSig(tb testing.TB, p *alexatest.PKI, body []byte) string {
	return alexatest.Sign(tb, p.LeafKey, body)
}

// forgerSig signs with a key no trusted certificate holds.
func forgerSig(tb testing.TB, p *alexatest.PKI, body []byte) string {
	return alexatest.Sign(tb, p.ForgerKey, body)
}

// fixedSig sends s as the signature.
func fixedSig(s string) func(testing.TB, *alexatest.PKI, []byte) string {
	return func(testing.TB, *alexatest.PKI, []byte) string { return s }
}

// indentedBody is a signed body as Alexa could send it: not in the
// canonical form encoding/json produces, so a re-encoding differs.
func indentedBody(tb testing.TB) []byte {
	tb.Helper()
	var b bytes.Buffer
	if err := json.Indent(&b, signedBody(alexatest.Base), "", "  "); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

// reencoded is body through json.Unmarshal and json.Marshal, as a gateway
// that verified the parsed JSON instead of the raw bytes would see it.
func reencoded(tb testing.TB, body []byte) []byte {
	tb.Helper()
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		tb.Fatal(err)
	}
	out, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	if bytes.Equal(out, body) {
		tb.Fatal("re-encoded body equals the raw body; the case would prove nothing")
	}
	return out
}

func signatureCases(tb testing.TB) []signatureCase {
	valid := alexatest.URL(alexatest.Valid)
	cert := func(name string, variant alexatest.Variant, sig func(testing.TB, *alexatest.PKI, []byte) string, wantErr string) signatureCase {
		return signatureCase{name: name, certURL: alexatest.URL(variant), sig: sig, fetched: alexatest.URL(variant), wantErr: wantErr}
	}
	urlCase := func(name, raw, fetched, wantErr string) signatureCase {
		return signatureCase{name: name, certURL: raw, sig: leafSig, fetched: fetched, wantErr: wantErr}
	}
	indented := indentedBody(tb)
	random := make([]byte, 256)
	_, _ = rand.Read(random)
	return []signatureCase{
		// SignatureCertChainUrl rules.
		urlCase("url/canonical", "https://s3.amazonaws.com/echo.api/echo-api-cert.pem", alexatest.CanonicalURL, ""),
		urlCase("url/upper-case scheme and host", "HTTPS://S3.AMAZONAWS.COM/echo.api/echo-api-cert.pem", alexatest.CanonicalURL, ""),
		urlCase("url/port 443", "https://s3.amazonaws.com:443/echo.api/x", alexatest.BaseURL+"x", ""),
		urlCase("url/dot segments back into echo.api", "https://s3.amazonaws.com/echo.api/../echo.api/x", alexatest.BaseURL+"x", ""),
		urlCase("url/http", "http://s3.amazonaws.com/echo.api/echo-api-cert.pem", "", "not https"),
		urlCase("url/port 563", "https://s3.amazonaws.com:563/echo.api/echo-api-cert.pem", "", "port is not 443"),
		urlCase("url/port 0443", "https://s3.amazonaws.com:0443/echo.api/echo-api-cert.pem", "", "port is not 443"),
		urlCase("url/other host", "https://notamazon.com/echo.api/echo-api-cert.pem", "", "host"),
		urlCase("url/host suffix", "https://s3.amazonaws.com.evil.example/echo.api/echo-api-cert.pem", "", "host"),
		urlCase("url/host as user info", "https://s3.amazonaws.com@evil.example/echo.api/echo-api-cert.pem", "", "host"),
		urlCase("url/user info", "https://u:p@s3.amazonaws.com/echo.api/echo-api-cert.pem", "", "user info"),
		urlCase("url/invalid path", "https://s3.amazonaws.com/invalid.path/echo-api-cert.pem", "", "/echo.api/"),
		urlCase("url/dot segments out of echo.api", "https://s3.amazonaws.com/echo.api/../invalid.path/echo-api-cert.pem", "", "/echo.api/"),
		urlCase("url/escaped dot segments out of echo.api", "https://s3.amazonaws.com/echo.api/%2e%2e/invalid.path/echo-api-cert.pem", "", "/echo.api/"),
		urlCase("url/path is case-sensitive", "https://s3.amazonaws.com/ECHO.API/echo-api-cert.pem", "", "/echo.api/"),
		urlCase("url/no slash after echo.api", "https://s3.amazonaws.com/echo.api", "", "/echo.api/"),
		urlCase("url/relative", "/echo.api/echo-api-cert.pem", "", "not https"),
		urlCase("url/does not parse", "https://s3.amazonaws.com:x/echo.api/", "", "does not parse"),

		// The certificate chain.
		cert("cert/valid", alexatest.Valid, leafSig, ""),
		cert("cert/expired", alexatest.Expired, leafSig, "not valid now"),
		cert("cert/not yet valid", alexatest.NotYetValid, leafSig, "not valid now"),
		cert("cert/wrong SAN", alexatest.WrongSAN, leafSig, "SANs"),
		cert("cert/CN only", alexatest.CNOnly, leafSig, "SANs"),
		cert("cert/wildcard SAN", alexatest.Wildcard, leafSig, "SANs"),
		cert("cert/self-signed", alexatest.SelfSigned, forgerSig, "does not verify"),
		cert("cert/untrusted root", alexatest.Untrusted, forgerSig, "does not verify"),
		cert("cert/intermediate missing", alexatest.NoIntermediate, leafSig, "does not verify"),
		cert("cert/ECDSA key", alexatest.ECDSA, leafSig, "not RSA"),
		cert("cert/not PEM", alexatest.Garbage, leafSig, "no certificate"),
		cert("cert/bad DER", alexatest.BadDER, leafSig, "does not parse"),
		cert("cert/download fails", alexatest.Missing, leafSig, "download failed"),

		// The signature over the raw body.
		{name: "sig/raw indented body", certURL: valid, sig: leafSig, signed: indented, fetched: valid},
		{name: "sig/body altered after signing", certURL: valid, sig: leafSig, fetched: valid,
			body:    func(b []byte) []byte { return bytes.Replace(b, []byte(`"AMZN"`), []byte(`"AMZM"`), 1) },
			wantErr: "does not match"},
		{name: "sig/byte appended after signing", certURL: valid, sig: leafSig, fetched: valid,
			body:    func(b []byte) []byte { return append(append([]byte(nil), b...), ' ') },
			wantErr: "does not match"},
		{name: "sig/over re-encoded JSON", certURL: valid, signed: indented, fetched: valid,
			sig: func(tb testing.TB, p *alexatest.PKI, body []byte) string {
				return alexatest.Sign(tb, p.LeafKey, reencoded(tb, body))
			},
			wantErr: "does not match"},
		{name: "sig/other key", certURL: valid, sig: forgerSig, fetched: valid, wantErr: "does not match"},
		{name: "sig/random bytes", certURL: valid, sig: fixedSig(base64.StdEncoding.EncodeToString(random)), fetched: valid, wantErr: "does not match"},
		{name: "sig/truncated", certURL: valid, fetched: valid, wantErr: "does not match",
			sig: func(tb testing.TB, p *alexatest.PKI, body []byte) string {
				raw, _ := base64.StdEncoding.DecodeString(alexatest.Sign(tb, p.LeafKey, body))
				return base64.StdEncoding.EncodeToString(raw[:128])
			}},
		{name: "sig/not base64", certURL: valid, sig: fixedSig("!!not*base64!!"), wantErr: "not base64"},
		{name: "sig/URL-safe base64", certURL: valid, sig: fixedSig("-_-_"), wantErr: "not base64"},
		{name: "sig/missing", certURL: valid, sig: fixedSig(""), wantErr: "no Signature-256"},
		{name: "headers/no cert URL", sig: leafSig, wantErr: "no SignatureCertChainUrl"},
		{name: "headers/none", sig: fixedSig(""), wantErr: "no SignatureCertChainUrl"},
	}
}

// request returns the header and body tc sends.
func (tc signatureCase) request(tb testing.TB, p *alexatest.PKI) (http.Header, []byte) {
	signed := tc.signed
	if signed == nil {
		signed = signedBody(alexatest.Base)
	}
	sig := tc.sig(tb, p, signed)
	body := signed
	if tc.body != nil {
		body = tc.body(signed)
	}
	return alexatest.Header(tc.certURL, sig), body
}

func TestVerifySignature(t *testing.T) {
	p := alexatest.MustPKI(t)
	for _, tc := range signatureCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			v, f, _ := newTestVerifier(t)
			header, body := tc.request(t, p)
			err := v.Signature(context.Background(), header, body)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Signature: %v, want nil", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("Signature: nil, want an error containing %q", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("Signature: %v, want an error containing %q", err, tc.wantErr)
			case err != nil && !errors.Is(err, alexa.ErrVerify):
				t.Fatalf("Signature: %v does not wrap ErrVerify", err)
			}
			if got := f.Total(); tc.fetched == "" && got != 0 {
				t.Errorf("fetched %d times, want no download for a rejected URL", got)
			}
			if tc.fetched != "" && f.Fetches(tc.fetched) != 1 {
				t.Errorf("fetches of %s = %d, want 1 (all: %v)", tc.fetched, f.Fetches(tc.fetched), f.ByURL())
			}
		})
	}
}

func TestVerifyTimestamp(t *testing.T) {
	v, _, _ := newTestVerifier(t)
	tol := verifyTolerance
	cases := []struct {
		name string
		ts   time.Time
		ok   bool
	}{
		{"now", alexatest.Base, true},
		{"at the tolerance, past", alexatest.Base.Add(-tol), true},
		{"at the tolerance, future", alexatest.Base.Add(tol), true},
		{"just past the tolerance, past", alexatest.Base.Add(-tol - time.Nanosecond), false},
		{"just past the tolerance, future", alexatest.Base.Add(tol + time.Nanosecond), false},
		{"a second past the tolerance, past", alexatest.Base.Add(-tol - time.Second), false},
		{"a second past the tolerance, future", alexatest.Base.Add(tol + time.Second), false},
		{"replayed an hour later", alexatest.Base.Add(-time.Hour), false},
		{"replayed a day later", alexatest.Base.Add(-24 * time.Hour), false},
		{"zero time", time.Time{}, false},
		{"far future", alexatest.Base.Add(100 * 365 * 24 * time.Hour), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := v.Timestamp(tc.ts)
			if tc.ok && err != nil {
				t.Fatalf("Timestamp(%s): %v, want nil", tc.ts, err)
			}
			if !tc.ok && (err == nil || !errors.Is(err, alexa.ErrVerify)) {
				t.Fatalf("Timestamp(%s): %v, want ErrVerify", tc.ts, err)
			}
		})
	}
}

func TestVerifyDefaultTolerance(t *testing.T) {
	clock := newTestClock(alexatest.Base)
	v := alexa.NewVerifier(alexa.VerifierConfig{Now: clock.Now})
	if err := v.Timestamp(alexatest.Base.Add(-150 * time.Second)); err != nil {
		t.Errorf("150 s with the default tolerance: %v", err)
	}
	if err := v.Timestamp(alexatest.Base.Add(-151 * time.Second)); err == nil {
		t.Error("151 s with the default tolerance: accepted")
	}
}

func TestVerifyCertCache(t *testing.T) {
	p := alexatest.MustPKI(t)
	ctx := context.Background()
	body := signedBody(alexatest.Base)
	sig := alexatest.Sign(t, p.LeafKey, body)

	t.Run("same URL fetched once", func(t *testing.T) {
		v, f, _ := newTestVerifier(t)
		for i := 0; i < 3; i++ {
			if err := v.Signature(ctx, alexatest.Header(alexatest.URL(alexatest.Valid), sig), body); err != nil {
				t.Fatalf("verification %d: %v", i+1, err)
			}
		}
		if n := f.Total(); n != 1 {
			t.Fatalf("fetched %d times, want 1", n)
		}
	})

	t.Run("cached by the normalised URL", func(t *testing.T) {
		v, f, _ := newTestVerifier(t)
		for _, u := range []string{
			"https://s3.amazonaws.com/echo.api/echo-api-cert.pem",
			"HTTPS://S3.AMAZONAWS.COM/echo.api/echo-api-cert.pem",
			"https://s3.amazonaws.com:443/echo.api/../echo.api/echo-api-cert.pem",
		} {
			if err := v.Signature(ctx, alexatest.Header(u, sig), body); err != nil {
				t.Fatalf("%s: %v", u, err)
			}
		}
		if n := f.Total(); n != 1 {
			t.Fatalf("fetched %d times, want 1", n)
		}
	})

	t.Run("refetched and rejected after NotAfter", func(t *testing.T) {
		v, f, clock := newTestVerifier(t)
		u := alexatest.URL(alexatest.ShortLeaf)
		for i := 0; i < 2; i++ {
			if err := v.Signature(ctx, alexatest.Header(u, sig), body); err != nil {
				t.Fatalf("verification %d: %v", i+1, err)
			}
		}
		clock.Set(alexatest.Base.Add(alexatest.ShortLeafLife - time.Second))
		if err := v.Signature(ctx, alexatest.Header(u, sig), body); err != nil {
			t.Fatalf("a second before NotAfter: %v", err)
		}
		if n := f.Fetches(u); n != 1 {
			t.Fatalf("fetched %d times before NotAfter, want 1", n)
		}
		clock.Set(alexatest.Base.Add(alexatest.ShortLeafLife + time.Second))
		err := v.Signature(ctx, alexatest.Header(u, sig), body)
		if err == nil || !strings.Contains(err.Error(), "not valid now") {
			t.Fatalf("after NotAfter: %v, want the certificate rejected as expired", err)
		}
		if n := f.Fetches(u); n != 2 {
			t.Fatalf("fetched %d times, want 2 (the cache entry expires at NotAfter)", n)
		}
		// A failed download is not cached either.
		_ = v.Signature(ctx, alexatest.Header(u, sig), body)
		if n := f.Fetches(u); n != 3 {
			t.Fatalf("fetched %d times, want 3", n)
		}
	})

	t.Run("expires with the intermediate", func(t *testing.T) {
		v, _, clock := newTestVerifier(t)
		u := alexatest.URL(alexatest.ShortIntermediate)
		if err := v.Signature(ctx, alexatest.Header(u, sig), body); err != nil {
			t.Fatalf("while the intermediate is valid: %v", err)
		}
		clock.Set(alexatest.Base.Add(alexatest.ShortIntermediateLife + time.Second))
		if err := v.Signature(ctx, alexatest.Header(u, sig), body); err == nil {
			t.Fatal("accepted after the intermediate expired: the cache outlived the chain")
		}
	})

	t.Run("concurrent misses share one download", func(t *testing.T) {
		f := &gatedFetcher{Fetcher: alexatest.NewFetcher(p), entered: make(chan struct{}, 16), release: make(chan struct{})}
		v := alexa.NewVerifier(alexa.VerifierConfig{Roots: p.Roots, Fetcher: f, Now: newTestClock(alexatest.Base).Now})
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := 0; i < 16; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- v.Signature(ctx, alexatest.Header(alexatest.URL(alexatest.Valid), sig), body)
			}()
		}
		<-f.entered
		time.Sleep(100 * time.Millisecond) // let the other misses queue up behind it
		close(f.release)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if n := f.Total(); n != 1 {
			t.Fatalf("fetched %d times, want 1", n)
		}
	})
}

// gatedFetcher holds every download until release is closed.
type gatedFetcher struct {
	*alexatest.Fetcher
	entered chan struct{}
	release chan struct{}
}

func (f *gatedFetcher) Fetch(ctx context.Context, url string) ([]byte, error) {
	f.entered <- struct{}{}
	<-f.release
	return f.Fetcher.Fetch(ctx, url)
}

// verifyEngine is an alexa.Engine that knows one skill and counts turns.
type verifyEngine struct{ turns atomic.Int64 }

func (e *verifyEngine) SkillFor(name, appID string) (string, error) {
	if name != "" && name != "stocks" {
		return "", gateway.ErrUnknownSkill
	}
	if appID != verifyAppID {
		if name == "" {
			return "", gateway.ErrUnknownSkill
		}
		return "", errors.New("application id does not match")
	}
	return "stocks", nil
}

func (e *verifyEngine) Turn(context.Context, *gateway.Turn) *gateway.Reply {
	e.turns.Add(1)
	return &gateway.Reply{Speech: gateway.Speech{Text: "verified"}, EndSession: true}
}

// reasonObserver records the reason of every outcome.
type reasonObserver struct {
	mu      sync.Mutex
	reasons []string
}

func (o *reasonObserver) Observe(_ string, _ int, reason string, _ time.Duration) {
	o.mu.Lock()
	o.reasons = append(o.reasons, reason)
	o.mu.Unlock()
}

func (o *reasonObserver) last() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.reasons) == 0 {
		return "<none>"
	}
	return o.reasons[len(o.reasons)-1]
}

// newVerifyingHandler returns a Handler with the test verifier.
func newVerifyingHandler(tb testing.TB) (*alexa.Handler, *verifyEngine, *reasonObserver, *testClock) {
	v, _, clock := newTestVerifier(tb)
	eng := &verifyEngine{}
	obs := &reasonObserver{}
	return &alexa.Handler{
		Engine:   eng,
		Verifier: v,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Observer: obs,
	}, eng, obs, clock
}

// checkRejected fails unless the handler answered 400 with a JSON error
// and no Alexa response.
func checkRejected(tb testing.TB, status int, body []byte) {
	tb.Helper()
	if status != http.StatusBadRequest {
		tb.Fatalf("status %d, want 400: %s", status, body)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		tb.Fatalf("400 body is not JSON: %v: %s", err, body)
	}
	if _, ok := m["error"]; !ok {
		tb.Errorf("400 body has no error: %s", body)
	}
	for _, k := range []string{"version", "response", "sessionAttributes"} {
		if _, ok := m[k]; ok {
			tb.Errorf("400 body carries Alexa's %q: %s", k, body)
		}
	}
}

func TestHandlerVerification(t *testing.T) {
	p := alexatest.MustPKI(t)
	for _, tc := range signatureCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			h, eng, obs, _ := newVerifyingHandler(t)
			header, body := tc.request(t, p)
			status, out := h.Serve(context.Background(), "", header, body)
			if tc.wantErr == "" {
				if status != http.StatusOK {
					t.Fatalf("status %d, want 200: %s", status, out)
				}
				if eng.turns.Load() != 1 {
					t.Fatalf("engine ran %d turns, want 1", eng.turns.Load())
				}
				return
			}
			checkRejected(t, status, out)
			if got := obs.last(); got != "signature" {
				t.Errorf("reason %q, want signature", got)
			}
			if eng.turns.Load() != 0 {
				t.Errorf("a rejected request reached the engine")
			}
		})
	}
}

func TestHandlerTimestamp(t *testing.T) {
	p := alexatest.MustPKI(t)
	valid := alexatest.URL(alexatest.Valid)
	cases := []struct {
		name string
		ts   time.Time
		ok   bool
	}{
		{"now", alexatest.Base, true},
		{"at the tolerance, past", alexatest.Base.Add(-verifyTolerance), true},
		{"at the tolerance, future", alexatest.Base.Add(verifyTolerance), true},
		{"a second past the tolerance, past", alexatest.Base.Add(-verifyTolerance - time.Second), false},
		{"a second past the tolerance, future", alexatest.Base.Add(verifyTolerance + time.Second), false},
		{"replayed an hour later", alexatest.Base.Add(-time.Hour), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, eng, obs, _ := newVerifyingHandler(t)
			// A correctly signed request: only its timestamp can fail.
			body := signedBody(tc.ts)
			status, out := h.Serve(context.Background(), "", alexatest.Header(valid, alexatest.Sign(t, p.LeafKey, body)), body)
			if tc.ok {
				if status != http.StatusOK {
					t.Fatalf("status %d, want 200: %s", status, out)
				}
				return
			}
			checkRejected(t, status, out)
			if got := obs.last(); got != "timestamp" {
				t.Errorf("reason %q, want timestamp", got)
			}
			if eng.turns.Load() != 0 {
				t.Errorf("a rejected request reached the engine")
			}
		})
	}

	t.Run("epoch milliseconds", func(t *testing.T) {
		h, _, _, _ := newVerifyingHandler(t)
		body := bytes.Replace(signedBody(alexatest.Base),
			[]byte(`"`+alexatest.Base.UTC().Format(time.RFC3339)+`"`),
			[]byte(fmt.Sprint(alexatest.Base.Add(-time.Hour).UnixMilli())), 1)
		status, out := h.Serve(context.Background(), "", alexatest.Header(valid, alexatest.Sign(t, p.LeafKey, body)), body)
		checkRejected(t, status, out)
	})
}

// TestHandlerSignatureBeforeJSON checks that nothing parses the body
// before its signature is verified: invalid JSON with a bad signature is
// refused for the signature, with a good one for the envelope.
func TestHandlerSignatureBeforeJSON(t *testing.T) {
	p := alexatest.MustPKI(t)
	valid := alexatest.URL(alexatest.Valid)
	for _, body := range [][]byte{
		[]byte(`{"version": "1.0", "request": `),
		[]byte("\xff\xfe not UTF-8"),
		[]byte(strings.Repeat("[", 100000)),
		[]byte(`{"a":1,"a":2}`),
	} {
		h, _, obs, _ := newVerifyingHandler(t)
		status, out := h.Serve(context.Background(), "", alexatest.Header(valid, alexatest.Sign(t, p.ForgerKey, body)), body)
		checkRejected(t, status, out)
		if got := obs.last(); got != "signature" {
			t.Errorf("%.20q with a bad signature: reason %q, want signature", body, got)
		}
		status, out = h.Serve(context.Background(), "", alexatest.Header(valid, alexatest.Sign(t, p.LeafKey, body)), body)
		checkRejected(t, status, out)
		if got := obs.last(); got != "envelope" {
			t.Errorf("%.20q with a good signature: reason %q, want envelope", body, got)
		}
	}
}

func TestHandlerApplicationID(t *testing.T) {
	p := alexatest.MustPKI(t)
	h, eng, obs, _ := newVerifyingHandler(t)
	body := alexa.BuildRequest(alexa.RequestSpec{
		ApplicationID: "amzn1.ask.skill.someone-else",
		UserID:        "amzn1.ask.account.VERIFY",
		Type:          "LaunchRequest",
		Timestamp:     alexatest.Base,
	})
	status, out := h.Serve(context.Background(), "stocks", alexatest.Header(alexatest.URL(alexatest.Valid), alexatest.Sign(t, p.LeafKey, body)), body)
	checkRejected(t, status, out)
	if got := obs.last(); got != "application id" {
		t.Errorf("reason %q, want application id", got)
	}
	if eng.turns.Load() != 0 {
		t.Error("a request for another application reached the engine")
	}
}

// BenchmarkVerify measures what verification costs per request once the
// certificate is cached: the URL rules, base64, SHA-256 of the body, the
// RSA-2048 verification and the timestamp check.
func BenchmarkVerify(b *testing.B) {
	p := alexatest.MustPKI(b)
	v := alexa.NewVerifier(alexa.VerifierConfig{Roots: p.Roots, Fetcher: alexatest.NewFetcher(p)})
	body := signedBody(time.Now())
	header := alexatest.Header(alexatest.URL(alexatest.Valid), alexatest.Sign(b, p.LeafKey, body))
	ctx := context.Background()
	if err := v.Signature(ctx, header, body); err != nil {
		b.Fatal(err)
	}
	ts := time.Now()
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := v.Signature(ctx, header, body); err != nil {
			b.Fatal(err)
		}
		if err := v.Timestamp(ts); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzCertURL checks that CertURL never panics and never accepts a URL
// whose normalised form is not https://s3.amazonaws.com/echo.api/...
func FuzzCertURL(f *testing.F) {
	for _, s := range []string{
		"https://s3.amazonaws.com/echo.api/echo-api-cert.pem",
		"HTTPS://S3.AMAZONAWS.COM/echo.api/echo-api-cert.pem",
		"https://s3.amazonaws.com:443/echo.api/x",
		"https://s3.amazonaws.com/echo.api/../echo.api/x",
		"http://s3.amazonaws.com/echo.api/echo-api-cert.pem",
		"https://s3.amazonaws.com:563/echo.api/echo-api-cert.pem",
		"https://notamazon.com/echo.api/",
		"https://s3.amazonaws.com/invalid.path/x",
		"https://s3.amazonaws.com/echo.api/../invalid.path/x",
		"https://s3.amazonaws.com/ECHO.API/x",
		"https://s3.amazonaws.com/echo.api/%2e%2e/x",
		"https://s3.amazonaws.com/echo.api/a%3Fb",
		"https://s3.amazonaws.com/echo.api/a%25zz",
		"https://s3.amazonaws.com/echo.api/a%23b?c#d",
		"https://s3.amazonaws.com@evil.example/echo.api/x",
		"https://s3.amazonaws.com/echo.api//evil.example/x",
		"https://s3.amazonaws.com/echo.api/\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		out, err := alexa.CertURL(raw)
		if err != nil {
			if !errors.Is(err, alexa.ErrVerify) {
				t.Fatalf("CertURL(%q): %v does not wrap ErrVerify", raw, err)
			}
			if out != "" {
				t.Fatalf("CertURL(%q) = %q with an error", raw, out)
			}
			return
		}
		if !strings.HasPrefix(out, "https://s3.amazonaws.com/echo.api/") {
			t.Fatalf("CertURL(%q) = %q", raw, out)
		}
		u, err := url.Parse(out)
		if err != nil {
			t.Fatalf("CertURL(%q) = %q, which does not parse: %v", raw, out, err)
		}
		if u.Scheme != "https" || u.Host != "s3.amazonaws.com" || u.User != nil ||
			u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.Opaque != "" {
			t.Fatalf("CertURL(%q) = %q: scheme %q host %q user %v query %q fragment %q",
				raw, out, u.Scheme, u.Host, u.User, u.RawQuery, u.Fragment)
		}
		if !strings.HasPrefix(u.Path, "/echo.api/") || path.Clean(u.Path) != u.Path {
			t.Fatalf("CertURL(%q) = %q: path %q is not a clean path under /echo.api/", raw, out, u.Path)
		}
		// The input itself names that host and scheme.
		in, err := url.Parse(raw)
		if err != nil || !strings.EqualFold(in.Scheme, "https") || !strings.EqualFold(in.Hostname(), "s3.amazonaws.com") {
			t.Fatalf("CertURL accepted %q", raw)
		}
		// Normalising is idempotent.
		again, err := alexa.CertURL(out)
		if err != nil || again != out {
			t.Fatalf("CertURL(%q) = %q, then %q, %v", raw, out, again, err)
		}
	})
}

// deadlineFetcher records the deadline each download gets and fails it at
// once, as a host refusing the connection would.
type deadlineFetcher struct {
	mu        sync.Mutex
	deadlines []time.Duration // time left when Fetch was called; -1: none
}

func (f *deadlineFetcher) Fetch(ctx context.Context, _ string) ([]byte, error) {
	left := time.Duration(-1)
	if d, ok := ctx.Deadline(); ok {
		left = time.Until(d)
	}
	f.mu.Lock()
	f.deadlines = append(f.deadlines, left)
	f.mu.Unlock()
	return nil, errors.New("connection refused")
}

// TestCertDownloadBudget pins SPEC 10: a certificate download gets at
// most what is left of the request and 3 s.
func TestCertDownloadBudget(t *testing.T) {
	p := alexatest.MustPKI(t)
	body := signedBody(time.Now())
	sig := alexatest.Sign(t, p.LeafKey, body)
	tests := []struct {
		name string
		left time.Duration // the request's deadline; 0: none
		max  time.Duration
	}{
		{name: "no request deadline", max: 3 * time.Second},
		{name: "more than 3 s left", left: 6 * time.Second, max: 3 * time.Second},
		{name: "1 s left", left: time.Second, max: time.Second},
		{name: "200 ms left", left: 200 * time.Millisecond, max: 200 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &deadlineFetcher{}
			v := alexa.NewVerifier(alexa.VerifierConfig{Roots: p.Roots, Fetcher: f})
			ctx := context.Background()
			if tc.left > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.left)
				defer cancel()
			}
			if err := v.Signature(ctx, alexatest.Header(alexatest.CanonicalURL, sig), body); err == nil {
				t.Fatal("verified with a failed download")
			}
			if len(f.deadlines) != 1 {
				t.Fatalf("%d downloads, want 1", len(f.deadlines))
			}
			got := f.deadlines[0]
			if got < 0 || got > tc.max || got < tc.max-100*time.Millisecond {
				t.Errorf("download got %v, want %v", got, tc.max)
			}
		})
	}
}
