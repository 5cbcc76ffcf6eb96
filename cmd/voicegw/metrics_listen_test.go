package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeMetricsListen: with server.metrics_listen, /metrics answers
// only on its own address, not on the public one.
func TestServeMetricsListen(t *testing.T) {
	addr, metricsAddr := freePort(t), freePort(t)
	cfgFile := filepath.Join(t.TempDir(), "config.yaml")
	cfg := strings.Replace(fmt.Sprintf(serveConfig, addr, "http://127.0.0.1:9", "Hello."),
		"deadline: 3s }", fmt.Sprintf("deadline: 3s, metrics_listen: %q }", metricsAddr), 1)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startServe(t, cfgFile, addr)
	if status, speech := p.say(t, "Hello"); status != http.StatusOK || speech != "Hello." {
		t.Fatalf("turn = %d %q", status, speech)
	}
	get := func(u string) (int, string) {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, _ := get("http://" + addr + "/metrics"); status != http.StatusNotFound {
		t.Fatalf("/metrics on the public address = %d, want 404", status)
	}
	status, body := get("http://" + metricsAddr + "/metrics")
	if status != http.StatusOK || !strings.Contains(body, `voicegw_alexa_requests_total{reason="",skill="s",status="200"} 1`) {
		t.Fatalf("/metrics on metrics_listen = %d:\n%s", status, body)
	}
	if status, _ := get("http://" + metricsAddr + "/alexa"); status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
		t.Fatalf("the metrics listener serves other paths (%d)", status)
	}
}

// TestServeDebugListen: server.debug_listen serves pprof there and only
// there.
func TestServeDebugListen(t *testing.T) {
	addr, debugAddr := freePort(t), freePort(t)
	cfgFile := filepath.Join(t.TempDir(), "config.yaml")
	cfg := strings.Replace(fmt.Sprintf(serveConfig, addr, "http://127.0.0.1:9", "Hello."),
		"deadline: 3s }", fmt.Sprintf("deadline: 3s, debug_listen: %q }", debugAddr), 1)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	startServe(t, cfgFile, addr)
	resp, err := http.Get("http://" + debugAddr + "/debug/pprof/heap?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "heap profile") {
		t.Fatalf("heap profile = %d: %.200s", resp.StatusCode, b)
	}
	resp, err = http.Get("http://" + addr + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("pprof on the public address = %d, want 404", resp.StatusCode)
	}
}
