package main

// End-to-end tests of the Vault integration (SPEC 4): a real Vault dev
// server (vaulttest), real httptest upstreams and token endpoints, and the
// pipeline wired exactly as serve wires it (config -> vault.New -> deps ->
// alexa.Handler). No mocks.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/voicegw/voicegw/gateway/alexa"
	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/gateway/linking/linkingtest"
	"github.com/voicegw/voicegw/gateway/upstream"
	"github.com/voicegw/voicegw/gateway/vault"
	"github.com/voicegw/voicegw/gateway/vault/vaulttest"
)

const (
	testConfig = "testdata/vault.yaml"
	testAppID  = "amzn1.ask.skill.vaultit"

	// Success speeches of testdata/vault.yaml with the fake API's answers.
	sayWeather = "The weather is sunny."
	sayMaps    = "The map says north."
	sayRepos   = "You have 3 repositories."
	sayBoth    = "The weather is sunny and you have 3 repositories."
	// Built-in error speeches (engine.builtinErrors, engine.unlinked).
	sayVault    = "Sorry, I can't reach my secure storage right now. Please try again later."
	sayUnlinked = "To use github, please link your account in the Alexa app."
)

// secretValue returns a distinctive random secret, so that a leak of it
// into logs or speech cannot be a coincidence.
func secretValue(kind string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return kind + "-" + hex.EncodeToString(b[:])
}

// leakCheck collects the secrets a test uses and everything the gateway
// said or printed; at the end of the test none of the secrets may appear
// in the logs or in any output (SPEC 4: no token, secret or Authorization
// header is ever logged or put in a card).
type leakCheck struct {
	mu      sync.Mutex
	secrets map[string]bool
	outputs []string
}

func (l *leakCheck) secret(vs ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, v := range vs {
		if len(v) < 8 {
			panic("leakCheck: secret too short to scan for: " + v)
		}
		l.secrets[v] = true
	}
}

func (l *leakCheck) output(vs ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.outputs = append(l.outputs, vs...)
}

func (l *leakCheck) check(t testing.TB, logs string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.secrets) == 0 {
		t.Error("leak check: the test registered no secrets")
	}
	out := strings.Join(l.outputs, "\n")
	for s := range l.secrets {
		if strings.Contains(logs, s) {
			t.Errorf("a secret (%s…) appears in the logs", s[:6])
		}
		if strings.Contains(out, s) {
			t.Errorf("a secret (%s…) appears in speech, a card or command output", s[:6])
		}
	}
}

// credAPI is the upstream of every service in testdata/vault.yaml. It
// accepts only the current credential of each service or user and counts
// what it sees.
type credAPI struct {
	srv *httptest.Server

	mu       sync.RWMutex
	accept   map[string]*atomic.Pointer[string] // "weather", "maps", "user:<id>"
	seen     map[string]int                     // credential value -> requests carrying it
	refused  map[string]int                     // credential value -> 401s for it
	rejected atomic.Int64
	calls    atomic.Int64
}

func newCredAPI(t testing.TB) *credAPI {
	f := &credAPI{accept: map[string]*atomic.Pointer[string]{}, seen: map[string]int{}, refused: map[string]int{}}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *credAPI) slot(key string) *atomic.Pointer[string] {
	f.mu.RLock()
	p := f.accept[key]
	f.mu.RUnlock()
	if p != nil {
		return p
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if p = f.accept[key]; p == nil {
		p = new(atomic.Pointer[string])
		f.accept[key] = p
	}
	return p
}

// set makes v the only credential accepted for key.
func (f *credAPI) set(key, v string) { f.slot(key).Store(&v) }

func (f *credAPI) current(key string) string {
	if p := f.slot(key).Load(); p != nil {
		return *p
	}
	return ""
}

// refusals returns how many requests with credential v got a 401.
func (f *credAPI) refusals(v string) int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.refused[v]
}

// saw returns how many requests carried credential v.
func (f *credAPI) saw(v string) int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.seen[v]
}

func (f *credAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	var key, got, value string
	switch p := r.URL.Path; {
	case p == "/weather":
		key, got, value = "weather", r.Header.Get("X-Api-Key"), "sunny"
	case p == "/maps":
		key, got, value = "maps", r.URL.Query().Get("appid"), "north"
	case p == "/news":
		key, got = "news", r.Header.Get("Authorization")
	case strings.HasPrefix(p, "/user/") && strings.HasSuffix(p, "/repos"):
		key = "user:" + strings.TrimSuffix(strings.TrimPrefix(p, "/user/"), "/repos")
		auth := r.Header.Get("Authorization")
		if !strings.HasPrefix(auth, "Bearer ") {
			auth = "missing bearer: " + auth
		}
		got = strings.TrimPrefix(auth, "Bearer ")
	default:
		http.NotFound(w, r)
		return
	}
	f.mu.Lock()
	f.seen[got]++
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if want := f.current(key); want == "" || got != want {
		f.rejected.Add(1)
		f.mu.Lock()
		f.refused[got]++
		f.mu.Unlock()
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":"bad credentials"}`)
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"value": value, "count": 3})
}

// readCounter is the Vault client's transport: it counts GETs of secrets
// below secret/data/voicegw/ by path.
type readCounter struct {
	base http.RoundTripper
	mu   sync.Mutex
	n    map[string]int
	// all counts every request to Vault.
	all atomic.Int64
}

const readPrefix = "/v1/secret/data/voicegw/"

func (c *readCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.all.Add(1)
	if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, readPrefix) {
		c.mu.Lock()
		c.n[strings.TrimPrefix(r.URL.Path, readPrefix)]++
		c.mu.Unlock()
	}
	return c.base.RoundTrip(r)
}

// reads returns a copy of the counts.
func (c *readCounter) reads() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.n))
	for k, v := range c.n {
		out[k] = v
	}
	return out
}

func (c *readCounter) total() int {
	n := 0
	for _, v := range c.reads() {
		n += v
	}
	return n
}

// vaultHarness is one test's world: a Vault dev server, the fake API, a
// buffered debug logger and the leak check that runs when the test ends.
type vaultHarness struct {
	t     *testing.T
	vault *vaulttest.Server
	api   *credAPI
	logs  *syncBuffer
	log   *slog.Logger
	leaks *leakCheck
}

func newVaultHarness(t *testing.T) *vaultHarness {
	t.Helper()
	h := &vaultHarness{
		t:     t,
		vault: vaulttest.Start(t),
		api:   newCredAPI(t),
		logs:  &syncBuffer{},
		leaks: &leakCheck{secrets: map[string]bool{}},
	}
	h.log = newLogger(h.logs, slog.LevelDebug)
	h.leaks.secret(h.vault.Token)
	// Registered after vaulttest's cleanup, so it runs first: Vault is
	// still up, the logs are complete.
	t.Cleanup(func() {
		logs := h.logs.String()
		h.leaks.check(t, logs)
		if t.Failed() {
			t.Logf("gateway logs:\n%s", lastChars(logs, 4000))
		}
	})
	return h
}

func lastChars(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// put writes a secret at <prefix>/path with the root client, as ops would.
func (h *vaultHarness) put(path string, fields map[string]any) {
	h.t.Helper()
	for k, v := range fields {
		if s, ok := v.(string); ok && k != "token_type" && k != "expires_at" {
			h.leaks.secret(s)
		}
	}
	h.vault.Put(h.t, "voicegw/"+path, fields)
}

// raw reads <prefix>/path with the root client; nil when absent.
func (h *vaultHarness) raw(path string) map[string]any {
	h.t.Helper()
	return readVault(h.t, h.vault, path)
}

// linkUsers links n users, amzn1.ask.account.<prefix>0 and on, each with
// a fresh token in Vault that the fake API accepts, and returns their
// userIds.
func (h *vaultHarness) linkUsers(prefix string, n int) []string {
	h.t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("amzn1.ask.account.%s%d", prefix, i)
		tok := secretValue("gho")
		h.put("users/"+ids[i]+"/github", map[string]any{"access_token": tok})
		h.api.set("user:"+ids[i], tok)
	}
	return ids
}

// gw is one gateway instance, wired as serve wires it.
type vaultGateway struct {
	h       *vaultHarness
	cfg     *config.Config
	store   *vault.Store
	deps    *deps
	handler *alexa.Handler
	reads   *readCounter
}

// vars are the ${VAR}s of testdata/vault.yaml.
type cfgVars map[string]string

// gateway parses testdata/vault.yaml with VAULT_ADDR and VGW_UPSTREAM
// pointing at the harness, plus extra, and wires a gateway over a new store.
func (h *vaultHarness) gateway(extra cfgVars) *vaultGateway {
	h.t.Helper()
	env := cfgVars{"VAULT_ADDR": h.vault.Addr, "VGW_UPSTREAM": h.api.srv.URL}
	for k, v := range extra {
		env[k] = v
	}
	data, err := os.ReadFile(testConfig)
	if err != nil {
		h.t.Fatal(err)
	}
	cfg, problems := config.Parse(testConfig, data, func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
	if cfg == nil {
		h.t.Fatalf("config: %v", problems.Err())
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	rc := &readCounter{base: tr, n: map[string]int{}}
	store, err := vault.New(cfg.Vault, vault.Options{
		HTTPClient: &http.Client{Transport: rc},
		Token:      h.vault.Token,
		Logger:     h.log,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(store.Close)
	d := &deps{log: h.log, client: upstream.New(upstream.DefaultOptions)}
	h.t.Cleanup(d.client.CloseIdle)
	return &vaultGateway{h: h, cfg: cfg, store: store, deps: d, handler: d.handler(cfg, store, false), reads: rc}
}

// answer is what the gateway answered to one turn.
type turnAnswer struct {
	status int
	speech string
	card   string
	took   time.Duration
	body   string
}

// turn runs one IntentRequest for user through the handler. It is safe
// for concurrent use (no testing.T calls).
func (g *vaultGateway) turn(intent, user string) turnAnswer {
	body := alexa.BuildRequest(alexa.RequestSpec{
		ApplicationID: testAppID, UserID: user, Type: "IntentRequest",
		Intent: intent, NewSession: true,
	})
	start := time.Now()
	status, out := g.handler.Serve(context.Background(), "", nil, body)
	a := turnAnswer{status: status, took: time.Since(start), body: string(out)}
	g.h.leaks.output(a.body)
	if status != http.StatusOK {
		return a
	}
	var resp alexa.Response
	if err := json.Unmarshal(out, &resp); err != nil {
		a.speech = "undecodable response: " + err.Error()
		return a
	}
	a.speech = resp.Speech()
	if c := resp.Response.Card; c != nil {
		a.card = c.Title + "\n" + c.Content
	}
	return a
}

// mustSay runs a turn and checks its speech.
func (g *vaultGateway) mustSay(t testing.TB, intent, user, want string) turnAnswer {
	t.Helper()
	a := g.turn(intent, user)
	if a.status != http.StatusOK || a.speech != want {
		t.Fatalf("%s as %s: HTTP %d, speech %q; want %q", intent, user, a.status, a.speech, want)
	}
	return a
}

const (
	userA = "amzn1.ask.account.ALICE"
	userB = "amzn1.ask.account.BOB"
)

// TestVaultAuthTypes covers both auth types that read Vault, with the KV
// layout of SPEC 4: a secret service in a header and in the query, a
// linked service with the user's bearer token, an unlinked user, a
// missing service secret, and a malformed userId that never reaches Vault.
func TestVaultAuthTypes(t *testing.T) {
	h := newVaultHarness(t)
	weatherKey, mapsKey, tokA := secretValue("wk"), secretValue("mk"), secretValue("gho")
	h.put("services/weather", map[string]any{"api_key": weatherKey, "other": secretValue("other")})
	h.put("services/maps", map[string]any{"api_key": mapsKey})
	h.put("users/"+userA+"/github", map[string]any{"access_token": tokA, "token_type": "Bearer"})
	h.api.set("weather", weatherKey)
	h.api.set("maps", mapsKey)
	h.api.set("user:"+userA, tokA)
	g := h.gateway(nil)

	tests := []struct {
		name, intent, user, want string
		// seen is the credential the upstream must have received.
		seen string
	}{
		{"secret in header", "Weather", userA, sayWeather, weatherKey},
		{"secret in query", "Maps", userA, sayMaps, mapsKey},
		{"linked bearer", "Repos", userA, sayRepos, tokA},
		{"unlinked user", "Repos", userB, sayUnlinked, ""},
		{"missing service secret", "News", userA, sayVault, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls := h.api.calls.Load()
			a := g.mustSay(t, tc.intent, tc.user, tc.want)
			if tc.seen != "" && h.api.saw(tc.seen) == 0 {
				t.Errorf("the upstream never received the credential from Vault")
			}
			if tc.seen == "" && h.api.calls.Load() != calls {
				t.Errorf("a turn without a credential called the upstream")
			}
			if tc.want == sayUnlinked && a.card != "" && !strings.Contains(a.card, "link") {
				t.Errorf("unlinked card %q", a.card)
			}
		})
	}

	t.Run("malformed userId never reaches Vault", func(t *testing.T) {
		before := g.reads.total()
		for _, bad := range []string{
			"amzn1.ask.account.X/../../services/weather",
			"../services/weather",
			"amzn1.",
			"amzn1.ask.account.A?x=1",
		} {
			a := g.turn("Repos", bad)
			if a.status != http.StatusBadRequest {
				t.Errorf("userId %q: HTTP %d, want 400", bad, a.status)
			}
		}
		if n := g.reads.total(); n != before {
			t.Errorf("malformed userIds caused %d Vault reads", n-before)
		}
	})

	// With a public_url, the unlinked speech is the /link flow of SPEC 7:
	// a one-time code kept in Vault, spoken digit by digit and on a card.
	t.Run("unlinked user with the link flow", func(t *testing.T) {
		linked := h.gateway(cfgVars{"VGW_PUBLIC_URL": "https://voice.example.test"})
		a := linked.turn("Repos", userB)
		m := regexp.MustCompile(`^To use github, open https://voice\.example\.test/link and enter code (\d) (\d) (\d) (\d) (\d) (\d)$`).FindStringSubmatch(a.speech)
		if a.status != http.StatusOK || m == nil {
			t.Fatalf("HTTP %d, speech %q", a.status, a.speech)
		}
		if !strings.Contains(a.card, strings.TrimPrefix(a.speech, "To use github, ")) {
			t.Errorf("card %q does not repeat the code", a.card)
		}
		code := strings.Join(m[1:], "")
		data := h.raw("link-codes/" + code)
		if data["user_id"] != userB || data["service"] != "github" {
			t.Errorf("link-codes/%s holds %v", code, data)
		}
		if again := linked.turn("Repos", userB); again.speech != a.speech {
			t.Errorf("asking again gave %q, want the same code", again.speech)
		}
	})

	// Every path was read from the layout of SPEC 4, each once (cache).
	want := map[string]int{
		"services/weather": 1, "services/maps": 1, "services/news": 1,
		"users/" + userA + "/github": 1, "users/" + userB + "/github": 1,
	}
	if got := g.reads.reads(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Vault reads by path = %v, want %v", got, want)
	}
	if !strings.Contains(h.logs.String(), `"turn failed"`) {
		t.Error("the failed turns were not logged: the leak check would be vacuous")
	}
}

// TestVaultRotationUnderLoad rotates a service secret and a user token in
// Vault while 50 workers run turns; with a long cache_ttl it is the 401 ->
// re-read path that must pick the new value up without a failed turn.
func TestVaultRotationUnderLoad(t *testing.T) {
	const (
		workers  = 50
		duration = 3 * time.Second
		users    = 5
	)
	h := newVaultHarness(t)
	weatherKey := secretValue("wk")
	h.put("services/weather", map[string]any{"api_key": weatherKey})
	h.api.set("weather", weatherKey)
	userIDs := h.linkUsers("LOAD", users)
	g := h.gateway(cfgVars{"VGW_CACHE_TTL": "30s"})

	var (
		turns    atomic.Int64
		failures atomic.Int64
		failMu   sync.Mutex
		failed   []string
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			user := userIDs[w%users]
			for {
				select {
				case <-stop:
					return
				default:
				}
				a := g.turn("Both", user)
				turns.Add(1)
				if a.status != http.StatusOK || a.speech != sayBoth {
					failures.Add(1)
					failMu.Lock()
					if len(failed) < 5 {
						failed = append(failed, fmt.Sprintf("HTTP %d %q", a.status, a.speech))
					}
					failMu.Unlock()
				}
			}
		}(w)
	}

	// Rotate as ops do: write Vault first, then the provider revokes the
	// old value. Alternate the service secret and user 0's token, each
	// path every 1.2 s: a 401 re-reads a path at most once a second
	// (SPEC 10), so faster rotations of one path would wait that out.
	start := time.Now()
	type rotation struct{ key, path, old, new string }
	var rotations []rotation
	for i := 0; time.Since(start) < duration-700*time.Millisecond; i++ {
		time.Sleep(600 * time.Millisecond)
		r := rotation{key: "weather", path: "services/weather", new: secretValue("wk")}
		fields := map[string]any{"api_key": r.new}
		if i%2 == 1 {
			r = rotation{key: "user:" + userIDs[0], path: "users/" + userIDs[0] + "/github", new: secretValue("gho")}
			fields = map[string]any{"access_token": r.new}
		}
		r.old = h.api.current(r.key)
		h.put(r.path, fields)
		h.api.set(r.key, r.new)
		rotations = append(rotations, r)
	}
	time.Sleep(duration - time.Since(start))
	close(stop)
	wg.Wait()
	elapsed := time.Since(start)

	n := turns.Load()
	t.Logf("rotation under load: %d turns in %s (%.0f turns/s) by %d workers, %d rotations, %d upstream 401s, %d Vault reads %v",
		n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), workers, len(rotations), h.api.rejected.Load(), g.reads.total(), g.reads.reads())
	if f := failures.Load(); f > 0 {
		t.Fatalf("%d of %d turns failed, e.g. %v", f, n, failed)
	}
	if n < workers {
		t.Fatalf("only %d turns ran", n)
	}
	if len(rotations) < 2 {
		t.Fatalf("only %d rotations: the secret and the token must each rotate", len(rotations))
	}
	for i, r := range rotations {
		if h.api.saw(r.new) == 0 {
			t.Errorf("rotation %d (%s): the upstream never saw the new value", i, r.key)
		}
		// Only turns already holding the old value meet a 401, once each:
		// after the first re-read the cache has the new value.
		if refused := h.api.refusals(r.old); refused > workers {
			t.Errorf("rotation %d (%s): the old value was refused %d times, more than once per worker", i, r.key, refused)
		}
	}
	if rej := h.api.rejected.Load(); rej > int64(workers*len(rotations)) {
		t.Errorf("%d upstream 401s for %d rotations: more than one per worker and rotation", rej, len(rotations))
	}
	// The re-read is shared: one read per rotation of a path, not one per
	// rejected turn.
	want := map[string]int{}
	for _, u := range userIDs {
		want["users/"+u+"/github"] = 1
	}
	want["services/weather"] = 1
	for _, r := range rotations {
		want[r.path]++
	}
	if got := g.reads.reads(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Vault reads by path = %v, want %v (one per rotation)", got, want)
	}
}

// TestVaultDownMidRun stops Vault after the cache is warm: cached secrets
// keep serving (up to 10 x cache_ttl), uncached paths answer the vault
// speech at once; after a restart the same handler recovers.
func TestVaultDownMidRun(t *testing.T) {
	const ttl = 250 * time.Millisecond
	h := newVaultHarness(t)
	weatherKey, mapsKey, tokA := secretValue("wk"), secretValue("mk"), secretValue("gho")
	seed := func() {
		h.put("services/weather", map[string]any{"api_key": weatherKey})
		h.put("services/maps", map[string]any{"api_key": mapsKey})
		h.put("users/"+userA+"/github", map[string]any{"access_token": tokA})
	}
	seed()
	h.api.set("weather", weatherKey)
	h.api.set("maps", mapsKey)
	h.api.set("user:"+userA, tokA)
	g := h.gateway(cfgVars{"VGW_CACHE_TTL": ttl.String()})

	warmStart := time.Now() // the cached entries were read after this
	g.mustSay(t, "Weather", userA, sayWeather)
	g.mustSay(t, "Repos", userA, sayRepos)
	warmEnd := time.Now() // and before this
	h.vault.Stop()
	// Past cache_ttl, so every turn below tries Vault first.
	time.Sleep(ttl + 50*time.Millisecond)

	const fast = 1500 * time.Millisecond
	for _, tc := range []struct{ name, intent, user, want string }{
		{"cached secret", "Weather", userA, sayWeather},
		{"cached user token", "Repos", userA, sayRepos},
		{"uncached secret", "Maps", userA, sayVault},
		// Vault cannot say whether Bob is linked: the vault speech, not unlinked.
		{"uncached user token", "Repos", userB, sayVault},
	} {
		a := g.mustSay(t, tc.intent, tc.user, tc.want)
		if a.took > fast {
			t.Errorf("%s with Vault down took %s", tc.name, a.took)
		}
	}
	if since := time.Since(warmStart); since > 10*ttl {
		t.Fatalf("the stale checks took %s, beyond 10 x cache_ttl: slow machine?", since)
	}

	// Stale use is bounded by 10 x cache_ttl.
	time.Sleep(10*ttl - time.Since(warmEnd) + 100*time.Millisecond)
	if a := g.mustSay(t, "Weather", userA, sayVault); a.took > fast {
		t.Errorf("vault speech took %s", a.took)
	}

	h.vault.Restart(t)
	seed()
	h.put("users/"+userB+"/github", map[string]any{"access_token": tokA})
	h.api.set("user:"+userB, tokA)
	g.mustSay(t, "Weather", userA, sayWeather)
	g.mustSay(t, "Maps", userA, sayMaps)
	g.mustSay(t, "Repos", userB, sayRepos)
	// A value rotated while Vault was away is read once the entry ages out.
	newKey := secretValue("wk")
	h.put("services/weather", map[string]any{"api_key": newKey})
	h.api.set("weather", newKey)
	g.mustSay(t, "Weather", userA, sayWeather)
	if h.api.saw(newKey) == 0 {
		t.Error("the upstream never saw the key written after the restart")
	}
}

// TestVaultReadsShared runs 200 concurrent turns for several users and
// services: each Vault path is read at most once within cache_ttl.
func TestVaultReadsShared(t *testing.T) {
	const (
		turns = 200
		users = 5
	)
	h := newVaultHarness(t)
	weatherKey, mapsKey := secretValue("wk"), secretValue("mk")
	h.put("services/weather", map[string]any{"api_key": weatherKey})
	h.put("services/maps", map[string]any{"api_key": mapsKey})
	h.api.set("weather", weatherKey)
	h.api.set("maps", mapsKey)
	userIDs := h.linkUsers("READ", users)
	g := h.gateway(cfgVars{"VGW_CACHE_TTL": "30s"})
	intents := []struct{ name, want string }{{"Both", sayBoth}, {"Maps", sayMaps}, {"Repos", sayRepos}, {"Weather", sayWeather}}

	wave := func() []string {
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			bad    []string
			barrer = make(chan struct{})
		)
		for i := 0; i < turns; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				in, user := intents[i%len(intents)], userIDs[i%users]
				<-barrer
				if a := g.turn(in.name, user); a.status != http.StatusOK || a.speech != in.want {
					mu.Lock()
					bad = append(bad, fmt.Sprintf("%s: HTTP %d %q", in.name, a.status, a.speech))
					mu.Unlock()
				}
			}(i)
		}
		close(barrer)
		wg.Wait()
		return bad
	}
	if bad := wave(); len(bad) > 0 {
		t.Fatalf("%d of %d turns failed, e.g. %v", len(bad), turns, bad[0])
	}
	reads := g.reads.reads()
	t.Logf("%d concurrent turns: %d Vault reads %v", turns, g.reads.total(), reads)
	if len(reads) != 2+users {
		t.Errorf("read %d paths, want %d: %v", len(reads), 2+users, reads)
	}
	paths := make([]string, 0, len(reads))
	for p := range reads {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if reads[p] > 1 {
			t.Errorf("%s read %d times by concurrent turns, want 1", p, reads[p])
		}
	}
	if bad := wave(); len(bad) > 0 {
		t.Fatalf("second wave: %d turns failed, e.g. %v", len(bad), bad[0])
	}
	if n := g.reads.total() - len(paths); n > 0 {
		t.Errorf("a second wave within cache_ttl read Vault %d more times", n)
	}
}

// tokenProvider is the token endpoint of testdata/vault.yaml, with
// rotating refresh tokens: each refresh token works once and yields a new,
// distinct access token, which becomes the only one the fake API accepts
// for its user.
type tokenProvider struct {
	*linkingtest.Provider
	clientSecret string
	leaks        *leakCheck

	mu    sync.Mutex
	users map[string]string // valid refresh token -> userId
}

func newTokenProvider(t testing.TB, api *credAPI, leaks *leakCheck) *tokenProvider {
	p := &tokenProvider{clientSecret: secretValue("cs"), leaks: leaks, users: map[string]string{}}
	leaks.secret(p.clientSecret)
	p.Provider = linkingtest.NewProvider(t, linkingtest.Config{
		ClientID:     "voicegw-it",
		ClientSecret: p.clientSecret,
		Delay:        100 * time.Millisecond, // widen the window in which replicas race
		OnIssue: func(redeemed string, tok linkingtest.Token) {
			p.mu.Lock()
			user := p.users[redeemed]
			delete(p.users, redeemed)
			p.users[tok.Refresh] = user
			p.mu.Unlock()
			leaks.secret(tok.Access, tok.Refresh)
			api.set("user:"+user, tok.Access)
		},
	})
	return p
}

// grant registers a refresh token for user.
func (p *tokenProvider) grant(rt, user string) {
	p.mu.Lock()
	p.users[rt] = user
	p.mu.Unlock()
	p.AddRefreshToken(rt)
	p.leaks.secret(rt)
}

// TestVaultRefreshRace runs two independent gateway instances (two stores,
// two handlers) against one Vault: when both see an expiring token at the
// same moment, the check-and-set lock lets exactly one refresh happen and
// both turns succeed with the new token.
func TestVaultRefreshRace(t *testing.T) {
	h := newVaultHarness(t)
	p := newTokenProvider(t, h.api, h.leaks)
	h.put("services/github", map[string]any{"client_secret": p.clientSecret})
	env := cfgVars{"VGW_TOKEN_URL": p.URL, "VGW_CACHE_TTL": "30s"}
	replicas := []*vaultGateway{h.gateway(env), h.gateway(env)}

	// linkExpiring stores a token for user that expires within 60 s.
	linkExpiring := func(user string, expiresIn time.Duration, rt string) string {
		old := secretValue("old")
		h.put("users/"+user+"/github", map[string]any{
			"access_token": old, "refresh_token": rt, "token_type": "Bearer",
			"expires_at": time.Now().Add(expiresIn).UTC().Format(time.RFC3339),
		})
		return old
	}
	// both runs a Repos turn for user on both replicas at the same moment.
	both := func(user string) [2]turnAnswer {
		var out [2]turnAnswer
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, g := range replicas {
			wg.Add(1)
			go func(i int, g *vaultGateway) {
				defer wg.Done()
				<-start
				out[i] = g.turn("Repos", user)
			}(i, g)
		}
		close(start)
		wg.Wait()
		return out
	}
	// checkVault asserts that Vault holds one valid, unlocked token for user.
	checkVault := func(t *testing.T, user string) {
		t.Helper()
		data := h.raw("users/" + user + "/github")
		if data == nil {
			t.Fatalf("users/%s/github is gone", user)
		}
		if data["access_token"] != h.api.current("user:"+user) {
			t.Errorf("Vault's access_token is not the one the upstream accepts")
		}
		if _, locked := data["refresh_lock_until"]; locked {
			t.Errorf("Vault entry still holds the refresh lock")
		}
		exp, err := time.Parse(time.RFC3339, fmt.Sprint(data["expires_at"]))
		if err != nil || time.Until(exp) < 50*time.Minute {
			t.Errorf("expires_at = %v, want about an hour ahead", data["expires_at"])
		}
		if rt := fmt.Sprint(data["refresh_token"]); !strings.HasPrefix(rt, "rt") {
			t.Errorf("the rotated refresh token was not stored")
		}
	}

	t.Run("two replicas refresh once", func(t *testing.T) {
		const rounds = 10
		var perRound []int
		for r := 0; r < rounds; r++ {
			user := fmt.Sprintf("amzn1.ask.account.CAS%02d", r)
			rt := secretValue("rt")
			p.grant(rt, user)
			linkExpiring(user, 30*time.Second, rt)
			calls, issued := p.Counts().TokenRequests, p.Counts().Refreshes
			for i, a := range both(user) {
				if a.status != http.StatusOK || a.speech != sayRepos {
					t.Fatalf("round %d replica %d: HTTP %d %q", r, i, a.status, a.speech)
				}
			}
			perRound = append(perRound, p.Counts().TokenRequests-calls)
			if n := p.Counts().Refreshes - issued; n != 1 {
				t.Fatalf("round %d: %d refreshes, want 1", r, n)
			}
			if n := p.Counts().TokenRequests - calls; n != 1 {
				t.Fatalf("round %d: %d token endpoint calls, want 1", r, n)
			}
			checkVault(t, user)
			// Both replicas now use the new token from their caches.
			for _, g := range replicas {
				g.mustSay(t, "Repos", user, sayRepos)
			}
			if n := p.Counts().TokenRequests - calls; n != 1 {
				t.Fatalf("round %d: later turns refreshed again", r)
			}
		}
		t.Logf("token endpoint calls per round: %v", perRound)
	})

	t.Run("401 with unchanged token refreshes", func(t *testing.T) {
		user := "amzn1.ask.account.REVOKED"
		rt := secretValue("rt")
		p.grant(rt, user)
		revoked := linkExpiring(user, time.Hour, rt) // not expiring: used as is
		issued := p.Counts().Refreshes
		replicas[0].mustSay(t, "Repos", user, sayRepos)
		if n := p.Counts().Refreshes - issued; n != 1 {
			t.Fatalf("%d refreshes after the 401, want 1", n)
		}
		if h.api.saw(revoked) != 1 {
			t.Errorf("the upstream saw the revoked token %d times, want 1", h.api.saw(revoked))
		}
		checkVault(t, user)
		// The other replica has nothing cached: it reads the new token.
		replicas[1].mustSay(t, "Repos", user, sayRepos)
		if n := p.Counts().Refreshes - issued; n != 1 {
			t.Fatalf("%d refreshes in all, want 1", n)
		}
	})

	t.Run("refused refresh answers unlinked", func(t *testing.T) {
		user := "amzn1.ask.account.REFUSED"
		linkExpiring(user, 20*time.Second, secretValue("rt")) // unknown to the provider
		start := time.Now()
		for i, a := range both(user) {
			if a.status != http.StatusOK || a.speech != sayUnlinked {
				t.Errorf("replica %d: HTTP %d %q, want the unlinked speech", i, a.status, a.speech)
			}
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("refused refresh took %s", took)
		}
		data := h.raw("users/" + user + "/github")
		if data == nil {
			t.Fatal("the entry is gone")
		}
		if _, locked := data["refresh_lock_until"]; locked {
			t.Errorf("a refused refresh left the lock behind")
		}
		// Again, from one replica: still unlinked, not stuck on a lock.
		replicas[0].mustSay(t, "Repos", user, sayUnlinked)
	})
}
