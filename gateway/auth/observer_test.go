package auth

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/gateway/inmem"
)

// counts is an Observer that counts each result.
type counts struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counts) add(k string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[k]++
}
func (c *counts) SecretCache(r string)  { c.add("cache " + r) }
func (c *counts) VaultRead(r string)    { c.add("read " + r) }
func (c *counts) TokenRefresh(r string) { c.add("refresh " + r) }
func (c *counts) get(k string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[k]
}

// downStore fails every read while down is set (the fault behaviour
// itself is tested against the real Vault behind faultproxy).
type downStore struct {
	*inmem.Store
	down atomic.Bool
}

func (s *downStore) Read(ctx context.Context, path string) (*gateway.Entry, error) {
	if s.down.Load() {
		return nil, errors.New("connection refused")
	}
	return s.Store.Read(ctx, path)
}

// TestObserverCounts: the metrics see hits, misses, stale serves and the
// reads that reached the store, by result.
func TestObserverCounts(t *testing.T) {
	store := &downStore{Store: inmem.New(map[string]map[string]string{
		gateway.ServicePath("weather"): {"api_key": "k1"},
	})}
	c := &counts{}
	p := New(store, time.Minute).WithObserver(c)
	defer p.Close()
	clock := time.Now()
	p.now = func() time.Time { return clock }
	secret := func(name string) *config.Service {
		return &config.Service{Name: name, Auth: config.ServiceAuth{Type: config.AuthSecret, Field: "api_key"}}
	}
	s := secret("weather")
	turn := &gateway.Turn{UserID: "amzn1.ask.account.OBSERVER"}
	ctx := context.Background()
	get := func() {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if _, err := p.Get(cctx, s, turn); err != nil {
			t.Fatalf("Get: %v", err)
		}
	}
	get() // miss, read ok
	get() // hit
	clock = clock.Add(2 * time.Minute)
	store.down.Store(true)
	get() // miss, read error, stale
	get() // stale at once
	for k, want := range map[string]int{"cache miss": 2, "cache hit": 1, "cache stale": 2, "read ok": 1, "read error": 1} {
		if got := c.get(k); got != want {
			t.Errorf("%s = %d, want %d (all: %v)", k, got, want, c.n)
		}
	}
	store.down.Store(false)
	if _, err := p.Get(ctx, secret("missing"), turn); err == nil {
		t.Fatal("a missing secret was found")
	}
	if got := c.get("read not_found"); got != 1 {
		t.Errorf("read not_found = %d, want 1", got)
	}
}

// TestObserverCountsRefreshes: each refresh is counted by its result.
func TestObserverCountsRefreshes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"provider answers", 200, `{"access_token":"new","token_type":"Bearer","expires_in":3600}`, "refresh ok"},
		{"provider refuses the grant", 400, `{"error":"invalid_grant"}`, "refresh refused"},
		{"provider fails", 503, `maintenance`, "refresh failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			}))
			defer tokens.Close()
			const u = "amzn1.ask.account.REFRESH"
			store := inmem.New(map[string]map[string]string{"users/" + u + "/gh": {
				"access_token": "old", "refresh_token": "r",
				"expires_at": time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)}})
			c := &counts{}
			p := New(store, time.Minute).WithObserver(c)
			defer p.Close()
			svc := &config.Service{Name: "gh", Auth: config.ServiceAuth{Type: config.AuthLinked},
				OAuth2: &config.OAuth2{TokenURL: tokens.URL, ClientID: "c"}}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, _ = p.Get(ctx, svc, &gateway.Turn{UserID: u})
			if got := c.get(tc.want); got != 1 {
				t.Fatalf("%s counted %d times (all: %v)", tc.want, got, c.n)
			}
		})
	}
}

// TestRefreshOutlivesTheTurnThatStartedIt: a turn whose deadline ends
// while the provider is still answering does not cut the shared refresh
// off: the provider's new token (a rotated refresh token too) is stored
// for the turns after it, and the provider is asked once.
func TestRefreshOutlivesTheTurnThatStartedIt(t *testing.T) {
	var calls atomic.Int32
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		time.Sleep(300 * time.Millisecond)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"fresh","refresh_token":"r2","token_type":"Bearer","expires_in":3600}`)
	}))
	defer tokens.Close()
	const u = "amzn1.ask.account.SLOWREFRESH"
	store := inmem.New(map[string]map[string]string{"users/" + u + "/gh": {
		"access_token": "old", "refresh_token": "r1",
		"expires_at": time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)}})
	p := New(store, time.Minute)
	defer p.Close()
	svc := &config.Service{Name: "gh", Auth: config.ServiceAuth{Type: config.AuthLinked},
		OAuth2: &config.OAuth2{TokenURL: tokens.URL, ClientID: "c"}}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := p.Get(ctx, svc, &gateway.Turn{UserID: u}); err == nil {
		t.Fatal("the short turn got a token before the provider answered")
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		e, _ := store.Read(context.Background(), "users/"+u+"/gh")
		if e.Data["access_token"].Reveal() == "fresh" && e.Data["refresh_token"].Reveal() == "r2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the provider's answer was lost: the store holds %v", e.Data)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cred, err := p.Get(context.Background(), svc, &gateway.Turn{UserID: u})
	if err != nil || cred.Token.Reveal() != "fresh" {
		t.Fatalf("next turn: %v, %v", cred, err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("the provider was asked %d times, want 1", n)
	}
}
