package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/voicegw/voicegw/gateway/alexa"
	"github.com/voicegw/voicegw/gateway/alexa/alexatest"
	"github.com/voicegw/voicegw/gateway/faultproxy"
)

// deadlineSlack is SPEC 10's bound: every Alexa request is answered
// within server.deadline and this much.
const deadlineSlack = 250 * time.Millisecond

// certHost is Amazon's certificate host as the tests have it: an HTTP
// server with the test PKI's chains, behind a fault proxy.
type certHost struct {
	proxy *faultproxy.Proxy
	hits  sync.Map // path -> struct{}
}

// newCertHost serves pki's chains at their URL paths behind a fault
// proxy; both stop when tb ends.
func newCertHost(tb testing.TB, pki *alexatest.PKI) *certHost {
	tb.Helper()
	h := &certHost{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.hits.Store(r.URL.Path, struct{}{})
		pem, ok := pki.Chains["https://s3.amazonaws.com"+r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(pem)
	}))
	tb.Cleanup(srv.Close)
	p, err := faultproxy.Start(strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.Close)
	h.proxy = p
	return h
}

// Fetch downloads a certificate URL from the proxy as the gateway's own
// fetcher downloads it from Amazon: the request's context bounds it.
func (h *certHost) Fetch(ctx context.Context, u string) ([]byte, error) {
	path := strings.TrimPrefix(u, "https://s3.amazonaws.com")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.proxy.URL("http")+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	return io.ReadAll(resp.Body)
}

// timed sends body to url and returns the status, the body and how long
// the answer took.
func timed(tb testing.TB, client *http.Client, url string, header http.Header, body []byte) (int, []byte, time.Duration) {
	tb.Helper()
	start := time.Now()
	status, out := e2ePost(tb, client, url, header, body)
	return status, out, time.Since(start)
}

// deadlineConfig is a one-skill config with a 1 s deadline whose service
// waits 5 s: the deadline, not the service timeout, must end the turn.
const deadlineConfig = `version: 1
server:
  deadline: 1s
alexa:
  verify: %s
services:
  quotes:
    base_url: %s
    timeout: 5s
    retries: 0
skills:
  stocks:
    application_id: ` + e2eAppID + `
    errors:
      timeout: The quote service is slow right now.
    intents:
      GetQuote:
        samples: ["quote for {Symbol}"]
        slots:
          Symbol: { type: AMAZON.SearchQuery, required: true }
        call:
          service: quotes
          path: /v1/quote/{{ .slots.Symbol }}
          extract:
            price: { path: data.price, required: true }
        say: "It is at {{ .price }}."
`

// TestDeadlineFromArrival pins SPEC 10's first point with real network
// parts: a certificate host that accepts and never answers, an upstream
// that does the same, a client that trickles its body; each request is
// answered within server.deadline + 250 ms of its arrival.
func TestDeadlineFromArrival(t *testing.T) {
	pki := alexatest.MustPKI(t)
	quotes := newE2EUpstream(t, e2eQuote)
	upProxy, err := faultproxy.Start(strings.TrimPrefix(quotes.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(upProxy.Close)
	certs := newCertHost(t, pki)

	d := newDeps(e2eDiscard)
	d.verify = alexa.VerifierConfig{Roots: pki.Roots, Fetcher: certs}
	cfg := mustE2EConfig(t, fmt.Sprintf(deadlineConfig, "true", upProxy.URL("http")))
	srv := e2eServe(t, d.runtime(cfg, nil))
	client := srv.Client()
	deadline := cfg.Server.Deadline.D
	signed := func(certURL string) (http.Header, []byte) {
		body := e2eQuoteRequest(e2eAppID, time.Now())
		return alexatest.Header(certURL, alexatest.Sign(t, pki.LeafKey, body)), body
	}

	t.Run("cold certificate host hangs", func(t *testing.T) {
		certs.proxy.Blackhole()
		defer certs.proxy.Pass()
		// Two requests for the same cold URL: the second waits for the
		// first one's download, but no longer than its own deadline.
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(time.Duration(i) * 300 * time.Millisecond)
				h, body := signed(alexatest.CanonicalURL)
				status, out, took := timed(t, client, srv.URL+"/alexa", h, body)
				if status != http.StatusBadRequest {
					t.Errorf("request %d: status %d, want 400: %s", i, status, out)
				}
				if took > deadline+deadlineSlack {
					t.Errorf("request %d: answered after %v, want within %v", i, took, deadline+deadlineSlack)
				}
				t.Logf("request %d: %d after %v", i, status, took.Round(time.Millisecond))
			}()
		}
		wg.Wait()
	})

	t.Run("warm certificate host after a cut-short download", func(t *testing.T) {
		// The download above was cut short by its request's deadline, not
		// refused by the host: the URL is not marked as failed, and with
		// the host back the same chain verifies at once.
		h, body := signed(alexatest.CanonicalURL)
		status, out, took := timed(t, client, srv.URL+"/alexa", h, body)
		if got := e2eSpeech(t, status, out); got != "It is at 123.45." {
			t.Fatalf("speech %q", got)
		}
		t.Logf("answered after %v", took.Round(time.Millisecond))
	})

	t.Run("upstream blackholed", func(t *testing.T) {
		upProxy.Blackhole()
		defer upProxy.Pass()
		h, body := signed(alexatest.CanonicalURL)
		status, out, took := timed(t, client, srv.URL+"/alexa", h, body)
		if got := e2eSpeech(t, status, out); got != "The quote service is slow right now." {
			t.Errorf("speech %q, want the timeout speech", got)
		}
		if took > deadline+deadlineSlack {
			t.Errorf("answered after %v, want within %v", took, deadline+deadlineSlack)
		}
		if took < deadline-50*time.Millisecond {
			t.Errorf("answered after %v, before the deadline: the upstream was not waited for", took)
		}
		t.Logf("timeout speech after %v", took.Round(time.Millisecond))
	})

	t.Run("body trickles in", func(t *testing.T) {
		h, body := signed(alexatest.CanonicalURL)
		conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		var head strings.Builder
		fmt.Fprintf(&head, "POST /alexa HTTP/1.1\r\nHost: voicegw\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", len(body))
		for k, v := range h {
			fmt.Fprintf(&head, "%s: %s\r\n", k, v[0])
		}
		head.WriteString("\r\n")
		if _, err := io.WriteString(conn, head.String()); err != nil {
			t.Fatal(err)
		}
		// One byte every 100 ms: the body would take minutes.
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			for i := 0; i < len(body); i++ {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
				if _, err := conn.Write(body[i : i+1]); err != nil {
					return
				}
			}
		}()
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		resp.Body.Close()
		took := time.Since(start)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("status %d, want 400", resp.StatusCode)
		}
		if took > deadline+deadlineSlack {
			t.Errorf("answered after %v, want within %v", took, deadline+deadlineSlack)
		}
		t.Logf("%d after %v", resp.StatusCode, took.Round(time.Millisecond))
	})
}
