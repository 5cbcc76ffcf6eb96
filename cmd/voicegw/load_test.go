package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/voicegw/voicegw/gateway/alexa"
)

// The load test's shape: loopback only, bounded in turns and time.
const (
	loadTurns       = 2000
	loadConcurrency = 200
	loadDeadline    = 2 * time.Second        // server.deadline
	loadMargin      = 500 * time.Millisecond // for the HTTP hops and the race detector
	loadSpeech      = "Amazon is trading at 123.45 dollars."
)

const loadTestConfig = `version: 1
server:
  deadline: 2s
alexa:
  verify: false
services:
  quotes:
    base_url: %s
    timeout: 300ms
    retries: 1
    max_response_bytes: 65536
skills:
  stocks:
    application_id: amzn1.ask.skill.load
    intents:
      GetQuote:
        samples: ["quote for {Symbol}"]
        slots:
          Symbol: { type: AMAZON.SearchQuery }
        call:
          service: quotes
          path: /v1/quote/{{ .slots.Symbol }}
          extract:
            name: data.name
            price: { path: data.price, required: true }
        say: "{{ .name }} is trading at {{ .price }} dollars."
`

// Ways the load test's upstream fails, one call in ten, in turn.
var loadFaults = []string{"500", "503", "slow", "malformed", "reset", "huge"}

// loadUpstream answers quotes and fails every tenth call in one of the
// loadFaults ways.
type loadUpstream struct {
	calls  atomic.Int64
	faults [6]atomic.Int64
}

func (u *loadUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := u.calls.Add(1)
	if n%10 != 0 {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, e2eQuote)
		return
	}
	kind := int(n/10) % len(loadFaults)
	u.faults[kind].Add(1)
	switch loadFaults[kind] {
	case "500":
		http.Error(w, "internal", http.StatusInternalServerError)
	case "503":
		w.Header().Set("Retry-After", "1")
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
	case "slow":
		// Past the 300 ms service timeout; the gateway hangs up first.
		select {
		case <-r.Context().Done():
		case <-time.After(time.Second):
		}
		_, _ = io.WriteString(w, `{"data":{"name":"Late","price":1}}`)
	case "malformed":
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"data":{"name":"Amazon","price":`)
	case "reset":
		hj, ok := w.(http.Hijacker)
		if !ok {
			panic("no hijacker")
		}
		conn, _, err := hj.Hijack()
		if err != nil {
			return
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // RST, not FIN
		}
		_ = conn.Close()
	case "huge":
		// Four times max_response_bytes, streamed without a length.
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"data":{"name":"`)
		chunk := bytes.Repeat([]byte("x"), 16<<10)
		for i := 0; i < 16; i++ {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
		_, _ = io.WriteString(w, `","price":1}}`)
	}
}

// TestServeLoad runs 2,000 turns at 200 concurrent against the real HTTP
// server while one upstream call in ten fails: no 5xx, every answer a
// valid Alexa response with speech, every turn within server.deadline.
func TestServeLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	up := &loadUpstream{}
	upstream := httptest.NewServer(up)
	defer upstream.Close()
	cfg := mustE2EConfig(t, fmt.Sprintf(loadTestConfig, upstream.URL))
	srv := e2eServe(t, newDeps(e2eDiscard).runtime(cfg, nil))

	tr := &http.Transport{MaxIdleConnsPerHost: loadConcurrency, MaxIdleConns: loadConcurrency}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	var (
		mu        sync.Mutex
		latencies = make([]time.Duration, 0, loadTurns)
		failures  []string
		errSpeech = map[string]int{}
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(failures) < 20 {
			failures = append(failures, fmt.Sprintf(format, args...))
		} else {
			failures[len(failures)-1] = "... and more"
		}
	}
	symbols := []string{"AMZN", "GOOG", "a/../b?x=1", "MSFT"}
	turns := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < loadConcurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range turns {
				body := alexa.BuildRequest(alexa.RequestSpec{
					ApplicationID: "amzn1.ask.skill.load",
					UserID:        "amzn1.ask.account.LOAD",
					Type:          "IntentRequest",
					Intent:        "GetQuote",
					Slots:         map[string]string{"Symbol": symbols[i%len(symbols)]},
				})
				t0 := time.Now()
				resp, err := client.Post(srv.URL+"/alexa", "application/json", bytes.NewReader(body))
				if err != nil {
					fail("turn %d: %v", i, err)
					continue
				}
				out, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				took := time.Since(t0)
				mu.Lock()
				latencies = append(latencies, took)
				mu.Unlock()
				if err != nil {
					fail("turn %d: reading: %v", i, err)
					continue
				}
				if resp.StatusCode != http.StatusOK {
					fail("turn %d: status %d: %s", i, resp.StatusCode, out)
					continue
				}
				if took > loadDeadline+loadMargin {
					fail("turn %d: answered after %s", i, took)
				}
				var r alexa.Response
				dec := json.NewDecoder(bytes.NewReader(out))
				if err := dec.Decode(&r); err != nil || dec.More() {
					fail("turn %d: not an Alexa response (%v): %s", i, err, out)
					continue
				}
				speech := r.Speech()
				if strings.TrimSpace(speech) == "" {
					fail("turn %d: no speech: %s", i, out)
					continue
				}
				if speech != loadSpeech {
					mu.Lock()
					errSpeech[speech]++
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < loadTurns; i++ {
		turns <- i
	}
	close(turns)
	wg.Wait()
	elapsed := time.Since(start)

	for _, f := range failures {
		t.Error(f)
	}
	if len(latencies) != loadTurns {
		t.Errorf("%d of %d turns answered", len(latencies), loadTurns)
	}
	var injected int64
	for i, name := range loadFaults {
		n := up.faults[i].Load()
		injected += n
		if n == 0 {
			t.Errorf("no %s fault was injected", name)
		}
	}
	spoken := 0
	for _, n := range errSpeech {
		spoken += n
	}
	if spoken == 0 {
		t.Error("no turn answered with error speech: the faults did not reach the turns")
	}
	slices.Sort(latencies)
	pct := func(p float64) time.Duration {
		if len(latencies) == 0 {
			return 0
		}
		return latencies[min(len(latencies)-1, int(float64(len(latencies))*p))]
	}
	t.Logf("%d turns at %d concurrent in %s (%.0f turns/s): p50 %s, p99 %s, max %s",
		len(latencies), loadConcurrency, elapsed.Round(time.Millisecond),
		float64(len(latencies))/elapsed.Seconds(), pct(0.50), pct(0.99), pct(1))
	t.Logf("upstream: %d calls, %d faults injected; %d turns answered with error speech (%d kinds)",
		up.calls.Load(), injected, spoken, len(errSpeech))
	for speech, n := range errSpeech {
		t.Logf("  %4d x %q", n, speech)
	}
}
