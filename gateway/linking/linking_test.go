package linking

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/auth"
	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/gateway/inmem"
	"github.com/voicegw/voicegw/gateway/linking/linkingtest"
)

const (
	testPublicURL    = "https://voice.example.com"
	testClientID     = "voicegw-unit"
	testClientSecret = "cs-unit-7f3a9c1e55d04b2a"
	testUser         = "amzn1.ask.account.UNIT_A"
	testUser2        = "amzn1.ask.account.UNIT_B"
)

// testYAML is the configuration of the unit tests: two linked services
// with oauth2 at the fake provider (%[1]s), one without PKCE.
const testYAML = `version: 1
server:
  public_url: ` + testPublicURL + `/
alexa:
  verify: false
services:
  github:
    base_url: https://api.example.com
    auth:
      type: linked
    oauth2:
      auth_url: %[1]s/authorize
      token_url: %[1]s/token
      client_id: ` + testClientID + `
      scopes: [repo, read:user]
  legacy:
    base_url: https://legacy.example.com
    auth:
      type: linked
    oauth2:
      auth_url: %[1]s/authorize
      token_url: %[1]s/token
      client_id: ` + testClientID + `
      pkce: false
skills:
  unit:
    invocation: unit test
    launch:
      say: Welcome.
    help: Help.
    stop: Bye.
    fallback: Sorry.
    intents:
      Repos:
        samples: ["repos"]
        call:
          service: github
          path: /repos
        say: Done.
      Legacy:
        samples: ["legacy"]
        call:
          service: legacy
          path: /x
        say: Done.
`

// clock is a settable time source for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// syncBuffer is a log sink safe for concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fixture is a linker over an in-memory store, with a fake provider.
type fixture struct {
	l        *Linker
	store    *inmem.Store
	clock    *clock
	provider *linkingtest.Provider
	cfg      *config.Config
	logs     *syncBuffer
	// alice is the browser MustCallback uses.
	alice *browser
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	p := linkingtest.NewProvider(t, linkingtest.Config{ClientID: testClientID, ClientSecret: testClientSecret})
	cfg, problems := config.Parse("unit.yaml", fmt.Appendf(nil, testYAML, p.URL), func(string) (string, bool) { return "", false })
	for _, pr := range problems {
		if !pr.Warning {
			t.Fatalf("config: %v", pr.Error())
		}
	}
	store := inmem.New(map[string]map[string]string{
		gateway.ServicePath("github"): {auth.FieldClientSecret: testClientSecret},
		gateway.ServicePath("legacy"): {auth.FieldClientSecret: testClientSecret},
	})
	clk := &clock{t: time.Date(2030, 5, 17, 9, 30, 0, 0, time.UTC)}
	logs := &syncBuffer{}
	l, err := New(cfg, store, Options{
		Logger:     slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		HTTPClient: p.Client(),
		Now:        clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{l: l, store: store, clock: clk, provider: p, cfg: cfg, logs: logs, alice: newBrowser("192.0.2.10:4000")}
}

// MustCode speaks the instructions for user and service and returns the
// code in them.
func (f *fixture) MustCode(t *testing.T, user, service string) string {
	t.Helper()
	text, err := f.l.Instructions(context.Background(), f.cfg.Services[service], user)
	if err != nil {
		t.Fatalf("Instructions: %v", err)
	}
	m := spokenPattern.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("spoken %q does not match %v", text, spokenPattern)
	}
	return strings.Join(m[3:], "")
}

var spokenPattern = regexp.MustCompile(`^To use (\S+), open (\S+)/link and enter code (\d) (\d) (\d) (\d) (\d) (\d)$`)

func (f *fixture) serve(r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	f.l.ServeHTTP(rec, r)
	return rec
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// form GETs /link from client address remote and returns the CSRF cookie
// and the token in the form.
func (f *fixture) form(t *testing.T, remote string) (*http.Cookie, string) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/link", nil)
	r.RemoteAddr = remote
	rec := f.serve(r)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /link = %d", rec.Code)
	}
	m := csrfField.FindStringSubmatch(rec.Body.String())
	if m == nil {
		t.Fatalf("no csrf field in %s", rec.Body)
	}
	for _, c := range rec.Result().Cookies() {
		if c.Name == f.l.cookieName(csrfCookie) {
			return c, m[1]
		}
	}
	t.Fatal("GET /link set no csrf cookie")
	return nil, ""
}

// post submits code to POST /link with the given cookie (nil: none) and
// form token.
func (f *fixture) post(remote string, cookie *http.Cookie, csrf, code string) *httptest.ResponseRecorder {
	form := url.Values{"code": {code}, "csrf": {csrf}}
	r := httptest.NewRequest(http.MethodPost, "/link", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.RemoteAddr = remote
	if cookie != nil {
		r.AddCookie(&http.Cookie{Name: cookie.Name, Value: cookie.Value})
	}
	return f.serve(r)
}

// submit enters code with a fresh form from a new browser at remote.
func (f *fixture) submit(t *testing.T, remote, code string) *httptest.ResponseRecorder {
	t.Helper()
	return newBrowser(remote).submit(t, f, code)
}

// MustCallback enters code in alice's browser, follows the redirect to the
// provider and returns the callback target (path and query) the provider
// sends the browser to; f.alice.get serves it as that browser.
func (f *fixture) MustCallback(t *testing.T, code string) string {
	t.Helper()
	return f.alice.mustCallback(t, f, code)
}

// browser is one browser: a client address and its cookie jar.
type browser struct {
	remote  string
	cookies map[string]*http.Cookie
}

func newBrowser(remote string) *browser {
	return &browser{remote: remote, cookies: map[string]*http.Cookie{}}
}

// do serves r from this browser: its address and cookies go with it, and
// the cookies the answer sets are kept.
func (b *browser) do(f *fixture, r *http.Request) *httptest.ResponseRecorder {
	r.RemoteAddr = b.remote
	for _, c := range b.cookies {
		r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	rec := f.serve(r)
	for _, c := range rec.Result().Cookies() {
		if c.MaxAge < 0 {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c
		}
	}
	return rec
}

func (b *browser) get(f *fixture, target string) *httptest.ResponseRecorder {
	return b.do(f, httptest.NewRequest(http.MethodGet, target, nil))
}

// submit GETs the form and posts code with its CSRF token.
func (b *browser) submit(t *testing.T, f *fixture, code string) *httptest.ResponseRecorder {
	t.Helper()
	rec := b.get(f, "/link")
	m := csrfField.FindStringSubmatch(rec.Body.String())
	if rec.Code != http.StatusOK || m == nil {
		t.Fatalf("GET /link = %d without a csrf field", rec.Code)
	}
	form := url.Values{"code": {code}, "csrf": {m[1]}}
	r := httptest.NewRequest(http.MethodPost, "/link", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(f, r)
}

// mustCallback enters code, follows the redirect to the provider and
// returns the callback target the provider sends this browser to.
func (b *browser) mustCallback(t *testing.T, f *fixture, code string) string {
	t.Helper()
	rec := b.submit(t, f, code)
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("POST /link = %d, want 303; body %s", rec.Code, rec.Body)
	}
	return f.provider.MustAuthorize(t, rec.Header().Get("Location")).RequestURI()
}

// query returns the query of a callback target.
func query(t *testing.T, target string) url.Values {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

func (f *fixture) entry(t *testing.T, path string) *gateway.Entry {
	t.Helper()
	e, err := f.store.Read(context.Background(), path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return e
}

// assertNoSecretsInLogs fails when a log line holds a secret of the flow.
func (f *fixture) assertNoSecretsInLogs(t *testing.T) {
	t.Helper()
	logs := f.logs.String()
	for _, s := range append(f.provider.Secrets(), testClientSecret) {
		if s != "" && strings.Contains(logs, s) {
			t.Errorf("logs contain the secret %q:\n%s", s, logs)
		}
	}
	if strings.Contains(logs, "Bearer") {
		t.Errorf("logs contain an Authorization value:\n%s", logs)
	}
}

func TestStateSealing(t *testing.T) {
	f := newFixture(t)
	aead, err := f.l.stateAEAD(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	other := &Linker{now: f.clock.Now}
	otherAEAD, err := other.setKey(bytes.Repeat([]byte{8}, 32))
	if err != nil {
		t.Fatal(err)
	}
	now := f.clock.Now()
	good := sealState(aead, state{Code: "123456", Nonce: "n0nce", Expires: now.Add(FlowTTL).Unix()})
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	tests := []struct {
		name    string
		raw     string
		advance time.Duration
		wantErr string
	}{
		{name: "valid", raw: good},
		{name: "valid until the last second", raw: good, advance: FlowTTL},
		{name: "tampered nonce", raw: flip(good, 3), wantErr: "authenticate"},
		{name: "tampered payload", raw: flip(good, len(good)/2), wantErr: "authenticate"},
		{name: "tampered tag", raw: flip(good, len(good)-3), wantErr: "authenticate"},
		{name: "truncated", raw: good[:len(good)-4], wantErr: "authenticate"},
		{name: "expired", raw: good, advance: FlowTTL + time.Second, wantErr: "expired"},
		{name: "sealed with another key", raw: sealState(otherAEAD, state{Code: "123456", Nonce: "n0nce", Expires: now.Add(FlowTTL).Unix()}), wantErr: "authenticate"},
		{name: "empty", raw: "", wantErr: "malformed"},
		{name: "not base64", raw: "!!!!", wantErr: "malformed"},
		{name: "too short", raw: "AAAA", wantErr: "malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f.clock.Set(now.Add(tc.advance))
			st, err := f.l.openState(aead, tc.raw)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("openState: %v", err)
				}
				if st.Code != "123456" || st.Nonce != "n0nce" {
					t.Fatalf("state = %+v", st)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("openState = %+v, %v; want an error about %q", st, err, tc.wantErr)
			}
		})
	}
	// Two seals of the same state differ (a fresh nonce each), and the
	// code cannot be read from either.
	again := sealState(aead, state{Code: "123456", Nonce: "n0nce", Expires: now.Add(FlowTTL).Unix()})
	if again == good {
		t.Fatal("two seals of one state are equal")
	}
	for _, raw := range []string{good, again} {
		b, _ := base64.RawURLEncoding.DecodeString(raw)
		if bytes.Contains(b, []byte("123456")) || strings.Contains(raw, "123456") || bytes.Contains(b, []byte(`"c"`)) {
			t.Fatalf("the state %s shows its content", raw)
		}
	}
}

func TestStateKeyIsCreatedOnceInTheStore(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a1, err := f.l.stateAEAD(ctx)
	if err != nil {
		t.Fatalf("stateAEAD: %v", err)
	}
	e := f.entry(t, stateKeyPath)
	if got, _ := base64.StdEncoding.DecodeString(e.Data["key"].Reveal()); len(got) != 32 {
		t.Fatalf("the state key in the store is %d bytes", len(got))
	}
	// A second replica over the same store agrees on the key: it opens
	// the first one's states.
	other, err := New(f.cfg, f.store, Options{Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	a2, err := other.stateAEAD(ctx)
	if err != nil {
		t.Fatal(err)
	}
	raw := sealState(a1, state{Code: "000001", Nonce: "x", Expires: f.clock.Now().Add(time.Minute).Unix()})
	if st, err := other.openState(a2, raw); err != nil || st.Code != "000001" {
		t.Fatalf("second replica cannot open the first one's state: %+v, %v", st, err)
	}
	if v := f.entry(t, stateKeyPath).Version; v != e.Version {
		t.Fatalf("the key was written again (version %d -> %d)", e.Version, v)
	}
}

func TestInstructions(t *testing.T) {
	f := newFixture(t)
	text, err := f.l.Instructions(context.Background(), f.cfg.Services["github"], testUser)
	if err != nil {
		t.Fatal(err)
	}
	m := spokenPattern.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("spoken %q, want the shape %q", text, "To use github, open "+testPublicURL+"/link and enter code 4 7 2 9 1 3")
	}
	if m[1] != "github" || m[2] != testPublicURL {
		t.Fatalf("spoken %q names service %q and URL %q", text, m[1], m[2])
	}
	code := strings.Join(m[3:], "")
	if want := fmt.Sprintf("To use github, open %s/link and enter code %s", testPublicURL, strings.Join(strings.Split(code, ""), " ")); text != want {
		t.Fatalf("spoken %q, want %q", text, want)
	}
	e := f.entry(t, "link-codes/"+code)
	if got := e.Data["user_id"].Reveal(); got != testUser {
		t.Errorf("user_id = %q", got)
	}
	if got := e.Data["service"].Reveal(); got != "github" {
		t.Errorf("service = %q", got)
	}
	if got, want := e.Data["expires_at"].Reveal(), f.clock.Now().Add(10*time.Minute).Format(time.RFC3339); got != want {
		t.Errorf("expires_at = %q, want %q (10 minutes)", got, want)
	}
	p := f.entry(t, "link-codes/pending/"+testUser+"/github")
	if got := p.Data["code"].Reveal(); got != code {
		t.Errorf("pending index holds %q, want %q", got, code)
	}
}

func TestInstructionsRefuses(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	plain := &config.Service{Name: "plain", Auth: config.ServiceAuth{Type: config.AuthLinked}}
	if _, err := f.l.Instructions(ctx, plain, testUser); err == nil {
		t.Error("a service without oauth2 got a code")
	}
	for _, bad := range []string{"", "amzn1.", "user/../x", "amzn1.ask.account.A/../../services/github"} {
		if _, err := f.l.Instructions(ctx, f.cfg.Services["github"], bad); err == nil {
			t.Errorf("user id %q got a code", bad)
		}
	}
	f.cfg.Server.PublicURL = ""
	if _, err := f.l.Instructions(ctx, f.cfg.Services["github"], testUser); err == nil {
		t.Error("a server without public_url gave a code")
	}
}

func TestCodeRepeatsWithinTTL(t *testing.T) {
	f := newFixture(t)
	first := f.MustCode(t, testUser, "github")
	if len(first) != 6 {
		t.Fatalf("code %q is not six digits", first)
	}
	f.clock.Add(CodeTTL - time.Second)
	if again := f.MustCode(t, testUser, "github"); again != first {
		t.Fatalf("asking again within the TTL gave %s, want the same %s", again, first)
	}
	if other := f.MustCode(t, testUser2, "github"); other == first {
		t.Fatal("another user got the same code")
	}
	if other := f.MustCode(t, testUser, "legacy"); other == first {
		t.Fatal("another service got the same code")
	}
	f.clock.Add(time.Second)
	renewed := f.MustCode(t, testUser, "github")
	if renewed == first {
		t.Fatalf("after expiry the same code %s came back", first)
	}
	// The expired code stays taken.
	if e := f.entry(t, "link-codes/"+first); e.Data["user_id"].Reveal() != testUser {
		t.Fatalf("expired code entry was overwritten: %v", e.Data)
	}
	if got := f.entry(t, "link-codes/pending/"+testUser+"/github").Data["code"].Reveal(); got != renewed {
		t.Fatalf("pending index %q, want the new code %q", got, renewed)
	}
	// The expired code no longer works on the page.
	if rec := f.submit(t, "192.0.2.1:1", first); rec.Code != http.StatusGone {
		t.Fatalf("POST expired code = %d, want 410", rec.Code)
	}
}

// plantingStore plants a used code at the path of the first code the
// linker tries to create, as if that number had been used before.
type plantingStore struct {
	*inmem.Store
	mu      sync.Mutex
	planted string
}

func (s *plantingStore) Write(ctx context.Context, path string, data gateway.SecretData, cas int) (int, error) {
	s.mu.Lock()
	if s.planted == "" && cas == 0 && strings.HasPrefix(path, "link-codes/") && !strings.HasPrefix(path, "link-codes/pending/") {
		s.planted = strings.TrimPrefix(path, "link-codes/")
		_, _ = s.Store.Write(ctx, path, gateway.SecretData{
			"code": gateway.Secret(s.planted), "user_id": testUser2, "service": "github",
			"expires_at": "2000-01-01T00:00:00Z", "used": "2000-01-01T00:00:00Z",
		}, -1)
	}
	s.mu.Unlock()
	return s.Store.Write(ctx, path, data, cas)
}

func TestUsedCodeIsNeverHandedOutAgain(t *testing.T) {
	t.Run("a used code stays burnt after linking", func(t *testing.T) {
		f := newFixture(t)
		code := f.MustCode(t, testUser, "github")
		if rec := f.alice.get(f, f.MustCallback(t, code)); rec.Code != http.StatusOK {
			t.Fatalf("callback = %d: %s", rec.Code, rec.Body)
		}
		e := f.entry(t, "link-codes/"+code)
		if e.Data["used"] == "" {
			t.Fatalf("used code entry lost its used mark: %v", e.Data)
		}
		if _, err := f.store.Read(context.Background(), "link-codes/pending/"+testUser+"/github"); !errors.Is(err, gateway.ErrNotFound) {
			t.Fatalf("pending index still there after linking: %v", err)
		}
		if next := f.MustCode(t, testUser, "github"); next == code {
			t.Fatalf("the used code %s was handed out again", code)
		}
		if rec := f.submit(t, "192.0.2.1:1", code); rec.Code != http.StatusGone {
			t.Fatalf("POST used code = %d, want 410", rec.Code)
		}
	})
	t.Run("creation never overwrites a used code", func(t *testing.T) {
		f := newFixture(t)
		ps := &plantingStore{Store: f.store}
		l, err := New(f.cfg, ps, Options{Now: f.clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		text, err := l.Instructions(context.Background(), f.cfg.Services["github"], testUser)
		if err != nil {
			t.Fatal(err)
		}
		m := spokenPattern.FindStringSubmatch(text)
		if m == nil {
			t.Fatalf("spoken %q", text)
		}
		if ps.planted == "" {
			t.Fatal("the linker created no code with check-and-set 0")
		}
		if got := strings.Join(m[3:], ""); got == ps.planted {
			t.Fatalf("the used code %s was handed out", got)
		}
		if e := f.entry(t, "link-codes/"+ps.planted); e.Data["used"] == "" || e.Data["user_id"].Reveal() != testUser2 {
			t.Fatalf("the used code's entry was overwritten: %v", e.Data)
		}
	})
}

func TestWrongCodeLimiter(t *testing.T) {
	f := newFixture(t)
	code := f.MustCode(t, testUser, "github")
	wrong := fmt.Sprintf("%06d", (atoi(code)+1)%1_000_000)
	const client = "198.51.100.7:5000"
	for i := 1; i <= WrongCodes; i++ {
		rec := f.submit(t, client, wrong)
		if rec.Code != http.StatusBadRequest {
			t.Fatalf("wrong code #%d = %d, want 400", i, rec.Code)
		}
		if !strings.Contains(rec.Body.String(), "not valid") {
			t.Fatalf("wrong code #%d page has no error message: %s", i, rec.Body)
		}
	}
	rec := f.submit(t, client, wrong)
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("wrong code #%d = %d, want 429", WrongCodes+1, rec.Code)
	}
	if rec.Header().Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	if !strings.Contains(rec.Body.String(), "Too many") {
		t.Errorf("429 page: %s", rec.Body)
	}
	// Once limited, even the right code waits: guessing must not go on.
	if rec := f.submit(t, "198.51.100.7:5001", code); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("right code from the limited address = %d, want 429", rec.Code)
	}
	// Another address is not affected, wrong or right.
	if rec := f.submit(t, "203.0.113.9:5000", wrong); rec.Code != http.StatusBadRequest {
		t.Fatalf("wrong code from another address = %d, want 400", rec.Code)
	}
	if rec := f.submit(t, "[2001:db8::1]:443", code); rec.Code != http.StatusSeeOther {
		t.Fatalf("right code from another address = %d, want 303: %s", rec.Code, rec.Body)
	}
}

func TestMalformedCodesCountAsWrong(t *testing.T) {
	f := newFixture(t)
	const client = "198.51.100.8:1"
	for _, c := range []string{"", "12345", "1234567", "abcdef", "12 34 5x", "999999", "<script>", "00000000000", "123-45", "１２３４５６"} {
		rec := f.submit(t, client, c)
		if rec.Code != http.StatusBadRequest {
			t.Fatalf("code %q = %d, want 400", c, rec.Code)
		}
		if strings.Contains(rec.Body.String(), "<script>") {
			t.Fatalf("the page echoes input unescaped: %s", rec.Body)
		}
	}
	if rec := f.submit(t, client, "111111"); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("after %d malformed codes: %d, want 429", WrongCodes, rec.Code)
	}
}

func TestCodeInputIsNormalised(t *testing.T) {
	for _, tc := range []struct{ name, format string }{
		{"plain", "%s"},
		{"spaces as spoken", "%c %c %c %c %c %c"},
		{"dash", "%c%c%c-%c%c%c"},
		{"surrounding spaces", "  %s  "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			code := f.MustCode(t, testUser, "github")
			var in string
			if strings.Count(tc.format, "%") == 1 {
				in = fmt.Sprintf(tc.format, code)
			} else {
				args := []any{}
				for _, r := range code {
					args = append(args, r)
				}
				in = fmt.Sprintf(tc.format, args...)
			}
			if rec := f.submit(t, "192.0.2.3:1", in); rec.Code != http.StatusSeeOther {
				t.Fatalf("POST %q = %d, want 303", in, rec.Code)
			}
		})
	}
}

func TestCSRF(t *testing.T) {
	tests := []struct {
		name   string
		cookie func(c *http.Cookie) *http.Cookie
		token  func(tok string) string
	}{
		{"no cookie", func(*http.Cookie) *http.Cookie { return nil }, func(tok string) string { return tok }},
		{"mismatched token", func(c *http.Cookie) *http.Cookie { return c }, func(tok string) string { return tok[:len(tok)-1] + "x" }},
		{"no token in the form", func(c *http.Cookie) *http.Cookie { return c }, func(string) string { return "" }},
		{"empty cookie and token", func(c *http.Cookie) *http.Cookie { return &http.Cookie{Name: c.Name, Value: ""} }, func(string) string { return "" }},
		{"token of another form", func(c *http.Cookie) *http.Cookie { return c }, func(string) string { return "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			code := f.MustCode(t, testUser, "github")
			before := f.entry(t, "link-codes/"+code)
			c, tok := f.form(t, "192.0.2.4:1")
			rec := f.post("192.0.2.4:1", tc.cookie(c), tc.token(tok), code)
			if rec.Code != http.StatusForbidden {
				t.Fatalf("POST = %d, want 403", rec.Code)
			}
			if rec.Header().Get("Location") != "" {
				t.Fatalf("403 redirects to %s", rec.Header().Get("Location"))
			}
			if !csrfField.MatchString(rec.Body.String()) || !strings.Contains(rec.Body.String(), `role="alert"`) {
				t.Fatalf("403 page is not the form with an error: %s", rec.Body)
			}
			after := f.entry(t, "link-codes/"+code)
			if after.Version != before.Version || after.Data["nonce"] != "" || after.Data["used"] != "" {
				t.Fatalf("the code was consumed: %v -> %v", before.Data, after.Data)
			}
			// The code still works with a proper form.
			if rec := f.submit(t, "192.0.2.4:1", code); rec.Code != http.StatusSeeOther {
				t.Fatalf("POST with a proper form = %d, want 303", rec.Code)
			}
		})
	}
}

func TestCSRFCookie(t *testing.T) {
	f := newFixture(t)
	c, tok := f.form(t, "192.0.2.5:1")
	if c.Value != tok || len(tok) < 32 {
		t.Fatalf("cookie %q and form token %q", c.Value, tok)
	}
	// public_url is https: the cookie is __Host- prefixed, so it must be
	// Secure, host-only and for path /.
	if c.Name != "__Host-"+csrfCookie || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Domain != "" {
		t.Fatalf("cookie attributes: %+v", c)
	}
	if c2, tok2 := f.form(t, "192.0.2.5:1"); c2.Value == c.Value || tok2 == tok {
		t.Fatal("two forms got the same CSRF token")
	}
}

func TestSubmitRedirectsToProvider(t *testing.T) {
	for _, tc := range []struct {
		service string
		pkce    bool
		scope   string
	}{
		{"github", true, "repo read:user"},
		{"legacy", false, ""},
	} {
		t.Run(tc.service, func(t *testing.T) {
			f := newFixture(t)
			code := f.MustCode(t, testUser, tc.service)
			rec := f.submit(t, "192.0.2.6:1", code)
			if rec.Code != http.StatusSeeOther {
				t.Fatalf("POST = %d, want 303: %s", rec.Code, rec.Body)
			}
			loc, err := url.Parse(rec.Header().Get("Location"))
			if err != nil {
				t.Fatal(err)
			}
			if got := loc.Scheme + "://" + loc.Host + loc.Path; got != f.provider.URL+"/authorize" {
				t.Fatalf("redirect to %s, want the auth_url", got)
			}
			q := loc.Query()
			want := map[string]string{
				"response_type": "code",
				"client_id":     testClientID,
				"redirect_uri":  testPublicURL + "/link/callback",
				"scope":         tc.scope,
			}
			for k, v := range want {
				if q.Get(k) != v {
					t.Errorf("%s = %q, want %q", k, q.Get(k), v)
				}
			}
			e := f.entry(t, "link-codes/"+code)
			aead, err := f.l.stateAEAD(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			st, err := f.l.openState(aead, q.Get("state"))
			if err != nil {
				t.Fatalf("state does not open: %v", err)
			}
			if st.Code != code || st.Nonce == "" || st.Nonce != e.Data["nonce"].Reveal() {
				t.Fatalf("state %+v is not bound to the code entry %v", st, e.Data)
			}
			if strings.Contains(loc.String(), code) || strings.Contains(loc.String(), testUser) {
				t.Fatalf("the provider URL shows the code or the user: %s", loc)
			}
			// The browser that entered the code got the binding cookie,
			// and the entry keeps only its hash.
			var binding *http.Cookie
			for _, c := range rec.Result().Cookies() {
				if c.Name == "__Host-"+bindingCookie {
					binding = c
				}
			}
			if binding == nil || len(binding.Value) < 40 {
				t.Fatalf("no binding cookie in %v", rec.Result().Cookies())
			}
			if !binding.HttpOnly || !binding.Secure || binding.SameSite != http.SameSiteLaxMode || binding.Path != "/" || binding.Domain != "" {
				t.Fatalf("binding cookie attributes: %+v", binding)
			}
			if got := e.Data[fieldBrowser].Reveal(); got != browserHash(binding.Value).Reveal() || strings.Contains(got, binding.Value) {
				t.Fatalf("entry browser %q is not the hash of the cookie", got)
			}
			if e.Data[fieldSubmissions].Reveal() != "1" {
				t.Fatalf("submissions = %q, want 1", e.Data[fieldSubmissions])
			}
			verifier := e.Data["pkce_verifier"].Reveal()
			if !tc.pkce {
				if verifier != "" || q.Has("code_challenge") || q.Has("code_challenge_method") {
					t.Fatalf("PKCE sent with pkce: false: %v", q)
				}
				return
			}
			if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") != linkingtest.S256(verifier) {
				t.Fatalf("code_challenge %q (%s) does not match the stored verifier", q.Get("code_challenge"), q.Get("code_challenge_method"))
			}
			if strings.Contains(loc.String(), verifier) {
				t.Fatal("the verifier itself went to the provider")
			}
		})
	}
}

func TestCallbackLinks(t *testing.T) {
	for _, service := range []string{"github", "legacy"} {
		t.Run(service, func(t *testing.T) {
			f := newFixture(t)
			ctx := context.Background()
			// An earlier link is replaced.
			if _, err := f.store.Write(ctx, gateway.UserPath(testUser, service), gateway.SecretData{
				auth.FieldAccessToken: "old-token", auth.FieldRefreshToken: "old-refresh", "extra": "x",
			}, -1); err != nil {
				t.Fatal(err)
			}
			code := f.MustCode(t, testUser, service)
			rec := f.alice.get(f, f.MustCallback(t, code))
			if rec.Code != http.StatusOK {
				t.Fatalf("callback = %d: %s", rec.Code, rec.Body)
			}
			body := rec.Body.String()
			for _, want := range []string{"Account linked", "is now linked", "go back to Alexa"} {
				if !strings.Contains(body, want) {
					t.Errorf("success page lacks %q: %s", want, body)
				}
			}
			e := f.entry(t, gateway.UserPath(testUser, service))
			tok := f.provider.LastToken()
			if e.Data[auth.FieldAccessToken].Reveal() != tok.Access || e.Data[auth.FieldRefreshToken].Reveal() != tok.Refresh {
				t.Fatalf("stored %v, want the provider's tokens", e.Data)
			}
			if e.Data[auth.FieldTokenType].Reveal() != "Bearer" || e.Data["extra"] != "" {
				t.Fatalf("stored entry %v", e.Data)
			}
			exp, err := time.Parse(time.RFC3339, e.Data[auth.FieldExpiresAt].Reveal())
			if err != nil || time.Until(exp) < 50*time.Minute || time.Until(exp) > 61*time.Minute {
				t.Fatalf("expires_at %q (%v), want about an hour from now", e.Data[auth.FieldExpiresAt], err)
			}
			f.assertNoSecretsInLogs(t)
		})
	}
}

func TestCallbackFailures(t *testing.T) {
	tests := []struct {
		name string
		// run drives the flow to the failing request from a fresh code.
		run        func(t *testing.T, f *fixture, code string) *httptest.ResponseRecorder
		wantStatus int
		wantText   string
		// burnt: the code is marked used afterwards.
		burnt bool
	}{
		{
			name: "replayed callback",
			run: func(t *testing.T, f *fixture, code string) *httptest.ResponseRecorder {
				cb := f.MustCallback(t, code)
				if rec := f.alice.get(f, cb); rec.Code != http.StatusOK {
					t.Fatalf("first callback = %d", rec.Code)
				}
				return f.alice.get(f, cb)
			},
			wantStatus: http.StatusGone, wantText: "already used", burnt: true,
		},
		{
			name: "garbage state",
			run: func(t *testing.T, f *fixture, code string) *httptest.ResponseRecorder {
				f.MustCallback(t, code)
				return f.alice.get(f, "/link/callback?code=abc&state=garbage")
			},
			wantStatus: http.StatusBadRequest, wantText: "not valid",
		},
		{
			name: "no state",
			run: func(t *testing.T, f *fixture, code string) *httptest.ResponseRecorder {
				return f.alice.get(f, "/link/callback?code=abc")
			},
			wantStatus: http.StatusBadRequest, wantText: "not valid",
		},
		{
			name: "tampered state",
			run: func(t *testing.T, f *fixture, code string) *httptest.ResponseRecorder {
				q := query(t, f.MustCallback(t, code))
				st := q.Get("state")
				q.Set("state", st[:len(st)-2]+"AA")
				return f.alice.get(f, "/link/callback?"+q.Encode())
			},
			wantStatus: http.StatusBadRequest, wantText: "not valid",
		},
		{
			name: "state sealed with another key",
			run: func(t *testing.T, f *fixture, code string) *httptest.ResponseRecorder {
				q := query(t, f.MustCallback(t, code))
				e := f.entry(t, "link-codes/"+code)
				key := make([]byte, 32)
				_, _ = rand.Read(key)
				aead, err := (&Linker{}).setKey(key)
				if err != nil {
					t.Fatal(err)
				}
				q.Set("state", sealState(aead, state{Code: code, Nonce: e.Data["nonce"].Reveal(), Expires: f.clock.Now().Add(time.Minute).Unix()}))
				return f.alice.get(f, "/link/callback?"+q.Encode())
			},
			wantStatus: http.StatusBadRequest, wantText: "not valid",
		},
		{
			name: "state of an earlier submit of the same code",
			run: func(t *testing.T, f *fixture, code string) *httptest.ResponseRecorder {
				old := f.MustCallback(t, code)
				f.MustCallback(t, code) // the user pressed back and submitted again
				return f.alice.get(f, old)
			},
			wantStatus: http.StatusBadRequest, wantText: "not valid",
		},
		{
			// The code's expiry counts when it is entered; the trip
			// through the provider is bounded by the state's FlowTTL.
			name: "state expired while at the provider",
			run: func(t *testing.T, f *fixture, code string) *httptest.ResponseRecorder {
				cb := f.MustCallback(t, code)
				f.clock.Add(FlowTTL + time.Second)
				return f.alice.get(f, cb)
			},
			wantStatus: http.StatusBadRequest, wantText: "not valid",
		},
		{
			name: "user denied at the provider",
			run: func(t *testing.T, f *fixture, code string) *httptest.ResponseRecorder {
				f.provider.SetDeny(true)
				return f.alice.get(f, f.MustCallback(t, code))
			},
			wantStatus: http.StatusBadRequest, wantText: "cancelled",
		},
		{
			name: "provider error",
			run: func(t *testing.T, f *fixture, code string) *httptest.ResponseRecorder {
				q := query(t, f.MustCallback(t, code))
				q.Del("code")
				q.Set("error", "server_error")
				q.Set("error_description", "secret detail "+testClientSecret)
				return f.alice.get(f, "/link/callback?"+q.Encode())
			},
			wantStatus: http.StatusBadRequest, wantText: "did not link",
		},
		{
			name: "callback without code",
			run: func(t *testing.T, f *fixture, code string) *httptest.ResponseRecorder {
				q := query(t, f.MustCallback(t, code))
				q.Del("code")
				return f.alice.get(f, "/link/callback?"+q.Encode())
			},
			wantStatus: http.StatusBadRequest, wantText: "no authorization",
		},
		{
			name: "provider refuses the exchange",
			run: func(t *testing.T, f *fixture, code string) *httptest.ResponseRecorder {
				q := query(t, f.MustCallback(t, code))
				q.Set("code", "not-issued")
				return f.alice.get(f, "/link/callback?"+q.Encode())
			},
			wantStatus: http.StatusBadGateway, wantText: "did not accept", burnt: true,
		},
		{
			name: "wrong client secret in the store",
			run: func(t *testing.T, f *fixture, code string) *httptest.ResponseRecorder {
				cb := f.MustCallback(t, code)
				_, _ = f.store.Write(context.Background(), gateway.ServicePath("github"), gateway.SecretData{auth.FieldClientSecret: "cs-wrong-secret-value"}, -1)
				return f.alice.get(f, cb)
			},
			wantStatus: http.StatusBadGateway, wantText: "did not accept", burnt: true,
		},
		{
			name: "code expired before submit",
			run: func(t *testing.T, f *fixture, code string) *httptest.ResponseRecorder {
				f.clock.Add(CodeTTL)
				return f.submit(t, "192.0.2.20:1", code)
			},
			wantStatus: http.StatusGone, wantText: "expired",
		},
		{
			// The account-takeover attack of issue 11: the attacker
			// enters her own code and sends the provider URL to a victim,
			// whose browser never saw voicegw.
			name: "provider URL opened in another browser",
			run: func(t *testing.T, f *fixture, code string) *httptest.ResponseRecorder {
				cb := f.MustCallback(t, code)
				return newBrowser("203.0.113.66:1").get(f, cb)
			},
			wantStatus: http.StatusForbidden, wantText: "started in a different browser",
		},
		{
			name: "binding cookie of another flow",
			run: func(t *testing.T, f *fixture, code string) *httptest.ResponseRecorder {
				cb := f.MustCallback(t, code)
				other := f.MustCode(t, testUser2, "github")
				bob := newBrowser("203.0.113.67:1")
				bob.mustCallback(t, f, other) // bob has a binding cookie, for his own code
				return bob.get(f, cb)
			},
			wantStatus: http.StatusForbidden, wantText: "started in a different browser",
		},
		{
			name: "unknown page",
			run: func(t *testing.T, f *fixture, code string) *httptest.ResponseRecorder {
				return f.serve(httptest.NewRequest(http.MethodGet, "/link/other", nil))
			},
			wantStatus: http.StatusNotFound, wantText: "no such page",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			code := f.MustCode(t, testUser, "github")
			rec := tc.run(t, f, code)
			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.wantStatus, rec.Body)
			}
			body := rec.Body.String()
			if !strings.Contains(body, tc.wantText) || !strings.Contains(body, `role="alert"`) {
				t.Fatalf("page lacks %q in an alert: %s", tc.wantText, body)
			}
			if rec.Header().Get("Content-Type") != "text/html; charset=utf-8" {
				t.Errorf("Content-Type %q", rec.Header().Get("Content-Type"))
			}
			e := f.entry(t, "link-codes/"+code)
			if got := e.Data["used"] != ""; got != tc.burnt {
				t.Errorf("code burnt = %v, want %v", got, tc.burnt)
			}
			if tc.name != "replayed callback" {
				if _, err := f.store.Read(context.Background(), gateway.UserPath(testUser, "github")); !errors.Is(err, gateway.ErrNotFound) {
					t.Errorf("a token was stored after a failure (%v)", err)
				}
			}
			if tc.wantStatus != http.StatusNotFound && !strings.Contains(f.logs.String(), `"msg":"link failed"`) {
				t.Errorf("the failure was not logged: %s", f.logs)
			}
			f.assertNoSecretsInLogs(t)
		})
	}
}

func TestSecurityHeadersOnEveryPage(t *testing.T) {
	f := newFixture(t)
	code := f.MustCode(t, testUser, "github")
	wrong := fmt.Sprintf("%06d", (atoi(code)+1)%1_000_000)
	pages := map[string]*httptest.ResponseRecorder{}
	pages["GET /link"] = f.serve(httptest.NewRequest(http.MethodGet, "/link", nil))
	pages["POST /link wrong code"] = f.submit(t, "192.0.2.30:1", wrong)
	pages["POST /link without csrf"] = f.post("192.0.2.30:1", nil, "", code)
	cb := f.MustCallback(t, code)
	pages["POST /link in use elsewhere"] = f.submit(t, "192.0.2.30:1", code)
	pages["GET /link/callback other browser"] = f.serve(httptest.NewRequest(http.MethodGet, cb, nil))
	pages["GET /link/callback bad state"] = f.serve(httptest.NewRequest(http.MethodGet, "/link/callback?state=x", nil))
	pages["GET /link/callback success"] = f.alice.get(f, cb)
	pages["GET /link/callback replayed"] = f.alice.get(f, cb)
	pages["GET /link/nothing"] = f.serve(httptest.NewRequest(http.MethodGet, "/link/nothing", nil))
	pages["HEAD /link"] = f.serve(httptest.NewRequest(http.MethodHead, "/link", nil))
	pages["PUT /link"] = f.serve(httptest.NewRequest(http.MethodPut, "/link", nil))
	pages["POST /link/callback"] = f.serve(httptest.NewRequest(http.MethodPost, "/link/callback", nil))
	for range WrongCodes {
		f.submit(t, "192.0.2.31:1", wrong)
	}
	pages["POST /link limited"] = f.submit(t, "192.0.2.31:1", wrong)
	want := map[string]string{
		"Cache-Control":          "no-store",
		"Pragma":                 "no-cache",
		"X-Content-Type-Options": "nosniff",
		"X-Frame-Options":        "DENY",
		"Referrer-Policy":        "no-referrer",
	}
	for name, rec := range pages {
		t.Run(name, func(t *testing.T) {
			for k, v := range want {
				if got := rec.Header().Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			csp := rec.Header().Get("Content-Security-Policy")
			wantAction := "form-action 'self' " + f.provider.URL + ";"
			for _, d := range []string{"default-src 'none'", "frame-ancestors 'none'", "base-uri 'none'", wantAction} {
				if !strings.Contains(csp, d) {
					t.Errorf("CSP %q lacks %q", csp, d)
				}
			}
			for _, src := range strings.Fields(strings.ReplaceAll(csp, ";", " ")) {
				if src == "https:" || src == "http:" || src == "*" {
					t.Errorf("CSP %q allows %s", csp, src)
				}
			}
		})
	}
}

func TestPagesAreAccessible(t *testing.T) {
	f := newFixture(t)
	body := f.serve(httptest.NewRequest(http.MethodGet, "/link", nil)).Body.String()
	for _, want := range []string{
		`<html lang="en">`,
		`<label for="code">`,
		`id="code" name="code"`,
		`inputmode="numeric"`,
		`autocomplete="one-time-code"`,
		`<button type="submit"`,
		`<form method="post" action="/link">`,
		`<title>Link your account`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("form page lacks %q", want)
		}
	}
	if strings.Contains(body, "<script") {
		t.Error("the form page needs JavaScript")
	}
}

func TestLogsHaveNoSecrets(t *testing.T) {
	f := newFixture(t)
	code := f.MustCode(t, testUser, "github")
	if rec := f.alice.get(f, f.MustCallback(t, code)); rec.Code != http.StatusOK {
		t.Fatalf("callback = %d", rec.Code)
	}
	f.submit(t, "192.0.2.40:1", code)
	if !strings.Contains(f.logs.String(), `"msg":"account linked"`) {
		t.Fatalf("no success log line: %s", f.logs)
	}
	f.assertNoSecretsInLogs(t)
	if strings.Contains(f.logs.String(), code) {
		t.Errorf("logs contain the link code %s: %s", code, f.logs)
	}
}

func atoi(s string) int {
	n := 0
	for _, r := range s {
		n = n*10 + int(r-'0')
	}
	return n
}

// TestWrongCodeWindow: the limit is a sliding window: ten wrong codes
// spread over nine minutes still limit the client, and each wrong code
// stops counting ten minutes after it was entered.
func TestWrongCodeWindow(t *testing.T) {
	f := newFixture(t)
	code := f.MustCode(t, testUser, "github")
	wrong := fmt.Sprintf("%06d", (atoi(code)+1)%1_000_000)
	const client = "198.51.100.9:1"
	for i := 0; i < WrongCodes; i++ {
		if rec := f.submit(t, client, wrong); rec.Code != http.StatusBadRequest {
			t.Fatalf("wrong code #%d = %d", i+1, rec.Code)
		}
		f.clock.Add(time.Minute)
	}
	// Ten wrong codes at minutes 0..9; now it is minute 10: the first has
	// just left the window, so one more attempt is allowed, then 429.
	if rec := f.submit(t, client, wrong); rec.Code != http.StatusBadRequest {
		t.Fatalf("attempt after the first left the window = %d, want 400", rec.Code)
	}
	if rec := f.submit(t, client, wrong); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("attempt with ten in the window = %d, want 429", rec.Code)
	}
}

// TestEverySubmissionCounts: a right code is counted too, and a code
// accepts at most MaxSubmissions submissions, so one valid code cannot
// buy unlimited writes to the secret store (issue 11: 300 POSTs of one
// code took its entry to version 301).
func TestEverySubmissionCounts(t *testing.T) {
	f := newFixture(t)
	code := f.MustCode(t, testUser, "github")
	before := f.entry(t, "link-codes/"+code).Version
	b := newBrowser("198.51.100.10:1")
	for i := 1; i <= MaxSubmissions; i++ {
		if rec := b.submit(t, f, code); rec.Code != http.StatusSeeOther {
			t.Fatalf("submission #%d = %d, want 303", i, rec.Code)
		}
	}
	for i := MaxSubmissions + 1; i <= WrongCodes; i++ {
		rec := b.submit(t, f, code)
		if rec.Code != http.StatusGone || !strings.Contains(rec.Body.String(), "too many times") {
			t.Fatalf("submission #%d = %d, want 410 (code used up): %s", i, rec.Code, rec.Body)
		}
	}
	if rec := b.submit(t, f, code); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("submission #%d = %d, want 429: every submission counts", WrongCodes+1, rec.Code)
	}
	if got := f.entry(t, "link-codes/"+code).Version - before; got != MaxSubmissions {
		t.Fatalf("%d submissions wrote the code entry %d times, want %d", WrongCodes+1, got, MaxSubmissions)
	}
	// A spent code is not repeated to the user: asking again gives a new one.
	if again := f.MustCode(t, testUser, "github"); again == code {
		t.Fatal("the used-up code was spoken again")
	}
}

// TestCodeNumbersAreRecycledOnceFlowsAreOver: a code's number can be
// drawn again once the code expired and no flow of it can still complete
// (a flow starts before expiry and lasts FlowTTL), so that creating codes
// cannot exhaust the number space for long.
func TestCodeNumbersAreRecycledOnceFlowsAreOver(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	code := f.MustCode(t, testUser, "github")
	f.clock.Add(CodeTTL - time.Second)
	cb := f.MustCallback(t, code) // the latest flow a code can have
	f.clock.Add(FlowTTL)          // the flow's last second
	if v := f.l.recyclable(ctx, code); v != 0 {
		t.Fatal("a code whose last flow may still complete is recyclable")
	}
	if rec := f.alice.get(f, cb); rec.Code != http.StatusOK {
		t.Fatalf("the last flow's callback = %d, want 200: %s", rec.Code, rec.Body)
	}
	f.clock.Add(2 * time.Second)
	if v := f.l.recyclable(ctx, code); v == 0 {
		t.Fatal("a code expired and past the flow window is not recyclable")
	}
	fresh := f.MustCode(t, testUser2, "github")
	if v := f.l.recyclable(ctx, fresh); v != 0 {
		t.Fatalf("a live code is recyclable (version %d)", v)
	}
	if RecycleAfter > time.Hour {
		t.Fatalf("RecycleAfter %v: codes stay taken long after they can be used", RecycleAfter)
	}
}

// TestCodeInFlightCannotBeHijacked: while Carol's flow for her code is
// fresh, another browser's submission of the same code is refused and
// leaves her flow alone (issue 11: it used to replace her nonce).
func TestCodeInFlightCannotBeHijacked(t *testing.T) {
	f := newFixture(t)
	code := f.MustCode(t, testUser, "github")
	carol := newBrowser("192.0.2.50:1")
	cb := carol.mustCallback(t, f, code)
	before := f.entry(t, "link-codes/"+code)

	mallory := newBrowser("203.0.113.5:1")
	rec := mallory.submit(t, f, code)
	if rec.Code != http.StatusConflict || rec.Header().Get("Location") != "" {
		t.Fatalf("second browser's submission = %d (Location %q), want 409", rec.Code, rec.Header().Get("Location"))
	}
	if !strings.Contains(rec.Body.String(), "another browser") {
		t.Fatalf("409 page does not say why: %s", rec.Body)
	}
	if after := f.entry(t, "link-codes/"+code); after.Version != before.Version {
		t.Fatalf("the refused submission wrote the code entry (%d -> %d)", before.Version, after.Version)
	}
	if rec := carol.get(f, cb); rec.Code != http.StatusOK {
		t.Fatalf("Carol's callback = %d after the hijack attempt: %s", rec.Code, rec.Body)
	}
	e := f.entry(t, gateway.UserPath(testUser, "github"))
	if e.Data[auth.FieldAccessToken].Reveal() != f.provider.LastToken().Access {
		t.Fatal("Carol's token was not stored")
	}
	// The binding cookie is cleared once the flow is done.
	if _, ok := carol.cookies["__Host-"+bindingCookie]; ok {
		t.Error("the binding cookie outlived the flow")
	}
}

// TestFlowRestartsOnlyInItsBrowser: the browser that entered a code may
// enter it again (pressing back); its earlier provider URL then stops
// working, and the new one works.
func TestFlowRestartsOnlyInItsBrowser(t *testing.T) {
	f := newFixture(t)
	code := f.MustCode(t, testUser, "github")
	first := f.MustCallback(t, code)
	second := f.MustCallback(t, code)
	if rec := f.alice.get(f, first); rec.Code != http.StatusBadRequest {
		t.Fatalf("the superseded callback = %d, want 400", rec.Code)
	}
	if rec := f.alice.get(f, second); rec.Code != http.StatusOK {
		t.Fatalf("the current callback = %d, want 200: %s", rec.Code, rec.Body)
	}
}

// TestCodeCeiling: beyond the process's ceiling on new codes the user
// hears to try again in a minute, no code is written, and it is counted.
func TestCodeCeiling(t *testing.T) {
	f := newFixture(t)
	obs := &stepCounter{}
	l, err := New(f.cfg, f.store, Options{Now: f.clock.Now, Limits: NewLimits(6), Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	text, err := l.Instructions(ctx, f.cfg.Services["github"], testUser)
	if err != nil || !spokenPattern.MatchString(text) {
		t.Fatalf("first code: %q, %v", text, err)
	}
	// Repeating a pending code is not a new code: the ceiling does not apply.
	if again, _ := l.Instructions(ctx, f.cfg.Services["github"], testUser); again != text {
		t.Fatalf("repeat = %q, want %q", again, text)
	}
	text, err = l.Instructions(ctx, f.cfg.Services["github"], testUser2)
	if err != nil || text != Busy {
		t.Fatalf("beyond the ceiling: %q, %v; want %q", text, err, Busy)
	}
	if _, err := f.store.Read(ctx, "link-codes/pending/"+testUser2+"/github"); !errors.Is(err, gateway.ErrNotFound) {
		t.Fatalf("a code was created beyond the ceiling (%v)", err)
	}
	if got := obs.get("code", "ceiling"); got != 1 {
		t.Fatalf("ceiling counted %d times, want 1", got)
	}
	if got := obs.get("code", "created") + obs.get("code", "repeated"); got != 2 {
		t.Fatalf("created+repeated = %d, want 2", got)
	}
	f.clock.Add(10 * time.Second) // 6 a minute: one every 10 s
	if text, _ := l.Instructions(ctx, f.cfg.Services["github"], testUser2); !spokenPattern.MatchString(text) {
		t.Fatalf("after the ceiling refilled: %q", text)
	}
}

type stepCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *stepCounter) LinkStep(step, result string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[step+"/"+result]++
}

func (c *stepCounter) get(step, result string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[step+"/"+result]
}

// TestLimiterSurvivesReload: a linker built for a new configuration with
// the same Limits keeps a blocked client blocked.
func TestLimiterSurvivesReload(t *testing.T) {
	f := newFixture(t)
	limits := NewLimits(0)
	l1, _ := New(f.cfg, f.store, Options{Now: f.clock.Now, Limits: limits})
	f.l = l1
	for range WrongCodes {
		f.submit(t, "198.51.100.77:1", "000000")
	}
	l2, _ := New(f.cfg, f.store, Options{Now: f.clock.Now, Limits: limits})
	f.l = l2
	if rec := f.submit(t, "198.51.100.77:2", "000000"); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("after a reload the blocked client got %d, want 429", rec.Code)
	}
	// IPv6: another address of the same /64 is the same client.
	for range WrongCodes {
		f.submit(t, "[2001:db8:5:6::1]:1", "000000")
	}
	if rec := f.submit(t, "[2001:db8:5:6:ffff::9]:1", "000000"); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("another address of the /64 got %d, want 429", rec.Code)
	}
	if rec := f.submit(t, "[2001:db8:5:7::1]:1", "000000"); rec.Code != http.StatusBadRequest {
		t.Fatalf("an address of another /64 got %d, want 400", rec.Code)
	}
}

// TestDenialEndsTheFlow: after the user cancels at the provider, the code
// is free again, in this browser or another (a phone, then a laptop).
func TestDenialEndsTheFlow(t *testing.T) {
	f := newFixture(t)
	code := f.MustCode(t, testUser, "github")
	f.provider.SetDeny(true)
	if rec := f.alice.get(f, f.MustCallback(t, code)); rec.Code != http.StatusBadRequest {
		t.Fatalf("denied callback = %d", rec.Code)
	}
	f.provider.SetDeny(false)
	laptop := newBrowser("192.0.2.90:1")
	if rec := laptop.get(f, laptop.mustCallback(t, f, code)); rec.Code != http.StatusOK {
		t.Fatalf("linking in another browser after a denial = %d: %s", rec.Code, rec.Body)
	}
}
