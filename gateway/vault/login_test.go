package vault_test

// Login pacing, outage and revocation tests of SPEC 10 against the real
// Vault dev server, with faultproxy in front of it where Vault must fail.

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/gateway/faultproxy"
	"github.com/voicegw/voicegw/gateway/vault"
	"github.com/voicegw/voicegw/gateway/vault/vaulttest"
)

const loginPath = "/v1/auth/approle/login"

// logLines is a slog JSON sink that counts lines by message.
type logLines struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// count returns how many lines have message msg.
func (l *logLines) count(msg string) int {
	n := 0
	for _, line := range strings.Split(l.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			n++
		}
	}
	return n
}

func newLog(t *testing.T, secrets ...string) (*slog.Logger, *logLines) {
	l := &logLines{}
	t.Cleanup(func() {
		out := l.String()
		for _, s := range secrets {
			if s != "" && strings.Contains(out, s) {
				t.Errorf("a secret appears in the log")
			}
		}
		// Vault's service tokens start with hvs.: none may be logged.
		if strings.Contains(out, "hvs.") {
			t.Errorf("a Vault token appears in the log")
		}
		if t.Failed() {
			t.Logf("store log:\n%s", out)
		}
	})
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug})), l
}

// requests counts the Vault client's requests by URL path.
type requests struct {
	mu sync.Mutex
	n  map[string]int
}

func (r *requests) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.n[req.URL.Path]++
	r.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

func (r *requests) count(path string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[path]
}

func (r *requests) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, v := range r.n {
		n += v
	}
	return n
}

func newRequests() (*requests, *http.Client) {
	r := &requests{n: map[string]int{}}
	return r, &http.Client{Transport: r}
}

// policy is scripts/voicegw-policy.hcl, the policy operators install.
func policy(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "scripts", "voicegw-policy.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// approleStore returns an AppRole store for addr reading its secret_id
// from file.
func approleStore(t *testing.T, addr, roleID, file string, timeout time.Duration, hc *http.Client, log *slog.Logger) *vault.Store {
	t.Helper()
	s, err := vault.New(&config.Vault{Address: addr, KVMount: "secret", Prefix: "voicegw",
		Auth:    config.VaultAuth{Method: "approle", RoleID: roleID, SecretIDFile: file},
		Timeout: config.Duration{D: timeout}},
		vault.Options{HTTPClient: hc, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func writeFile(t *testing.T, file, content string) {
	t.Helper()
	if err := os.WriteFile(file, []byte(content+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func mustProxy(t *testing.T, addr string) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.Start(strings.TrimPrefix(addr, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// TestLoginRefusedIsPaced: with a bad secret_id (as after it expired),
// thirty reads make one login, not thirty, so the shared role_id is never
// locked out; writing a fresh secret_id to the file is tried at once.
func TestLoginRefusedIsPaced(t *testing.T) {
	srv := vaulttest.Start(t)
	roleID := srv.AppRole(t, "voicegw", policy(t), map[string]any{"token_ttl": "1h"})
	srv.Put(t, "voicegw/services/weather", map[string]any{"api_key": "k1"})
	file := filepath.Join(t.TempDir(), "secret-id")
	writeFile(t, file, "00000000-0000-0000-0000-000000000000")
	reqs, hc := newRequests()
	fresh := srv.SecretID(t, "voicegw")
	log, lines := newLog(t, fresh, srv.Token)
	s := approleStore(t, srv.Addr, roleID, file, time.Second, hc, log)
	ctx := context.Background()

	start := time.Now()
	for i := 0; i < 30; i++ {
		if _, err := s.Read(ctx, "services/weather"); err == nil {
			t.Fatal("read with a bad secret_id succeeded")
		}
		time.Sleep(30 * time.Millisecond)
	}
	if n := reqs.count(loginPath); n != 1 {
		t.Errorf("30 reads over %s with a refused secret_id made %d logins, want 1", time.Since(start).Round(time.Millisecond), n)
	}
	if h := s.Health(); h != (vault.Health{Connected: false, Status: vault.StatusTokenInvalid}) {
		t.Errorf("Health after a refused login: %+v", h)
	}
	if n := lines.count("vault login refused"); n != 1 {
		t.Errorf("%d lines \"vault login refused\", want 1", n)
	}
	if !strings.Contains(lines.String(), `"retry_in":"5m0s"`) {
		t.Errorf("the refusal does not say the next try is in 5 minutes")
	}

	// The operator rotates the secret_id: the next read logs in at once.
	writeFile(t, file, fresh)
	if _, err := s.Read(ctx, "services/weather"); err != nil {
		t.Fatalf("read after writing a fresh secret_id: %v", err)
	}
	if n := reqs.count(loginPath); n != 2 {
		t.Errorf("%d logins in all, want 2", n)
	}
	if h := s.Health(); h != (vault.Health{Connected: true, Status: vault.StatusOK}) {
		t.Errorf("Health after the login: %+v", h)
	}
	if n := lines.count("vault login"); n != 1 {
		t.Errorf("%d lines \"vault login\", want 1", n)
	}
}

// TestLoginBackoff: while Vault resets every connection, logins back off
// from 1 s (jittered), whatever the rate of reads; one line marks the
// outage's start and one its end.
func TestLoginBackoff(t *testing.T) {
	srv := vaulttest.Start(t)
	roleID := srv.AppRole(t, "voicegw", policy(t), nil)
	srv.Put(t, "voicegw/services/weather", map[string]any{"api_key": "k1"})
	file := filepath.Join(t.TempDir(), "secret-id")
	sid := srv.SecretID(t, "voicegw")
	writeFile(t, file, sid)
	proxy := mustProxy(t, srv.Addr)
	proxy.Reset()
	reqs, hc := newRequests()
	log, lines := newLog(t, sid, srv.Token)
	s := approleStore(t, proxy.URL("http"), roleID, file, 500*time.Millisecond, hc, log)
	ctx := context.Background()

	const window = 2200 * time.Millisecond
	reads := 0
	for start := time.Now(); time.Since(start) < window; reads++ {
		if _, err := s.Read(ctx, "services/weather"); err == nil {
			t.Fatal("read through a resetting proxy succeeded")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Attempts at 0, after 0.75-1.25 s, then 1.5-2.5 s later.
	n := reqs.count(loginPath)
	t.Logf("%d reads in %s made %d logins", reads, window, n)
	if n < 2 || n > 3 {
		t.Errorf("%d logins in %s of reads, want 2 or 3 (back-off from 1 s)", n, window)
	}
	if got := lines.count("vault login failed"); got != n {
		t.Errorf("%d lines \"vault login failed\" for %d logins", got, n)
	}
	if got := lines.count("vault unreachable"); got != 1 {
		t.Errorf("%d lines \"vault unreachable\", want 1", got)
	}
	if h := s.Health(); h.Connected || h.Status != vault.StatusUnreachable {
		t.Errorf("Health while never reached: %+v", h)
	}

	proxy.Pass()
	deadline := time.Now().Add(6 * time.Second)
	for {
		_, err := s.Read(ctx, "services/weather")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no read 6 s after Vault came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := lines.count("vault reachable again"); got != 1 {
		t.Errorf("%d lines \"vault reachable again\", want 1", got)
	}
	if h := s.Health(); h != (vault.Health{Connected: true, Status: vault.StatusOK}) {
		t.Errorf("Health after recovery: %+v", h)
	}
}

// TestOneLoginInFlight: twenty concurrent first reads through a slow
// Vault share one login.
func TestOneLoginInFlight(t *testing.T) {
	srv := vaulttest.Start(t)
	roleID := srv.AppRole(t, "voicegw", policy(t), nil)
	srv.Put(t, "voicegw/services/weather", map[string]any{"api_key": "k1"})
	file := filepath.Join(t.TempDir(), "secret-id")
	writeFile(t, file, srv.SecretID(t, "voicegw"))
	proxy := mustProxy(t, srv.Addr)
	proxy.Delay(100 * time.Millisecond)
	reqs, hc := newRequests()
	log, _ := newLog(t, srv.Token)
	s := approleStore(t, proxy.URL("http"), roleID, file, 2*time.Second, hc, log)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Read(context.Background(), "services/weather"); err != nil {
				t.Errorf("read: %v", err)
			}
		}()
	}
	wg.Wait()
	if n := reqs.count(loginPath); n != 1 {
		t.Errorf("20 concurrent reads made %d logins, want 1", n)
	}
}

// TestRelogin403: a revoked token is replaced by one shared re-login; a
// 403 that a new token does not cure (a path outside the policy) triggers
// no more than one re-login per back-off step.
func TestRelogin403(t *testing.T) {
	srv := vaulttest.Start(t)
	roleID := srv.AppRole(t, "voicegw", policy(t), map[string]any{"token_ttl": "1h"})
	srv.Put(t, "voicegw/services/weather", map[string]any{"api_key": "k1"})
	file := filepath.Join(t.TempDir(), "secret-id")
	writeFile(t, file, srv.SecretID(t, "voicegw"))
	reqs, hc := newRequests()
	log, lines := newLog(t, srv.Token)
	s := approleStore(t, srv.Addr, roleID, file, 2*time.Second, hc, log)
	ctx := context.Background()
	if _, err := s.Read(ctx, "services/weather"); err != nil {
		t.Fatal(err)
	}
	srv.RevokeRoleTokens(t, "voicegw")
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Read(ctx, "services/weather"); err != nil {
				t.Errorf("read after revocation: %v", err)
			}
		}()
	}
	wg.Wait()
	if n := reqs.count(loginPath); n != 2 {
		t.Errorf("%d logins after a revocation seen by 10 reads, want 2 in all", n)
	}
	if n := lines.count("vault re-login"); n != 1 {
		t.Errorf("%d lines \"vault re-login\", want 1", n)
	}

	for i := 0; i < 10; i++ {
		if _, err := s.Read(ctx, "denied/x"); err == nil || !strings.Contains(err.Error(), "403") {
			t.Fatalf("read outside the policy: %v, want a 403", err)
		}
	}
	if n := reqs.count(loginPath); n > 3 {
		t.Errorf("10 reads denied by the policy made %d more logins, want at most 1", n-2)
	}
}

// TestRevoke: Revoke ends the token an AppRole store logged in with; a
// token given to a store is the operator's and survives.
func TestRevoke(t *testing.T) {
	srv := vaulttest.Start(t)
	roleID := srv.AppRole(t, "voicegw", policy(t), map[string]any{"token_ttl": "1h"})
	srv.Put(t, "voicegw/services/weather", map[string]any{"api_key": "k1"})
	file := filepath.Join(t.TempDir(), "secret-id")
	writeFile(t, file, srv.SecretID(t, "voicegw"))
	log, lines := newLog(t, srv.Token)
	s := approleStore(t, srv.Addr, roleID, file, 2*time.Second, nil, log)
	ctx := context.Background()
	if _, err := s.Read(ctx, "services/weather"); err != nil {
		t.Fatal(err)
	}
	if n := srv.RoleTokens(t, "voicegw"); n != 1 {
		t.Fatalf("%d AppRole tokens after the login, want 1", n)
	}
	if err := s.Revoke(ctx); err != nil {
		t.Fatal(err)
	}
	if n := srv.RoleTokens(t, "voicegw"); n != 0 {
		t.Errorf("%d AppRole tokens after Revoke, want 0", n)
	}
	if n := lines.count("vault token revoked"); n != 1 {
		t.Errorf("%d lines \"vault token revoked\", want 1", n)
	}

	op := MustStore(t, srv, srv.Token, vault.Options{Logger: log})
	if _, err := op.Read(ctx, "services/weather"); err != nil {
		t.Fatal(err)
	}
	if err := op.Revoke(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Client().Auth().Token().LookupSelf(); err != nil {
		t.Errorf("Revoke of a store with the operator's token revoked it: %v", err)
	}
}

// TestHealthOutage: Health follows the store's own requests: ok, then
// unreachable while Vault hangs (one line at the start, one at the end),
// and never marks a store connected whose token Vault refuses.
func TestHealthOutage(t *testing.T) {
	srv := vaulttest.Start(t)
	srv.Put(t, "voicegw/services/weather", map[string]any{"api_key": "k1"})
	proxy := mustProxy(t, srv.Addr)
	log, lines := newLog(t, srv.Token)
	cfg := vaultConfig(proxy.URL("http"))
	cfg.Timeout = config.Duration{D: 300 * time.Millisecond}
	s, err := vault.New(cfg, vault.Options{Token: srv.Token, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.Read(ctx, "services/weather"); err != nil {
		t.Fatal(err)
	}
	if h := s.Health(); h != (vault.Health{Connected: true, Status: vault.StatusOK}) {
		t.Fatalf("Health: %+v", h)
	}
	proxy.Blackhole()
	for i := 0; i < 3; i++ {
		start := time.Now()
		if _, err := s.Read(ctx, "services/weather"); err == nil {
			t.Fatal("read through a blackhole succeeded")
		}
		if took := time.Since(start); took > 600*time.Millisecond {
			t.Errorf("read through a blackhole took %s, vault.timeout is 300ms", took)
		}
	}
	if h := s.Health(); h != (vault.Health{Connected: true, Status: vault.StatusUnreachable}) {
		t.Errorf("Health during the outage: %+v", h)
	}
	proxy.Pass()
	if _, err := s.Read(ctx, "services/weather"); err != nil {
		t.Fatal(err)
	}
	if h := s.Health(); h.Status != vault.StatusOK {
		t.Errorf("Health after the outage: %+v", h)
	}
	if a, b := lines.count("vault unreachable"), lines.count("vault reachable again"); a != 1 || b != 1 {
		t.Errorf("outage lines: %d start, %d end; want 1 and 1", a, b)
	}

	bad, err := vault.New(vaultConfig(srv.Addr), vault.Options{Token: "hvs.not-a-token", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if _, err := bad.Read(ctx, "services/weather"); err == nil {
		t.Fatal("read with an invalid token succeeded")
	}
	if h := bad.Health(); h != (vault.Health{Connected: false, Status: vault.StatusTokenInvalid}) {
		t.Errorf("Health with an invalid token: %+v", h)
	}
}

// TestRenewalFailure: a renewal that fails while Vault resets connections
// is one log line (not a silent retry until the token expires); the store
// keeps its token, logs in again at the paced rate, and serves once Vault
// is back, with one line for the re-login and one for each end of the
// outage.
func TestRenewalFailure(t *testing.T) {
	srv := vaulttest.Start(t)
	// A 4 s token: the watcher renews at once, then about 2.7 s later,
	// when Vault is gone.
	roleID := srv.AppRole(t, "voicegw", policy(t), map[string]any{"token_ttl": "4s", "token_max_ttl": "1h"})
	srv.Put(t, "voicegw/services/weather", map[string]any{"api_key": "k1"})
	file := filepath.Join(t.TempDir(), "secret-id")
	sid := srv.SecretID(t, "voicegw")
	writeFile(t, file, sid)
	proxy := mustProxy(t, srv.Addr)
	log, lines := newLog(t, sid, srv.Token)
	s := approleStore(t, proxy.URL("http"), roleID, file, 500*time.Millisecond, nil, log)
	ctx := context.Background()
	if _, err := s.Read(ctx, "services/weather"); err != nil {
		t.Fatal(err)
	}
	proxy.Reset()
	for deadline := time.Now().Add(6 * time.Second); lines.count("vault token renewal failed") == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no renewal failure logged 6 s into the outage")
		}
	}
	if h := s.Health(); h != (vault.Health{Connected: true, Status: vault.StatusUnreachable}) {
		t.Errorf("Health after the renewal failed: %+v", h)
	}
	proxy.Pass()
	for deadline := time.Now().Add(6 * time.Second); lines.count("vault re-login") == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no re-login 6 s after Vault came back")
		}
	}
	if _, err := s.Read(ctx, "services/weather"); err != nil {
		t.Fatalf("read after the re-login: %v", err)
	}
	for msg, want := range map[string]int{"vault token renewal failed": 1, "vault re-login": 1, "vault unreachable": 1, "vault reachable again": 1} {
		if n := lines.count(msg); n != want {
			t.Errorf("%d lines %q, want %d", n, msg, want)
		}
	}
}
