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
