package faultproxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"
)

func start(t *testing.T) (*Proxy, *http.Client) {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello")
	}))
	t.Cleanup(up.Close)
	p, err := Start(strings.TrimPrefix(up.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p, &http.Client{Transport: &http.Transport{}}
}

func get(ctx context.Context, c *http.Client, url string) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestModes(t *testing.T) {
	p, c := start(t)
	url := p.URL("http")
	ctx := context.Background()

	if body, err := get(ctx, c, url); err != nil || body != "hello" {
		t.Fatalf("pass: %q, %v", body, err)
	}

	// Blackhole: the pooled keep-alive connection hangs too.
	p.Blackhole()
	bctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	start := time.Now()
	_, err := get(bctx, c, url)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("blackhole: want a deadline error, got %v", err)
	}
	if time.Since(start) < 250*time.Millisecond {
		t.Fatalf("blackhole answered after %v, want a hang", time.Since(start))
	}

	// Delay: answers, but late.
	p.Delay(200 * time.Millisecond)
	start = time.Now()
	if body, err := get(ctx, c, url); err != nil || body != "hello" {
		t.Fatalf("delay: %q, %v", body, err)
	}
	if el := time.Since(start); el < 200*time.Millisecond {
		t.Fatalf("delay: answered after %v, want at least 200ms", el)
	}

	// Reset: the connection is refused with a RST at once.
	p.Reset()
	start = time.Now()
	_, err = get(ctx, c, url)
	if err == nil {
		t.Fatal("reset: want an error")
	}
	if !errors.Is(err, syscall.ECONNRESET) && !strings.Contains(err.Error(), "EOF") {
		t.Logf("reset error: %v", err)
	}
	if time.Since(start) > time.Second {
		t.Fatalf("reset took %v, want at once", time.Since(start))
	}

	p.Pass()
	if body, err := get(ctx, c, url); err != nil || body != "hello" {
		t.Fatalf("pass again: %q, %v", body, err)
	}
	if p.Accepted() < 2 {
		t.Fatalf("accepted %d connections, want a new one after the reset", p.Accepted())
	}
}
