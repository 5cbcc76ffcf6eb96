package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestServeWatchReloadsUnderLoad: with --watch, saving the configuration
// reloads it while turns keep coming, and no turn is lost or answered
// wrongly; a broken save is logged and the running configuration kept.
func TestServeWatchReloadsUnderLoad(t *testing.T) {
	addr := freePort(t)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "config.yaml")
	version := func(n int) string {
		return fmt.Sprintf(serveConfig, addr, "http://127.0.0.1:9", fmt.Sprintf("Version %d.", n))
	}
	// Saved as editors do: a new file renamed over the old one.
	save := func(content string) {
		tmp := filepath.Join(dir, ".config.yaml.tmp")
		if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, cfgFile); err != nil {
			t.Fatal(err)
		}
	}
	save(version(0))
	p := startServe(t, cfgFile, addr, "--watch")
	p.waitLog(t, "watching the configuration")

	var (
		latest   atomic.Int64
		turns    atomic.Int64
		mu       sync.Mutex
		failures []string
	)
	valid := regexp.MustCompile(`^Version (\d+)\.$`)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				status, speech := p.say(t, "Hello")
				turns.Add(1)
				m := valid.FindStringSubmatch(speech)
				if status != http.StatusOK || m == nil {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("%d %q", status, speech))
					mu.Unlock()
					continue
				}
				var n int64
				fmt.Sscan(m[1], &n)
				for {
					cur := latest.Load()
					if n <= cur || latest.CompareAndSwap(cur, n) {
						break
					}
				}
			}
		}()
	}
	waitFor := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for latest.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("version %d was never served after the save; logs:\n%s", n, p.logs.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for n := 1; n <= 5; n++ {
		save(version(n))
		waitFor(int64(n))
	}
	// A broken save: logged, and version 5 keeps answering.
	save(strings.Replace(version(6), "samples:", "sample:", 1))
	p.waitLog(t, "reload failed, keeping the running configuration")
	// Written in place this time.
	if err := os.WriteFile(cfgFile, []byte(version(7)), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(7)
	close(stop)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d turns failed during reloads, e.g. %v", len(failures), turns.Load(), failures[:min(5, len(failures))])
	}
	if latest.Load() != 7 {
		t.Fatalf("the broken version was served: latest %d", latest.Load())
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`voicegw_config_reloads_total{result="failed"}`, `voicegw_config_reloads_total{result="ok"}`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	t.Logf("%d turns during 7 saves, none lost", turns.Load())
}
