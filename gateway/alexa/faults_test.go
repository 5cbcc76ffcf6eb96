package alexa_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/auth"
	"github.com/voicegw/voicegw/gateway/inmem"
)

// faultMargin is how much later than its budget a turn may answer: time
// for the test's own scheduling on a busy machine, not for the gateway.
const faultMargin = 400 * time.Millisecond

const faultAppID = "amzn1.ask.skill.faults"

// faultConfig is a skill with one call to the api service.
func faultConfig(deadline, timeout string, retries int, method string, maxBytes int64, authType string) string {
	extra := ""
	if maxBytes > 0 {
		extra += fmt.Sprintf("    max_response_bytes: %d\n", maxBytes)
	}
	if authType != "" {
		extra += "    auth: " + authType + "\n"
	}
	return fmt.Sprintf(`
version: 1
alexa:
  verify: false
server:
  deadline: %s
services:
  api:
    base_url: ${VOICEGW_TEST_UPSTREAM}
    timeout: %s
    retries: %d
%sskills:
  faults:
    application_id: amzn1.ask.skill.faults
    errors:
      timeout: Timed out.
      default: Failed.
      "503": Unavailable.
      5xx: Server error.
      "401": Unauthorized.
    intents:
      Get:
        samples: ["get"]
        call:
          service: api
          method: %s
          path: /thing
          extract:
            name: { path: name, required: true }
        say: "Got {{ .name }}."
`, deadline, timeout, retries, extra, method)
}

// sleepHandler answers after d, or gives up when the client does.
func sleepHandler(d time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			jsonHandler(200, `{"name":"late"}`)(w, r)
		case <-r.Context().Done():
		}
	}
}

// statusSequence answers the n-th request with statuses[n] (the last one
// repeats) and {"name":"ok"}.
func statusSequence(statuses ...int) http.HandlerFunc {
	var n atomic.Int32
	return func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		if i >= len(statuses) {
			i = len(statuses) - 1
		}
		jsonHandler(statuses[i], `{"name":"ok"}`)(w, r)
	}
}

// streamer writes size bytes of a JSON string in chunks until the client
// stops reading, and records how much it could write.
type streamer struct {
	size          int64
	declareLength bool
	written       atomic.Int64
	done          chan struct{}
	once          sync.Once
}

func (s *streamer) handler(w http.ResponseWriter, r *http.Request) {
	defer s.once.Do(func() { close(s.done) })
	if s.declareLength {
		w.Header().Set("Content-Length", strconv.FormatInt(s.size, 10))
	}
	w.Header().Set("Content-Type", "application/json")
	chunk := []byte(strings.Repeat("a", 32<<10))
	if n, err := io.WriteString(w, `{"name":"`); err != nil {
		return
	} else {
		s.written.Add(int64(n))
	}
	for s.written.Load()+int64(len(chunk)) < s.size {
		n, err := w.Write(chunk)
		s.written.Add(int64(n))
		if err != nil {
			return
		}
	}
}

// paddedJSON returns {"name":"ok","pad":"…"} of exactly n bytes.
func paddedJSON(n int) string {
	const head, tail = `{"name":"ok","pad":"`, `"}`
	return head + strings.Repeat("p", n-len(head)-len(tail)) + tail
}

// TestUpstreamFaults checks that every upstream failure is answered with
// speech (HTTP 200, never a 5xx) within the turn's budget.
func TestUpstreamFaults(t *testing.T) {
	tests := []struct {
		name     string
		deadline string
		timeout  string
		retries  int
		method   string
		maxBytes int64
		// handler answers the upstream; nil with baseURL set means none.
		handler http.HandlerFunc
		// baseURL, when set, replaces the recording upstream's URL.
		baseURL func(t *testing.T) string
		// stream, when set, serves the body.
		stream *streamer

		wantSpeech string
		wantHits   int // -1: not checked
		// budget is the most the turn may take (plus faultMargin); min
		// the least (a timeout must not fire early).
		budget, min time.Duration
	}{
		{name: "slower than the service timeout", deadline: "3s", timeout: "200ms", method: "GET",
			handler: sleepHandler(5 * time.Second), wantSpeech: "Timed out.", wantHits: 1,
			budget: 200 * time.Millisecond, min: 200 * time.Millisecond},
		{name: "timeout is not retried", deadline: "3s", timeout: "200ms", retries: 2, method: "GET",
			handler: sleepHandler(5 * time.Second), wantSpeech: "Timed out.", wantHits: 1,
			budget: 200 * time.Millisecond, min: 200 * time.Millisecond},
		{name: "slower than the deadline with a large service timeout", deadline: "300ms", timeout: "5s", method: "GET",
			handler: sleepHandler(5 * time.Second), wantSpeech: "Timed out.", wantHits: 1,
			budget: 300 * time.Millisecond, min: 300 * time.Millisecond},
		{name: "500 is not retried", deadline: "2s", timeout: "1s", retries: 1, method: "GET",
			handler: statusSequence(500), wantSpeech: "Server error.", wantHits: 1, budget: time.Second},
		{name: "503 on GET is retried once", deadline: "2s", timeout: "1s", retries: 1, method: "GET",
			handler: statusSequence(503), wantSpeech: "Unavailable.", wantHits: 2, budget: time.Second},
		{name: "503 then 200 on GET", deadline: "2s", timeout: "1s", retries: 1, method: "GET",
			handler: statusSequence(503, 200), wantSpeech: "Got ok.", wantHits: 2, budget: time.Second},
		{name: "502 retried twice", deadline: "2s", timeout: "1s", retries: 2, method: "GET",
			handler: statusSequence(502), wantSpeech: "Server error.", wantHits: 3, budget: time.Second},
		{name: "503 on POST is not retried", deadline: "2s", timeout: "1s", retries: 1, method: "POST",
			handler: statusSequence(503), wantSpeech: "Unavailable.", wantHits: 1, budget: time.Second},
		{name: "malformed JSON with extracts", deadline: "2s", timeout: "1s", method: "GET",
			handler: jsonHandler(200, `{"name": "x",`), wantSpeech: "Failed.", wantHits: 1, budget: time.Second},
		{name: "HTML instead of JSON", deadline: "2s", timeout: "1s", method: "GET",
			handler: jsonHandler(200, `<html>maintenance</html>`), wantSpeech: "Failed.", wantHits: 1, budget: time.Second},
		{name: "body of exactly max_response_bytes", deadline: "2s", timeout: "1s", method: "GET", maxBytes: 1024,
			handler: jsonHandler(200, paddedJSON(1024)), wantSpeech: "Got ok.", wantHits: 1, budget: time.Second},
		{name: "body one byte over max_response_bytes", deadline: "2s", timeout: "1s", method: "GET", maxBytes: 1024,
			handler: jsonHandler(200, paddedJSON(1025)), wantSpeech: "Failed.", wantHits: 1, budget: time.Second},
		{name: "50 MiB streamed body over the default 1 MiB", deadline: "3s", timeout: "2s", method: "GET",
			stream: &streamer{size: 50 << 20}, wantSpeech: "Failed.", wantHits: 1, budget: time.Second},
		{name: "50 MiB declared body over the default 1 MiB", deadline: "3s", timeout: "2s", method: "GET",
			stream: &streamer{size: 50 << 20, declareLength: true}, wantSpeech: "Failed.", wantHits: 1, budget: time.Second},
		{name: "connection refused", deadline: "2s", timeout: "1s", retries: 2, method: "GET",
			baseURL: func(t *testing.T) string {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				addr := ln.Addr().String()
				ln.Close()
				return "http://" + addr
			}, wantSpeech: "Failed.", wantHits: -1, budget: time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.handler
			if tc.stream != nil {
				tc.stream.done = make(chan struct{})
				h = tc.stream.handler
			}
			up := MustUpstream(t, h)
			if tc.baseURL != nil {
				t.Setenv(upstreamEnv, tc.baseURL(t))
			}
			gw := MustPipeline(t, faultConfig(tc.deadline, tc.timeout, tc.retries, tc.method, tc.maxBytes, ""), nil)
			start := time.Now()
			resp := mustServe(t, gw, buildIntent(faultAppID, "Get", nil))
			elapsed := time.Since(start)
			if got := resp.Speech(); got != tc.wantSpeech {
				t.Errorf("speech %q, want %q", got, tc.wantSpeech)
			}
			if tc.wantHits >= 0 && up.Hits() != tc.wantHits {
				t.Errorf("upstream hit %d times, want %d", up.Hits(), tc.wantHits)
			}
			if elapsed > tc.budget+faultMargin {
				t.Errorf("answered after %v, budget %v", elapsed, tc.budget)
			}
			if elapsed < tc.min {
				t.Errorf("answered after %v, before the %v timeout", elapsed, tc.min)
			}
			if s := tc.stream; s != nil {
				select {
				case <-s.done:
				case <-time.After(5 * time.Second):
					t.Fatal("the upstream is still writing: the gateway did not stop reading")
				}
				if w := s.written.Load(); w >= s.size {
					t.Errorf("the upstream wrote all %d bytes: the gateway read them", w)
				}
			}
		})
	}
}

// TestUpstreamRedirects checks that a redirect to the same host is
// followed and one to another host (here another port) is not: the other
// host gets no request and the credential stays home.
func TestUpstreamRedirects(t *testing.T) {
	var otherHits atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		otherHits.Add(1)
		jsonHandler(200, `{"name":"stolen"}`)(w, r)
	}))
	defer other.Close()
	tests := []struct {
		name       string
		location   func(self string) string
		wantSpeech string
		wantHits   int
	}{
		{name: "same host is followed", location: func(self string) string { return "/moved" }, wantSpeech: "Got moved.", wantHits: 2},
		{name: "absolute same host is followed", location: func(self string) string { return self + "/moved" }, wantSpeech: "Got moved.", wantHits: 2},
		{name: "another host is not followed", location: func(string) string { return other.URL + "/steal" }, wantSpeech: "Failed.", wantHits: 1},
		{name: "another scheme is not followed", location: func(self string) string { return "https" + strings.TrimPrefix(self, "http") + "/moved" }, wantSpeech: "Failed.", wantHits: 1},
		// upstream.sameHost stops once five requests were made (the first
		// and four redirects), counting as net/http's default policy does.
		{name: "a redirect loop stops", location: func(string) string { return "/thing" }, wantSpeech: "Failed.", wantHits: 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			otherHits.Store(0)
			var self string
			up := MustUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/moved" {
					jsonHandler(200, `{"name":"moved"}`)(w, r)
					return
				}
				http.Redirect(w, r, tc.location(self), http.StatusFound)
			})
			self = up.URL
			store := inmem.New(map[string]map[string]string{"services/api": {"api_key": "s3cret"}})
			gw := MustPipeline(t, faultConfig("2s", "1s", 0, "GET", 0, "{ type: secret, field: api_key }"), store)
			resp := mustServe(t, gw, buildIntent(faultAppID, "Get", nil))
			if got := resp.Speech(); got != tc.wantSpeech {
				t.Errorf("speech %q, want %q", got, tc.wantSpeech)
			}
			if up.Hits() != tc.wantHits {
				t.Errorf("upstream hit %d times, want %d", up.Hits(), tc.wantHits)
			}
			if n := otherHits.Load(); n != 0 {
				t.Errorf("the other host got %d requests", n)
			}
			for _, r := range up.Requests() {
				if got := r.Header.Get("Authorization"); got != "Bearer s3cret" {
					t.Errorf("%s: Authorization %q", r.EscapedPath, got)
				}
			}
		})
	}
}

// TestUpstreamRejectedCredential runs turns in order against one gateway:
// a 401 drops the cached secret, re-reads the store and retries once with
// a rotated secret; a 401 with no rotation is spoken.
func TestUpstreamRejectedCredential(t *testing.T) {
	var accept atomic.Value
	accept.Store("Bearer old")
	up := MustUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != accept.Load().(string) {
			jsonHandler(401, `{"error":"bad key"}`)(w, r)
			return
		}
		jsonHandler(200, `{"name":"ok"}`)(w, r)
	})
	store := inmem.New(map[string]map[string]string{"services/api": {"api_key": "old"}})
	gw := MustPipeline(t, faultConfig("2s", "1s", 0, "GET", 0, "{ type: secret, field: api_key }"), store)
	steps := []struct {
		name string
		// rotate, when set, is written to the store; accept is what the
		// upstream takes from now on.
		rotate, accept string
		wantSpeech     string
		wantAuth       []string
		wantReads      int
		// after waits this long first (a path is re-read at most once per
		// auth.RereadInterval).
		after time.Duration
	}{
		{name: "first call reads the store", accept: "Bearer old", wantSpeech: "Got ok.", wantAuth: []string{"Bearer old"}, wantReads: 1},
		{name: "second call uses the cache", accept: "Bearer old", wantSpeech: "Got ok.", wantAuth: []string{"Bearer old"}, wantReads: 0},
		{name: "rotation: 401, re-read, retry", rotate: "new", accept: "Bearer new", wantSpeech: "Got ok.", wantAuth: []string{"Bearer old", "Bearer new"}, wantReads: 1},
		{name: "rotated secret is cached", accept: "Bearer new", wantSpeech: "Got ok.", wantAuth: []string{"Bearer new"}, wantReads: 0},
		{name: "401 without rotation is spoken", accept: "Bearer other", wantSpeech: "Unauthorized.", wantAuth: []string{"Bearer new"}, wantReads: 1, after: auth.RereadInterval},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.rotate != "" {
				if _, err := store.Write(context.Background(), "services/api", gateway.SecretData{"api_key": gateway.Secret(st.rotate)}, -1); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(st.after)
			accept.Store(st.accept)
			before, reads := up.Hits(), store.Reads()
			resp := mustServe(t, gw, buildIntent(faultAppID, "Get", nil))
			if got := resp.Speech(); got != st.wantSpeech {
				t.Errorf("speech %q, want %q", got, st.wantSpeech)
			}
			var auths []string
			for _, r := range up.Requests()[before:] {
				auths = append(auths, r.Header.Get("Authorization"))
			}
			if strings.Join(auths, ",") != strings.Join(st.wantAuth, ",") {
				t.Errorf("upstream saw Authorization %q, want %q", auths, st.wantAuth)
			}
			if n := store.Reads() - reads; n != st.wantReads {
				t.Errorf("store read %d times, want %d", n, st.wantReads)
			}
		})
	}
}
