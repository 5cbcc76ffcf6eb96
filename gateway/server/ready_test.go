package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/voicegw/voicegw/gateway/server"
)

// getReadyz returns /readyz's status and JSON body.
func getReadyz(t *testing.T, url string) (int, map[string]string) {
	t.Helper()
	resp, err := http.Get(url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("/readyz: not a JSON object of strings: %q", b)
	}
	return resp.StatusCode, m
}

// TestReadyz pins the bodies of SPEC 10's readiness states: 503 only
// without a configuration, while draining, or while the runtime names a
// reason; 200 during a later Vault outage, saying so.
func TestReadyz(t *testing.T) {
	tests := []struct {
		name  string
		rt    func(t *testing.T) *server.Runtime
		want  int
		wantB map[string]string
	}{
		{name: "no configuration loaded", rt: func(*testing.T) *server.Runtime { return nil },
			want: 503, wantB: map[string]string{"status": "unavailable", "reason": "configuration not loaded"}},
		{name: "no vault", rt: func(t *testing.T) *server.Runtime { return mustRuntime(t, nil) },
			want: 200, wantB: map[string]string{"status": "ready", "vault": "none"}},
		{name: "vault ok", rt: func(t *testing.T) *server.Runtime {
			return mustRuntime(t, func() server.Readiness { return server.Readiness{Vault: "ok"} })
		}, want: 200, wantB: map[string]string{"status": "ready", "vault": "ok"}},
		{name: "vault unreachable after it was reached", rt: func(t *testing.T) *server.Runtime {
			return mustRuntime(t, func() server.Readiness { return server.Readiness{Vault: "unreachable"} })
		}, want: 200, wantB: map[string]string{"status": "ready", "vault": "unreachable"}},
		{name: "vault never reached", rt: func(t *testing.T) *server.Runtime {
			return mustRuntime(t, func() server.Readiness {
				return server.Readiness{Vault: "token invalid", Reason: "vault token invalid"}
			})
		}, want: 503, wantB: map[string]string{"status": "unavailable", "reason": "vault token invalid", "vault": "token invalid"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := httptest.NewServer(server.New(tc.rt(t), nil, quiet).Handler())
			defer ts.Close()
			code, body := getReadyz(t, ts.URL)
			if code != tc.want || !reflect.DeepEqual(body, tc.wantB) {
				t.Errorf("/readyz = %d %v, want %d %v", code, body, tc.want, tc.wantB)
			}
		})
	}
}

// TestReadyzDraining: once graceful shutdown starts, /readyz answers 503
// (here through a second listener on the same handler, since Serve's own
// listener closes at once).
func TestReadyzDraining(t *testing.T) {
	s := server.New(mustRuntime(t, func() server.Readiness { return server.Readiness{Vault: "ok"} }), nil, quiet)
	probe := httptest.NewServer(s.Handler())
	defer probe.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	if code, body := getReadyz(t, probe.URL); code != 200 {
		t.Fatalf("before shutdown: %d %v", code, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	code, body := getReadyz(t, probe.URL)
	if want := map[string]string{"status": "unavailable", "reason": "draining"}; code != 503 || !reflect.DeepEqual(body, want) {
		t.Errorf("while draining: %d %v, want 503 %v", code, body, want)
	}
}
