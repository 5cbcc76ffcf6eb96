package main

// SPEC 10 end to end, with real parts: the real Vault dev server behind
// faultproxy (hung, slow, resetting), the fake OAuth provider behind a
// front that answers 503 and behind faultproxy (timeout), two gateway
// replicas on one Vault, and the pipeline wired as serve wires it.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/voicegw/voicegw/gateway/faultproxy"
	"github.com/voicegw/voicegw/gateway/server"
)

// sayDefault is the built-in default error speech (engine.builtinErrors).
const sayDefault = "Sorry, something went wrong. Please try again later."

func mustFaultProxy(t *testing.T, target string) *faultproxy.Proxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p, err := faultproxy.Start(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// percentile returns the q-quantile (0..1) of ds.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q * float64(len(s)-1))
	return s[i]
}

// timedTurn is one turn of a load loop.
type timedTurn struct {
	start  time.Time
	took   time.Duration
	intent string
	ok     bool
	speech string
}

// TestVaultHungMidLoad: Vault starts to accept connections and never
// answer while turns run. Turns whose secrets are cached keep their
// latency (once the first read has failed, within 50 ms of the healthy
// p99); the turns that met the hang first wait at most vault.timeout;
// turns that need an uncached path hear the vault speech within
// server.deadline + 250 ms. When Vault answers again, every turn works.
// The measured latencies are logged for the README.
func TestVaultHungMidLoad(t *testing.T) {
	const (
		ttl      = 500 * time.Millisecond
		timeout  = 400 * time.Millisecond
		deadline = time.Second
		workers  = 4
	)
	h := newVaultHarness(t)
	proxy := mustFaultProxy(t, h.vault.Addr)
	weatherKey, mapsKey := secretValue("wk"), secretValue("mk")
	h.put("services/weather", map[string]any{"api_key": weatherKey})
	h.put("services/maps", map[string]any{"api_key": mapsKey})
	h.api.set("weather", weatherKey)
	h.api.set("maps", mapsKey)
	users := h.linkUsers("HANG", 4)
	g := h.gateway(cfgVars{"VAULT_ADDR": proxy.URL("http"), "VGW_CACHE_TTL": ttl.String(),
		"VGW_VAULT_TIMEOUT": timeout.String(), "VGW_DEADLINE": deadline.String()})
	for _, u := range users {
		g.mustSay(t, "Both", u, sayBoth)
	}

	var (
		mu      sync.Mutex
		turns   []timedTurn
		stop    atomic.Bool
		wg      sync.WaitGroup
		intents = []struct{ name, want string }{{"Weather", sayWeather}, {"Repos", sayRepos}, {"Both", sayBoth}}
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; !stop.Load(); i++ {
				in, user := intents[i%len(intents)], users[(i/len(intents))%len(users)]
				start := time.Now()
				a := g.turn(in.name, user)
				mu.Lock()
				turns = append(turns, timedTurn{start: start, took: a.took, intent: in.name,
					ok: a.status == http.StatusOK && a.speech == in.want, speech: a.speech})
				mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		}(w)
	}
	time.Sleep(1500 * time.Millisecond)
	hangStart := time.Now()
	proxy.Blackhole()

	// Uncached paths during the hang: a secret never read, a user never
	// seen. The first starts at once, so the first read fails vault.timeout
	// after the hang starts.
	var uncached []turnAnswer
	for time.Since(hangStart) < 1500*time.Millisecond {
		uncached = append(uncached, g.turn("Maps", users[0]), g.turn("Repos", "amzn1.ask.account.NEVERSEEN"))
		time.Sleep(100 * time.Millisecond)
	}
	// A gateway whose vault.timeout (2 s) exceeds its deadline: the turn
	// still hears the vault speech in time, not the timeout speech.
	slowVault := h.gateway(cfgVars{"VAULT_ADDR": proxy.URL("http"), "VGW_VAULT_TIMEOUT": "2s", "VGW_DEADLINE": deadline.String()})
	uncached = append(uncached, slowVault.turn("Maps", users[0]))
	hangEnd := time.Now()
	proxy.Pass()
	time.Sleep(1500 * time.Millisecond)
	stop.Store(true)
	wg.Wait()

	var healthy, first, stale, after []time.Duration
	failedAt := hangStart.Add(timeout + 50*time.Millisecond)
	for _, tt := range turns {
		switch {
		case tt.start.Add(tt.took).Before(hangStart):
			healthy = append(healthy, tt.took)
		case tt.start.Before(hangStart):
			// Running when the hang began: in no bucket.
		case tt.start.Before(failedAt):
			first = append(first, tt.took)
		case tt.start.Before(hangEnd):
			stale = append(stale, tt.took)
		default:
			after = append(after, tt.took)
		}
		if !tt.ok && tt.start.Before(hangEnd) {
			t.Errorf("%s at +%s (hang at +0) answered %q", tt.intent, tt.start.Sub(hangStart).Round(time.Millisecond), tt.speech)
		}
	}
	for _, tt := range turns {
		if !tt.ok && tt.start.After(hangEnd) {
			t.Errorf("%s a second after Vault came back answered %q", tt.intent, tt.speech)
		}
	}
	stat := func(ds []time.Duration) string {
		return fmt.Sprintf("n=%d p50=%s p99=%s max=%s", len(ds), percentile(ds, .5).Round(10*time.Microsecond),
			percentile(ds, .99).Round(10*time.Microsecond), percentile(ds, 1).Round(10*time.Microsecond))
	}
	t.Logf("turn latency, Vault healthy:                  %s", stat(healthy))
	t.Logf("turn latency, Vault hung, before first failure: %s", stat(first))
	t.Logf("turn latency, Vault hung, cached (stale):       %s", stat(stale))
	t.Logf("turn latency, Vault back:                       %s", stat(after))
	var unc []time.Duration
	for _, a := range uncached {
		unc = append(unc, a.took)
		if a.status != http.StatusOK || a.speech != sayVault {
			t.Errorf("uncached turn during the hang: HTTP %d %q, want the vault speech", a.status, a.speech)
		}
		if a.took > deadline+deadlineSlack {
			t.Errorf("uncached turn during the hang took %s, want within %s", a.took, deadline+deadlineSlack)
		}
	}
	t.Logf("turn latency, Vault hung, uncached (vault speech): %s", stat(unc))
	if len(healthy) < 20 || len(stale) < 20 {
		t.Fatalf("too few turns to compare: %d healthy, %d stale", len(healthy), len(stale))
	}
	if p, limit := percentile(stale, .99), percentile(healthy, .99)+50*time.Millisecond; p > limit {
		t.Errorf("p99 of cached turns during the hang %s, want within 50 ms of the healthy p99 (%s)", p, limit)
	}
	if m := percentile(first, 1); m > timeout+150*time.Millisecond {
		t.Errorf("the turns that met the hang first took up to %s, want at most vault.timeout (%s)", m, timeout)
	}
}

// TestVaultSlowOrResetting: a Vault that answers slowly still serves every
// turn (fresh values, within the deadline); one that resets every
// connection fails fast: cached secrets serve, uncached paths hear the
// vault speech at once; both recover.
func TestVaultSlowOrResetting(t *testing.T) {
	const ttl = 200 * time.Millisecond
	for _, tc := range []struct {
		name     string
		fault    func(p *faultproxy.Proxy)
		uncached string // speech of a turn that needs an uncached path
		maxTook  time.Duration
	}{
		{name: "slow", fault: func(p *faultproxy.Proxy) { p.Delay(150 * time.Millisecond) }, uncached: sayMaps, maxTook: 2 * time.Second},
		{name: "reset", fault: func(p *faultproxy.Proxy) { p.Reset() }, uncached: sayVault, maxTook: 300 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newVaultHarness(t)
			proxy := mustFaultProxy(t, h.vault.Addr)
			weatherKey, mapsKey := secretValue("wk"), secretValue("mk")
			h.put("services/weather", map[string]any{"api_key": weatherKey})
			h.put("services/maps", map[string]any{"api_key": mapsKey})
			h.api.set("weather", weatherKey)
			h.api.set("maps", mapsKey)
			g := h.gateway(cfgVars{"VAULT_ADDR": proxy.URL("http"), "VGW_CACHE_TTL": ttl.String(), "VGW_DEADLINE": "3s"})
			g.mustSay(t, "Weather", userA, sayWeather)
			tc.fault(proxy)
			time.Sleep(ttl + 20*time.Millisecond)
			for i := 0; i < 5; i++ {
				if a := g.mustSay(t, "Weather", userA, sayWeather); a.took > tc.maxTook {
					t.Errorf("cached secret, Vault %s: %s", tc.name, a.took)
				}
			}
			if a := g.mustSay(t, "Maps", userA, tc.uncached); a.took > tc.maxTook {
				t.Errorf("uncached secret, Vault %s: %s", tc.name, a.took)
			}
			proxy.Pass()
			time.Sleep(1200 * time.Millisecond) // past the background read's back-off
			g.mustSay(t, "Maps", userA, sayMaps)
			g.mustSay(t, "Weather", userA, sayWeather)
		})
	}
}

// tokenFront is the token endpoint the gateway sees: it forwards to the
// fake provider, or answers 503 as a provider in trouble does.
type tokenFront struct {
	*httptest.Server
	unavailable atomic.Bool
	seen        atomic.Int64
}

func newTokenFront(t *testing.T, provider string) *tokenFront {
	u, _ := url.Parse(provider)
	rp := httputil.NewSingleHostReverseProxy(u)
	f := &tokenFront{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.seen.Add(1)
		if f.unavailable.Load() {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"error":"temporarily_unavailable"}`)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

// linkCodes lists the entries under link-codes/ (nil: none).
func (h *vaultHarness) linkCodes() []any {
	h.t.Helper()
	sec, err := h.vault.Client().Logical().List("secret/metadata/voicegw/link-codes")
	if err != nil {
		h.t.Fatal(err)
	}
	if sec == nil {
		return nil
	}
	keys, _ := sec.Data["keys"].([]any)
	return keys
}

// TestRefreshProviderFailures runs two replicas on one Vault while the
// token endpoint answers 503 or never answers. Only a refusal means
// relink: a failure uses the current token while it is valid and answers
// the default speech once it has expired; no failure writes a link code,
// and the lock is always released, even when the refresh outlives the
// turn that took it.
func TestRefreshProviderFailures(t *testing.T) {
	const deadline = 2 * time.Second
	h := newVaultHarness(t)
	p := newTokenProvider(t, h.api, h.leaks)
	front := newTokenFront(t, p.URL)
	fp := mustFaultProxy(t, front.URL)
	h.put("services/github", map[string]any{"client_secret": p.clientSecret})
	env := cfgVars{"VGW_TOKEN_URL": fp.URL("http"), "VGW_CACHE_TTL": "30s",
		"VGW_PUBLIC_URL": "https://voice.example.test", "VGW_DEADLINE": deadline.String()}
	replicas := []*vaultGateway{h.gateway(env), h.gateway(env)}
	both := func(user string) [2]turnAnswer {
		var out [2]turnAnswer
		var wg sync.WaitGroup
		for i, g := range replicas {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out[i] = g.turn("Repos", user)
			}()
		}
		wg.Wait()
		return out
	}

	for i, tc := range []struct {
		name      string
		fault     func()
		expiresIn time.Duration
		want      string
	}{
		{name: "503, token valid", fault: func() { front.unavailable.Store(true) }, expiresIn: 30 * time.Second, want: sayRepos},
		{name: "503, token expired", fault: func() { front.unavailable.Store(true) }, expiresIn: -time.Minute, want: sayDefault},
		{name: "timeout, token valid", fault: fp.Blackhole, expiresIn: 30 * time.Second, want: sayRepos},
		// The refresh takes the whole turn: the lock is released after
		// the turn's deadline, on a detached context.
		{name: "timeout, token expired", fault: fp.Blackhole, expiresIn: -time.Minute, want: sayDefault},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A request held in the blackhole reaches the provider once
			// the proxy passes again, as a delayed packet would: let it
			// land before counting.
			front.unavailable.Store(false)
			fp.Pass()
			time.Sleep(300 * time.Millisecond)
			user := fmt.Sprintf("amzn1.ask.account.PFAIL%d", i)
			rt, tok := secretValue("rt"), secretValue("gho")
			p.grant(rt, user)
			h.leaks.secret(tok)
			h.put("users/"+user+"/github", map[string]any{"access_token": tok, "refresh_token": rt, "token_type": "Bearer",
				"expires_at": time.Now().Add(tc.expiresIn).UTC().Format(time.RFC3339)})
			h.api.set("user:"+user, tok)
			tc.fault()
			issued := p.Counts().Refreshes
			start := time.Now()
			for r, a := range both(user) {
				if a.status != http.StatusOK || a.speech != tc.want {
					t.Errorf("replica %d: HTTP %d %q, want %q", r, a.status, a.speech, tc.want)
				}
				if a.took > deadline+deadlineSlack {
					t.Errorf("replica %d answered after %s", r, a.took)
				}
			}
			if n := p.Counts().Refreshes - issued; n != 0 {
				t.Errorf("%d refreshes issued through a failing provider", n)
			}
			if codes := h.linkCodes(); len(codes) != 0 {
				t.Errorf("a failing provider made link codes: %v", codes)
			}
			// The lock is released within vault.timeout of the refresh's end.
			var data map[string]any
			for wait := time.Now().Add(deadline + 3*time.Second); ; time.Sleep(50 * time.Millisecond) {
				data = h.raw("users/" + user + "/github")
				if _, locked := data["refresh_lock_until"]; !locked || time.Now().After(wait) {
					break
				}
			}
			if _, locked := data["refresh_lock_until"]; locked {
				t.Errorf("the refresh lock is still in Vault %s after the turns", time.Since(start).Round(time.Millisecond))
			}
			if data["access_token"] != tok || data["refresh_token"] != rt {
				t.Errorf("a failed refresh changed the stored token")
			}
		})
	}

	t.Run("refusal relinks", func(t *testing.T) {
		front.unavailable.Store(false)
		fp.Pass()
		time.Sleep(300 * time.Millisecond)
		user := "amzn1.ask.account.PREFUSED"
		tok := secretValue("gho")
		h.leaks.secret(tok)
		// A refresh token the provider does not know: invalid_grant.
		h.put("users/"+user+"/github", map[string]any{"access_token": tok, "refresh_token": secretValue("rt"),
			"expires_at": time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)})
		for r, a := range both(user) {
			if a.status != http.StatusOK || !strings.Contains(a.speech, "/link and enter code ") {
				t.Errorf("replica %d: HTTP %d %q, want the linking instructions with a code", r, a.status, a.speech)
			}
		}
	})
}

// TestRefreshLocks: a lock whose refresh_lock_until has passed (its
// replica died) is taken over, found so at once or while waiting; a live lock held by a replica that
// never finishes is waited for no longer than the turn allows: the current
// token serves while valid, the default speech once expired, and no link
// code is made.
func TestRefreshLocks(t *testing.T) {
	const deadline = 2 * time.Second
	h := newVaultHarness(t)
	p := newTokenProvider(t, h.api, h.leaks)
	h.put("services/github", map[string]any{"client_secret": p.clientSecret})
	g := h.gateway(cfgVars{"VGW_TOKEN_URL": p.URL, "VGW_CACHE_TTL": "30s",
		"VGW_PUBLIC_URL": "https://voice.example.test", "VGW_DEADLINE": deadline.String()})
	for i, tc := range []struct {
		name      string
		lockUntil time.Duration
		expiresIn time.Duration
		want      string
		refreshes int
	}{
		{name: "stale lock is taken over", lockUntil: -time.Minute, expiresIn: 30 * time.Second, want: sayRepos, refreshes: 1},
		{name: "lock going stale while waited for is taken over", lockUntil: 400 * time.Millisecond, expiresIn: 30 * time.Second, want: sayRepos, refreshes: 1},
		{name: "live lock, token valid", lockUntil: time.Minute, expiresIn: 30 * time.Second, want: sayRepos},
		{name: "live lock, token expired", lockUntil: time.Minute, expiresIn: -time.Minute, want: sayDefault},
	} {
		t.Run(tc.name, func(t *testing.T) {
			user := fmt.Sprintf("amzn1.ask.account.LOCK%d", i)
			rt, tok := secretValue("rt"), secretValue("gho")
			p.grant(rt, user)
			h.leaks.secret(tok)
			h.put("users/"+user+"/github", map[string]any{"access_token": tok, "refresh_token": rt,
				"expires_at":         time.Now().Add(tc.expiresIn).UTC().Format(time.RFC3339),
				"refresh_lock_until": time.Now().Add(tc.lockUntil).UTC().Format(time.RFC3339Nano)})
			h.api.set("user:"+user, tok)
			issued := p.Counts().Refreshes
			a := g.turn("Repos", user)
			if a.status != http.StatusOK || a.speech != tc.want {
				t.Errorf("HTTP %d %q, want %q", a.status, a.speech, tc.want)
			}
			if a.took > deadline+deadlineSlack {
				t.Errorf("answered after %s", a.took)
			}
			if n := p.Counts().Refreshes - issued; n != tc.refreshes {
				t.Errorf("%d refreshes, want %d", n, tc.refreshes)
			}
			if codes := h.linkCodes(); len(codes) != 0 {
				t.Errorf("link codes: %v", codes)
			}
			if tc.refreshes > 0 {
				data := h.raw("users/" + user + "/github")
				if _, locked := data["refresh_lock_until"]; locked || data["access_token"] == tok {
					t.Errorf("after the takeover: locked=%v, token renewed=%v", locked, data["access_token"] != tok)
				}
			}
		})
	}
}

// Test401Storm: 48 concurrent turns whose upstream refuses the secret,
// then more turns within the second, re-read the path from Vault once;
// a second later, once more.
func Test401Storm(t *testing.T) {
	h := newVaultHarness(t)
	key := secretValue("wk")
	h.put("services/weather", map[string]any{"api_key": key})
	h.api.set("weather", secretValue("other"))
	g := h.gateway(nil)
	g.turn("Weather", userA) // cached; its own 401 re-read it once
	time.Sleep(1100 * time.Millisecond)
	wave := func(n int) {
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if a := g.turn("Weather", userA); a.status != http.StatusOK || a.speech == sayWeather {
					t.Errorf("HTTP %d %q, want the status speech", a.status, a.speech)
				}
			}()
		}
		wg.Wait()
	}
	base := g.reads.reads()["services/weather"]
	start := time.Now()
	wave(48)
	time.Sleep(200 * time.Millisecond)
	wave(16)
	if time.Since(start) < 900*time.Millisecond {
		if n := g.reads.reads()["services/weather"] - base; n != 1 {
			t.Errorf("64 turns with a refused secret within a second: %d Vault reads, want 1", n)
		}
	}
	time.Sleep(time.Until(start.Add(1100 * time.Millisecond)))
	wave(16)
	if n := g.reads.reads()["services/weather"] - base; n != 2 {
		t.Errorf("a second later: %d Vault reads in all, want 2", n)
	}
}

// TestDeadLinkedToken: a linked token the upstream refuses after the
// re-read, with no refresh token (GitHub OAuth apps issue none), is
// treated as unlinked: the user hears the linking instructions with a
// code, not the default speech.
func TestDeadLinkedToken(t *testing.T) {
	h := newVaultHarness(t)
	tok := secretValue("gho")
	h.put("users/"+userA+"/github", map[string]any{"access_token": tok, "token_type": "Bearer"})
	h.api.set("user:"+userA, secretValue("other"))
	g := h.gateway(cfgVars{"VGW_PUBLIC_URL": "https://voice.example.test"})
	a := g.turn("Repos", userA)
	if a.status != http.StatusOK || !strings.HasPrefix(a.speech, "To use github, open https://voice.example.test/link and enter code ") {
		t.Errorf("HTTP %d %q, want the linking instructions with a code", a.status, a.speech)
	}
	if len(h.linkCodes()) == 0 {
		t.Error("no link code in Vault")
	}
}

// TestVaultReadyz checks /readyz of the runtime serve wires, derived from
// the store's own requests: 503 while Vault was never reached, 200 with
// "vault": "ok" once it was, still 200 with "vault": "unreachable" during
// a later outage, and no Vault request per probe.
func TestVaultReadyz(t *testing.T) {
	h := newVaultHarness(t)
	weatherKey := secretValue("wk")
	h.put("services/weather", map[string]any{"api_key": weatherKey})
	proxy := mustFaultProxy(t, h.vault.Addr)
	proxy.Reset()
	g := h.gateway(cfgVars{"VAULT_ADDR": proxy.URL("http"), "VGW_VAULT_TIMEOUT": "300ms"})
	g.store.Start()
	ts := httptest.NewServer(server.New(g.deps.runtime(g.cfg, g.store), nil, h.log).Handler())
	defer ts.Close()
	readyz := func() (int, map[string]string) {
		t.Helper()
		resp, err := http.Get(ts.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		h.leaks.output(string(b))
		var m map[string]string
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("/readyz: not JSON: %q", b)
		}
		return resp.StatusCode, m
	}
	want := func(code int, body map[string]string) {
		t.Helper()
		got, m := readyz()
		if got != code || fmt.Sprint(m) != fmt.Sprint(body) {
			t.Fatalf("/readyz = %d %v, want %d %v", got, m, code, body)
		}
	}
	until := func(code int, body map[string]string, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			got, m := readyz()
			if got == code && fmt.Sprint(m) == fmt.Sprint(body) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz = %d %v after %s, want %d %v", got, m, within, code, body)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	want(503, map[string]string{"status": "unavailable", "reason": "vault unreachable", "vault": "unreachable"})
	proxy.Pass()
	until(200, map[string]string{"status": "ready", "vault": "ok"}, 5*time.Second)
	before := g.reads.all.Load()
	for i := 0; i < 20; i++ {
		want(200, map[string]string{"status": "ready", "vault": "ok"})
	}
	if n := g.reads.all.Load() - before; n != 0 {
		t.Errorf("20 probes made %d Vault requests, want 0", n)
	}

	proxy.Blackhole()
	g.mustSay(t, "Weather", userA, sayVault)
	want(200, map[string]string{"status": "ready", "vault": "unreachable"})
	proxy.Pass()
	h.api.set("weather", weatherKey)
	g.mustSay(t, "Weather", userA, sayWeather)
	want(200, map[string]string{"status": "ready", "vault": "ok"})

	// serve's own wiring, with a token Vault refuses: serve logs in at
	// start, so /readyz says why with no turn ever made.
	t.Setenv("VAULT_TOKEN", "hvs.invalid")
	d := newDeps(h.log)
	rt, err := d.serveRuntime(g.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.vault.Close()
	ts2 := httptest.NewServer(server.New(rt, nil, h.log).Handler())
	defer ts2.Close()
	ts = ts2
	until(503, map[string]string{"status": "unavailable", "reason": "vault token invalid", "vault": "token invalid"}, 3*time.Second)
}

// TestVaultTokensRevoked: `voicegw link` revokes the AppRole token it
// logged in with before it exits, and a reload that replaces the Vault
// client revokes the old client's token once the turns still running on
// it have had their time.
func TestVaultTokensRevoked(t *testing.T) {
	h := newVaultHarness(t)
	hcl, err := os.ReadFile(filepath.Join("..", "..", "scripts", "voicegw-policy.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	roleID := h.vault.AppRole(t, "voicegw", string(hcl), map[string]any{"token_ttl": "1h"})
	file := filepath.Join(t.TempDir(), "secret-id")
	sid := h.vault.SecretID(t, "voicegw")
	h.leaks.secret(sid)
	if err := os.WriteFile(file, []byte(sid), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("VAULT_ADDR", h.vault.Addr)
	t.Setenv("VAULT_TOKEN", "")
	t.Setenv("VGW_VAULT_METHOD", "approle")
	t.Setenv("VGW_ROLE_ID", roleID)
	t.Setenv("VGW_SECRET_ID_FILE", file)
	user := "amzn1.ask.account.REVOKE"
	h.put("users/"+user+"/github", map[string]any{"access_token": secretValue("gho")})

	var stdout, stderr strings.Builder
	if code := run([]string{"link", "show", "-c", testConfig, "--user", user, "--service", "github"}, &stdout, &stderr); code != 0 {
		t.Fatalf("link show: exit %d: %s", code, stderr.String())
	}
	h.leaks.output(stdout.String(), stderr.String())
	if n := h.vault.RoleTokens(t, "voicegw"); n != 0 {
		t.Errorf("%d AppRole tokens alive after `voicegw link show`, want 0", n)
	}

	cfg1 := loadConfig(testConfig, io.Discard, false)
	if cfg1 == nil || cfg1.Vault.Auth.Method != "approle" {
		t.Fatal("testdata/vault.yaml with approle did not load")
	}
	d := newDeps(h.log)
	d.retireAfter = 200 * time.Millisecond
	s1, err := d.store(cfg1)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s1.Read(ctx, "users/"+user+"/github"); err != nil {
		t.Fatal(err)
	}
	if n := h.vault.RoleTokens(t, "voicegw"); n != 1 {
		t.Fatalf("%d AppRole tokens after the first store's login, want 1", n)
	}
	t.Setenv("VGW_CACHE_TTL", "10s")
	cfg2 := loadConfig(testConfig, io.Discard, false)
	s2, err := d.store(cfg2)
	if err != nil || s2 == s1 {
		t.Fatalf("a changed vault section kept the store (%v)", err)
	}
	if _, err := s1.Read(ctx, "users/"+user+"/github"); err != nil {
		t.Errorf("the replaced store stopped serving at once: %v", err)
	}
	time.Sleep(400 * time.Millisecond)
	if n := h.vault.RoleTokens(t, "voicegw"); n != 0 {
		t.Errorf("%d AppRole tokens after the reload's grace, want 0 (the old one revoked)", n)
	}
	if _, err := s2.Read(ctx, "users/"+user+"/github"); err != nil {
		t.Fatal(err)
	}
	d.closeVault()
	if n := h.vault.RoleTokens(t, "voicegw"); n != 0 {
		t.Errorf("%d AppRole tokens after closeVault, want 0", n)
	}
}
