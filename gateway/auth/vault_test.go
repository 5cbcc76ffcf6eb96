package auth_test

// The cache's behaviour while Vault fails (SPEC 4 and 10), against the real
// Vault dev server behind faultproxy: a hung Vault accepts connections and
// never answers, which a stopped one (connection refused) never shows.

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/auth"
	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/gateway/faultproxy"
	"github.com/voicegw/voicegw/gateway/vault"
	"github.com/voicegw/voicegw/gateway/vault/vaulttest"
)

// lockedBuffer is a log sink safe for concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// readCount counts the Vault client's reads of secrets.
type readCount struct{ n atomic.Int64 }

func (c *readCount) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/secret/data/") {
		c.n.Add(1)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// hungVault is a real Vault behind a fault proxy with a provider on it.
type hungVault struct {
	srv   *vaulttest.Server
	proxy *faultproxy.Proxy
	p     *auth.Provider
	reads *readCount
	log   *lockedBuffer
}

func newHungVault(t *testing.T, ttl, timeout time.Duration) *hungVault {
	t.Helper()
	srv := vaulttest.Start(t)
	proxy, err := faultproxy.Start(strings.TrimPrefix(srv.Addr, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	h := &hungVault{srv: srv, proxy: proxy, reads: &readCount{}, log: &lockedBuffer{}}
	log := slog.New(slog.NewJSONHandler(h.log, nil))
	store, err := vault.New(&config.Vault{Address: proxy.URL("http"), KVMount: "secret", Prefix: "voicegw",
		Auth: config.VaultAuth{Method: "token"}, Timeout: config.Duration{D: timeout}},
		vault.Options{Token: srv.Token, Logger: log, HTTPClient: &http.Client{Transport: h.reads}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	h.p = auth.New(store, ttl).WithTimeout(timeout).WithLogger(log)
	t.Cleanup(h.p.Close)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", h.log.String())
		}
	})
	return h
}

// get is one turn's Get with a deadline.
func (h *hungVault) get(s *config.Service, deadline time.Duration) (string, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	cred, err := h.p.Get(ctx, s, &gateway.Turn{})
	took := time.Since(start)
	if err != nil {
		return "", took, err
	}
	return cred.Token.Reveal(), took, nil
}

// TestStaleWindow: while Vault hangs, a cached secret serves up to
// StaleFactor (10) x cache_ttl after it was read, each time at once once a
// read has failed; past that window the turn hears the vault speech
// within its deadline. Checks at 3, 5, 7 and 9 x ttl fail if the window is
// cut to 2 x. When Vault answers again, the background read picks up a
// value rotated meanwhile with no turn waiting for it.
func TestStaleWindow(t *testing.T) {
	const (
		ttl      = 200 * time.Millisecond
		timeout  = 300 * time.Millisecond
		deadline = time.Second
	)
	if auth.StaleFactor != 10 {
		t.Fatalf("StaleFactor = %d; SPEC 4 says 10", auth.StaleFactor)
	}
	h := newHungVault(t, ttl, timeout)
	h.srv.Put(t, "voicegw/services/keyed", map[string]any{"api_key": "k1"})
	s := svc("keyed", config.AuthSecret, "api_key")
	if tok, _, err := h.get(s, deadline); err != nil || tok != "k1" {
		t.Fatalf("warm-up: %q %v", tok, err)
	}
	warm := time.Now() // the entry was read before this
	h.proxy.Blackhole()

	at := func(k float64) time.Duration { return time.Until(warm.Add(time.Duration(k * float64(ttl)))) }
	time.Sleep(at(1.5))
	// The first turn past ttl finds no failure yet: it waits for the read
	// at most vault.timeout, then is served the stale entry.
	tok, took, err := h.get(s, deadline)
	if err != nil || tok != "k1" {
		t.Fatalf("first turn of the hang: %q %v", tok, err)
	}
	if took > timeout+150*time.Millisecond {
		t.Errorf("first turn of the hang took %s, vault.timeout is %s", took, timeout)
	}
	for _, k := range []float64{3, 5, 7, 9} {
		time.Sleep(at(k))
		tok, took, err := h.get(s, deadline)
		if err != nil || tok != "k1" {
			t.Fatalf("at %.0f x ttl: %q %v, want the stale secret", k, tok, err)
		}
		if took > 50*time.Millisecond {
			t.Errorf("stale serve at %.0f x ttl took %s, want at once", k, took)
		}
	}
	time.Sleep(at(10) + 50*time.Millisecond)
	_, took, err = h.get(s, deadline)
	if !errors.Is(err, auth.ErrVault) {
		t.Fatalf("past 10 x ttl: %v, want ErrVault", err)
	}
	if took > deadline+50*time.Millisecond {
		t.Errorf("vault error took %s, deadline %s", took, deadline)
	}
	if n := strings.Count(h.log.String(), "serving a stale secret"); n != 1 {
		t.Errorf("%d log lines for stale serves of one path, want 1", n)
	}

	// Vault answers again with a value rotated during the hang.
	h.proxy.Pass()
	if tok, _, err := h.get(s, deadline); err != nil || tok != "k1" {
		t.Fatalf("after the hang: %q %v", tok, err)
	}
	h.srv.Put(t, "voicegw/services/keyed", map[string]any{"api_key": "k2"})
	time.Sleep(ttl + 50*time.Millisecond)
	if tok, _, err := h.get(s, deadline); err != nil || tok != "k2" {
		t.Fatalf("after the rotation: %q %v, want k2", tok, err)
	}
}

// TestHungVaultSeveralServices: an intent with three secret services, all
// cached and past ttl, costs one vault.timeout at most when Vault hangs,
// not three; the background reads then pick up the entries when Vault is
// back. An uncached path answers ErrVault within the turn's deadline.
func TestHungVaultSeveralServices(t *testing.T) {
	const (
		ttl      = 100 * time.Millisecond
		timeout  = 500 * time.Millisecond
		deadline = 3 * time.Second
	)
	h := newHungVault(t, ttl, timeout)
	names := []string{"a", "b", "c"}
	for _, n := range names {
		h.srv.Put(t, "voicegw/services/"+n, map[string]any{"api_key": "k-" + n})
	}
	turn := func() (time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		start := time.Now()
		for _, n := range names {
			cred, err := h.p.Get(ctx, svc(n, config.AuthSecret, "api_key"), &gateway.Turn{})
			if err != nil {
				return 0, err
			}
			if cred.Token.Reveal() != "k-"+n {
				return 0, errors.New("wrong secret for " + n)
			}
		}
		return time.Since(start), nil
	}
	if _, err := turn(); err != nil {
		t.Fatal(err)
	}
	h.proxy.Blackhole()
	time.Sleep(ttl + 20*time.Millisecond)
	took, err := turn()
	if err != nil {
		t.Fatalf("three cached services with Vault hung: %v", err)
	}
	t.Logf("three cached services, Vault hung: first turn %s", took)
	if took > timeout+200*time.Millisecond {
		t.Errorf("three cached services took %s with Vault hung, want at most about one vault.timeout (%s)", took, timeout)
	}
	took, err = turn()
	if err != nil || took > 50*time.Millisecond {
		t.Errorf("next turn: %s %v, want at once", took, err)
	}

	// An uncached path: the vault error within a short deadline.
	_, took, err = h.get(svc("d", config.AuthSecret, "api_key"), 300*time.Millisecond)
	if !errors.Is(err, auth.ErrVault) || took > 350*time.Millisecond {
		t.Errorf("uncached path with Vault hung: %v after %s, want ErrVault within the 300ms deadline", err, took)
	}
}
