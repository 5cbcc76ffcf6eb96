package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/voicegw/voicegw/gateway/alexa"
	"github.com/voicegw/voicegw/gateway/faultproxy"
)

// faultsConfig is a skill whose service sits behind a fault proxy; the
// service timeout is longer than the 1 s deadline, so the deadline ends a
// hung call.
const faultsConfig = `version: 1
server:
  deadline: 1s
alexa:
  verify: false
services:
  quotes:
    base_url: %s
    timeout: 5s
    retries: 1
skills:
  stocks:
    application_id: amzn1.ask.skill.faults
    errors:
      timeout: The quote service is slow right now.
      default: The quote service failed.
    intents:
      GetQuote:
        samples: ["quote"]
        call:
          service: quotes
          path: /v1/quote/AMZN
          extract:
            price: { path: data.price, required: true }
        say: "It is at {{ .price }}."
`

// TestUpstreamFaultsThroughProxy: an upstream that hangs (blackholed, on
// new and on pooled keep-alive connections) or whose connections are
// reset before or in the middle of a turn costs the user a spoken error
// reply within server.deadline + 250 ms, never a 5xx, for every one of
// several concurrent turns; when the fault clears, turns answer normally.
func TestUpstreamFaultsThroughProxy(t *testing.T) {
	var slow sync.Map // set: the upstream waits 400 ms before answering
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := slow.Load("on"); ok {
			select {
			case <-time.After(400 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, e2eQuote)
	}))
	defer up.Close()
	proxy, err := faultproxy.Start(strings.TrimPrefix(up.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	cfg := mustE2EConfig(t, fmt.Sprintf(faultsConfig, proxy.URL("http")))
	d := newDeps(e2eDiscard)
	srv := httptest.NewServer(d.server(d.runtime(cfg, nil), cfg).Handler())
	defer srv.Close()
	deadline := cfg.Server.Deadline.D
	body := alexa.BuildRequest(alexa.RequestSpec{ApplicationID: "amzn1.ask.skill.faults", UserID: e2eUser, Type: "IntentRequest", Intent: "GetQuote"})

	const ok, slowSpeech, failed = "It is at 123.45.", "The quote service is slow right now.", "The quote service failed."
	// turns sends n concurrent turns; during runs while they are in flight.
	turns := func(t *testing.T, n int, want string, during func()) {
		t.Helper()
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				resp, err := srv.Client().Post(srv.URL+"/alexa", "application/json", strings.NewReader(string(body)))
				if err != nil {
					t.Errorf("turn %d: %v", i, err)
					return
				}
				out, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				took := time.Since(start)
				if resp.StatusCode != http.StatusOK {
					t.Errorf("turn %d: status %d: %s", i, resp.StatusCode, out)
					return
				}
				if got := e2eSpeech(t, resp.StatusCode, out); got != want {
					t.Errorf("turn %d: speech %q, want %q", i, got, want)
				}
				if took > deadline+deadlineSlack {
					t.Errorf("turn %d: answered after %v, want within %v", i, took, deadline+deadlineSlack)
				}
			}()
		}
		if during != nil {
			during()
		}
		wg.Wait()
	}
	timedTurn := func(t *testing.T, want string) time.Duration {
		start := time.Now()
		turns(t, 1, want, nil)
		return time.Since(start)
	}

	// Warm: keep-alive connections to the upstream are pooled.
	turns(t, 8, ok, nil)

	t.Run("blackholed with pooled connections", func(t *testing.T) {
		proxy.Blackhole()
		defer proxy.Pass()
		turns(t, 8, slowSpeech, nil)
		t.Logf("one more turn: timeout speech after %v", timedTurn(t, slowSpeech).Round(time.Millisecond))
	})
	t.Run("recovers", func(t *testing.T) {
		turns(t, 4, ok, nil)
	})
	t.Run("reset while the upstream answers", func(t *testing.T) {
		slow.Store("on", true)
		defer slow.Delete("on")
		defer proxy.Pass()
		start := time.Now()
		turns(t, 8, failed, func() {
			time.Sleep(150 * time.Millisecond)
			proxy.Reset()
		})
		// A reset is an answer, not a hang: the turns end long before
		// the deadline.
		if took := time.Since(start); took > deadline {
			t.Errorf("reset turns took %v, want well under the %v deadline", took, deadline)
		}
	})
	t.Run("reset on every new connection", func(t *testing.T) {
		proxy.Reset()
		defer proxy.Pass()
		took := timedTurn(t, failed)
		if took > deadline {
			t.Errorf("took %v, want well under the %v deadline", took, deadline)
		}
		turns(t, 8, failed, nil)
	})
	t.Run("recovers after resets", func(t *testing.T) {
		turns(t, 4, ok, nil)
	})
	t.Run("slower than the deadline", func(t *testing.T) {
		proxy.Delay(2 * deadline)
		defer proxy.Pass()
		turns(t, 4, slowSpeech, nil)
	})
}
