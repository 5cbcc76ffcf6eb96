package upstream_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/gateway/upstream"
)

// secretQuery is a credential in the query; no error may name it.
const secretQuery = "appid=TOPSECRET"

type hit struct {
	method string
	body   string
}

func TestCall(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the other host got %s %s", r.Method, r.URL)
	}))
	defer other.Close()
	tests := []struct {
		name    string
		method  string
		body    string
		retries int
		max     int64
		timeout time.Duration
		// answer serves the n-th request (0-based).
		answer func(n int, w http.ResponseWriter, r *http.Request)
		// url, when set, replaces the test server's URL.
		url func() string

		wantStatus int
		wantBody   string
		wantErr    error // errors.Is; nil with wantFail means any error
		wantFail   bool
		wantHits   int
	}{
		{name: "ok", method: "GET", answer: func(_ int, w http.ResponseWriter, _ *http.Request) { io.WriteString(w, `{"a":1}`) },
			wantStatus: 200, wantBody: `{"a":1}`, wantHits: 1},
		{name: "PUT retried on 503 sends the whole body again", method: "PUT", body: `{"x":"yz"}`, retries: 1,
			answer: func(n int, w http.ResponseWriter, _ *http.Request) {
				if n == 0 {
					w.WriteHeader(503)
					return
				}
				io.WriteString(w, "ok")
			}, wantStatus: 200, wantBody: "ok", wantHits: 2},
		{name: "POST is not retried on 503", method: "POST", body: `{}`, retries: 3,
			answer: func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) }, wantStatus: 503, wantHits: 1},
		{name: "GET 504 retried until retries are spent", method: "GET", retries: 2,
			answer: func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(504) }, wantStatus: 504, wantHits: 3},
		{name: "404 is an answer, not an error", method: "GET", retries: 2,
			answer: func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(404) }, wantStatus: 404, wantHits: 1},
		{name: "timeout", method: "GET", timeout: 100 * time.Millisecond,
			answer: func(_ int, w http.ResponseWriter, r *http.Request) {
				select {
				case <-time.After(3 * time.Second):
				case <-r.Context().Done():
				}
			}, wantErr: upstream.ErrTimeout, wantFail: true, wantHits: 1},
		{name: "timeout while reading the body", method: "GET", timeout: 150 * time.Millisecond,
			answer: func(_ int, w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, `{"a":`)
				w.(http.Flusher).Flush()
				select {
				case <-time.After(3 * time.Second):
				case <-r.Context().Done():
				}
			}, wantErr: upstream.ErrTimeout, wantFail: true, wantHits: 1},
		{name: "declared length over the cap", method: "GET", max: 100,
			answer: func(_ int, w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Length", "101")
				io.WriteString(w, strings.Repeat("x", 101))
			}, wantErr: upstream.ErrTooLarge, wantFail: true, wantHits: 1},
		{name: "streamed body over the cap", method: "GET", max: 100,
			answer: func(_ int, w http.ResponseWriter, _ *http.Request) {
				for i := 0; i < 10; i++ {
					io.WriteString(w, strings.Repeat("x", 20))
					w.(http.Flusher).Flush()
				}
			}, wantErr: upstream.ErrTooLarge, wantFail: true, wantHits: 1},
		{name: "body at the cap", method: "GET", max: 100,
			answer:     func(_ int, w http.ResponseWriter, _ *http.Request) { io.WriteString(w, strings.Repeat("x", 100)) },
			wantStatus: 200, wantBody: strings.Repeat("x", 100), wantHits: 1},
		{name: "redirect to another host is returned, not followed", method: "GET",
			answer: func(_ int, w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, other.URL+"/x?"+secretQuery, http.StatusTemporaryRedirect)
			}, wantStatus: 307, wantHits: 1},
		{name: "connection refused", method: "GET", retries: 1,
			url: func() string {
				ln, _ := net.Listen("tcp", "127.0.0.1:0")
				addr := ln.Addr().String()
				ln.Close()
				return "http://" + addr
			}, wantFail: true},
	}
	client := upstream.New(upstream.Options{Backoff: 10 * time.Millisecond})
	defer client.CloseIdle()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var hits []hit
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				mu.Lock()
				n := len(hits)
				hits = append(hits, hit{r.Method, string(b)})
				mu.Unlock()
				tc.answer(n, w, r)
			}))
			defer srv.Close()
			base := srv.URL
			if tc.url != nil {
				base = tc.url()
			}
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 2 * time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			var body io.Reader = http.NoBody
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req, err := http.NewRequestWithContext(ctx, tc.method, base+"/p?"+secretQuery, body)
			if err != nil {
				t.Fatal(err)
			}
			svc := &config.Service{Name: "svc", Retries: tc.retries, MaxResponseBytes: tc.max}
			resp, err := client.Call(svc, req)
			mu.Lock()
			defer mu.Unlock()
			if tc.url == nil && len(hits) != tc.wantHits {
				t.Errorf("server hit %d times, want %d", len(hits), tc.wantHits)
			}
			for i, h := range hits {
				if h.method != tc.method || h.body != tc.body {
					t.Errorf("request %d: %s %q, want %s %q", i+1, h.method, h.body, tc.method, tc.body)
				}
			}
			if tc.wantFail {
				if err == nil {
					t.Fatalf("Call succeeded with status %d, want an error", resp.Status)
				}
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Errorf("error %v, want %v", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "TOPSECRET") || strings.Contains(err.Error(), base) {
					t.Errorf("error %q names the URL or its query", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Call: %v", err)
			}
			if resp.Status != tc.wantStatus {
				t.Errorf("status %d, want %d", resp.Status, tc.wantStatus)
			}
			if tc.wantBody != "" && string(resp.Body) != tc.wantBody {
				t.Errorf("body %q, want %q", resp.Body, tc.wantBody)
			}
		})
	}
}

// TestCallConcurrent runs many calls at once through the shared
// transport; with -race it checks the client is safe for concurrent use.
func TestCallConcurrent(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Query().Get("n"))
	}))
	defer srv.Close()
	client := upstream.New(upstream.DefaultOptions)
	defer client.CloseIdle()
	svc := &config.Service{Name: "svc", Retries: 1}
	var wg sync.WaitGroup
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			req, _ := http.NewRequest("GET", srv.URL+"/?n="+strconv.Itoa(i), http.NoBody)
			resp, err := client.Call(svc, req)
			if err != nil {
				t.Error(err)
				return
			}
			if string(resp.Body) != strconv.Itoa(i) {
				t.Errorf("call %d got %q", i, resp.Body)
			}
		}(i)
	}
	wg.Wait()
}
