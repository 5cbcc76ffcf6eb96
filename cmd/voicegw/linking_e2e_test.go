package main

// End-to-end tests of voicegw's own account linking (SPEC 7) over real
// HTTP: the gateway as serve wires it (deps.runtime, server.New), a real
// Vault dev server with a token of scripts/voicegw-policy.hcl, a fake
// OAuth2 provider and a fake upstream API. A net/http client with a cookie
// jar plays the browser here; linking_browser_test.go drives the same
// flow in headless Chromium.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/voicegw/voicegw/gateway/alexa"
	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/gateway/linking/linkingtest"
	"github.com/voicegw/voicegw/gateway/server"
	"github.com/voicegw/voicegw/gateway/vault"
	"github.com/voicegw/voicegw/gateway/vault/vaulttest"
)

const (
	linkFlowAppID        = "amzn1.ask.skill.linkflow"
	linkFlowClientID     = "voicegw-linkflow"
	linkFlowClientSecret = "cs-linkflow-9d8c7b6a5f4e3d2c"
	linkFlowRepos        = "You have 7 repositories."
)

// linkFlowConfig is the gateway of the linking tests: one linked service
// with oauth2 at the fake provider, one skill whose intent calls it.
const linkFlowConfig = `version: 1
server:
  public_url: ${VGW_PUBLIC_URL}
  deadline: 5s
alexa:
  verify: false
vault:
  address: ${VAULT_ADDR}
  auth:
    method: token
  kv_mount: secret
  prefix: voicegw
  cache_ttl: 30s
services:
  github:
    base_url: ${VGW_UPSTREAM}
    timeout: 3s
    auth:
      type: linked
    oauth2:
      auth_url: ${VGW_PROVIDER}/authorize
      token_url: ${VGW_PROVIDER}/token
      client_id: ` + linkFlowClientID + `
      scopes: [repo]
skills:
  linkflow:
    application_id: ` + linkFlowAppID + `
    invocation: link flow
    launch:
      say: Welcome.
    help: Ask for your repositories.
    stop: Bye.
    fallback: Sorry, I didn't get that.
    intents:
      Repos:
        samples: ["repos"]
        call:
          service: github
          path: /user/{{ .user.id }}/repos
          extract:
            n: { path: count, required: true }
        say: "You have {{ .n }} repositories."
`

// linkFlowEnv is a running gateway with everything it talks to.
type linkFlowEnv struct {
	vault    *vaulttest.Server
	provider *linkingtest.Provider
	upstream *linkFlowUpstream
	gateway  *httptest.Server
	handler  http.Handler
	deps     *deps
	logs     *syncBuffer
	// leaks are further secrets the logs must not hold.
	leaks []string
}

// startLinkFlow starts Vault, the provider, the upstream and the gateway,
// whose public_url is its own test server.
func startLinkFlow(t *testing.T) *linkFlowEnv {
	t.Helper()
	return startLinkFlowWith(t, nil)
}

// startLinkFlowWith is startLinkFlow with a hook that may change the
// loaded configuration and the process-wide parts before the gateway is
// wired.
func startLinkFlowWith(t *testing.T, hook func(*config.Config, *deps)) *linkFlowEnv {
	t.Helper()
	e := &linkFlowEnv{vault: vaulttest.Start(t), logs: &syncBuffer{}}
	policyToken := e.vault.PolicyToken(t, "../../scripts/voicegw-policy.hcl")
	e.vault.Put(t, "voicegw/services/github", map[string]any{"client_secret": linkFlowClientSecret})

	e.provider = linkingtest.NewProvider(t, linkingtest.Config{
		ClientID: linkFlowClientID, ClientSecret: linkFlowClientSecret, RequirePKCE: true,
	})
	e.upstream = newLinkFlowUpstream(t, e.provider)
	e.gateway = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { e.handler.ServeHTTP(w, r) }))
	t.Cleanup(e.gateway.Close)

	vars := map[string]string{
		"VAULT_ADDR":     e.vault.Addr,
		"VGW_PUBLIC_URL": e.gateway.URL,
		"VGW_UPSTREAM":   e.upstream.URL,
		"VGW_PROVIDER":   e.provider.URL,
	}
	cfg, problems := config.Parse("linking_e2e.yaml", []byte(linkFlowConfig), func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	})
	for _, p := range problems {
		if !p.Warning {
			t.Fatalf("config: %v", p.Error())
		}
	}
	log := newLogger(e.logs, slog.LevelDebug)
	store, err := vault.New(cfg.Vault, vault.Options{Logger: log, Token: policyToken})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	d := newDeps(log)
	if hook != nil {
		hook(cfg, d)
	}
	e.deps = d
	e.handler = server.New(d.runtime(cfg, store), nil, log).Handler()
	e.leaks = append(e.leaks, policyToken, e.vault.Token)
	return e
}

// linkFlowReply is the part of an Alexa response the tests read.
type linkFlowReply struct {
	Speech    string
	CardType  string
	CardTitle string
	CardText  string
}

// turn asks the Repos intent as user.
func (e *linkFlowEnv) turn(t testing.TB, user string) linkFlowReply {
	t.Helper()
	body := alexa.BuildRequest(alexa.RequestSpec{ApplicationID: linkFlowAppID, UserID: user,
		Type: "IntentRequest", Intent: "Repos", NewSession: true})
	resp, err := http.Post(e.gateway.URL+"/alexa/linkflow", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("turn: HTTP %d: %s", resp.StatusCode, raw)
	}
	var out struct {
		Response struct {
			OutputSpeech struct{ Text string } `json:"outputSpeech"`
			Card         *struct{ Type, Title, Content string }
		}
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("turn: %v: %s", err, raw)
	}
	r := linkFlowReply{Speech: out.Response.OutputSpeech.Text}
	if c := out.Response.Card; c != nil {
		r.CardType, r.CardTitle, r.CardText = c.Type, c.Title, c.Content
	}
	return r
}

// code asks as an unlinked user and returns the code Alexa speaks, after
// checking the sentence and the card.
func (e *linkFlowEnv) code(t testing.TB, user string) string {
	t.Helper()
	r := e.turn(t, user)
	re := regexp.MustCompile(`^To use github, open ` + regexp.QuoteMeta(e.gateway.URL) + `/link and enter code (\d) (\d) (\d) (\d) (\d) (\d)$`)
	m := re.FindStringSubmatch(r.Speech)
	if m == nil {
		t.Fatalf("unlinked turn said %q, want the linking instructions", r.Speech)
	}
	if r.CardType != "Simple" || r.CardText != r.Speech || r.CardTitle == "" {
		t.Fatalf("card %+v, want a Simple card with the same text", r)
	}
	return strings.Join(m[1:], "")
}

// raw reads a Vault path below the prefix as the root token sees it (nil
// when absent).
func (e *linkFlowEnv) raw(t testing.TB, path string) map[string]any {
	t.Helper()
	return readVault(t, e.vault, path)
}

// expire moves a link code's expiry into the past, as ten minutes would.
func (e *linkFlowEnv) expire(t testing.TB, code string) {
	t.Helper()
	data := e.raw(t, "link-codes/"+code)
	if data == nil {
		t.Fatalf("no link code %s in Vault", code)
	}
	data["expires_at"] = time.Now().Add(-time.Second).UTC().Format(time.RFC3339)
	e.vault.Put(t, "voicegw/link-codes/"+code, data)
}

// assertLogsClean fails when the gateway logged a secret of the flow.
func (e *linkFlowEnv) assertLogsClean(t testing.TB) {
	t.Helper()
	logs := e.logs.String()
	secrets := append(e.provider.Secrets(), linkFlowClientSecret)
	secrets = append(secrets, e.leaks...)
	for _, s := range secrets {
		if s != "" && strings.Contains(logs, s) {
			t.Errorf("the logs contain the secret %q", s)
		}
	}
	for _, s := range []string{"Bearer", "code_verifier", "pkce_verifier", "client_secret"} {
		if strings.Contains(logs, s) {
			t.Errorf("the logs contain %q", s)
		}
	}
}

// linkFlowClient is a browser without JavaScript: a cookie jar, redirects
// followed and recorded.
type linkFlowClient struct {
	*http.Client
	hops []*url.URL
	// addr is the client address a trusted proxy would report for this
	// browser in X-Forwarded-For (each browser has its own).
	addr string
}

var linkFlowClients atomic.Int64

func newLinkFlowClient(t testing.TB) *linkFlowClient {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	n := linkFlowClients.Add(1)
	c := &linkFlowClient{addr: fmt.Sprintf("198.18.%d.%d", n/250, n%250+1)}
	c.Client = &http.Client{Jar: jar, Timeout: 10 * time.Second,
		Transport: forwardedFor{addr: &c.addr},
		CheckRedirect: func(r *http.Request, via []*http.Request) error {
			c.hops = append(c.hops, r.URL)
			return nil
		}}
	return c
}

// forwardedFor adds the browser's address as X-Forwarded-For, as a load
// balancer in front of the gateway would.
type forwardedFor struct{ addr *string }

func (f forwardedFor) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Forwarded-For", *f.addr)
	return http.DefaultTransport.RoundTrip(r)
}

// linkFlowPage is a page the client ended on.
type linkFlowPage struct {
	Status int
	URL    *url.URL
	Body   string
	Header http.Header
}

func (c *linkFlowClient) page(t testing.TB, resp *http.Response, err error) linkFlowPage {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return linkFlowPage{Status: resp.StatusCode, URL: resp.Request.URL, Body: string(b), Header: resp.Header}
}

func (c *linkFlowClient) get(t testing.TB, u string) linkFlowPage {
	t.Helper()
	resp, err := c.Get(u)
	return c.page(t, resp, err)
}

var linkFlowCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// enter opens /link, types code into the form and submits it, following
// every redirect; it returns the last page.
func (c *linkFlowClient) enter(t testing.TB, e *linkFlowEnv, code string) linkFlowPage {
	t.Helper()
	form := c.get(t, e.gateway.URL+"/link")
	if form.Status != http.StatusOK {
		t.Fatalf("GET /link = %d", form.Status)
	}
	m := linkFlowCSRF.FindStringSubmatch(form.Body)
	if m == nil {
		t.Fatalf("the form has no CSRF field: %s", form.Body)
	}
	c.hops = nil
	resp, err := c.PostForm(e.gateway.URL+"/link", url.Values{"code": {code}, "csrf": {m[1]}})
	return c.page(t, resp, err)
}

// tamper changes one character in the middle of s.
func tamper(s string) string {
	if s == "" {
		return "A"
	}
	b := []byte(s)
	if b[len(b)/2] == 'A' {
		b[len(b)/2] = 'B'
	} else {
		b[len(b)/2] = 'A'
	}
	return string(b)
}

func spaced(code string) string { return strings.Join(strings.Split(code, ""), " ") }

func TestLinkE2E(t *testing.T) {
	e := startLinkFlow(t)

	t.Run("happy path", func(t *testing.T) {
		const user = "amzn1.ask.account.LINKFLOW_HAPPY"
		code := e.code(t, user)
		if again := e.code(t, user); again != code {
			t.Fatalf("asking again gave code %s, want the same %s", again, code)
		}
		entry := e.raw(t, "link-codes/"+code)
		if entry["user_id"] != user || entry["service"] != "github" || entry["expires_at"] == nil {
			t.Fatalf("link-codes/%s = %v", code, entry)
		}
		c := newLinkFlowClient(t)
		// Typed as Alexa says it, with spaces.
		p := c.enter(t, e, spaced(code))
		if p.Status != http.StatusOK || p.URL.Path != "/link/callback" {
			t.Fatalf("ended on %s with %d: %s", p.URL, p.Status, p.Body)
		}
		if len(c.hops) != 2 || c.hops[0].Host != strings.TrimPrefix(e.provider.URL, "http://") || c.hops[0].Path != "/authorize" {
			t.Fatalf("redirects %v, want the provider's /authorize then /link/callback", c.hops)
		}
		for _, want := range []string{"Account linked", "github account is now linked", "go back to Alexa"} {
			if !strings.Contains(p.Body, want) {
				t.Errorf("success page lacks %q: %s", want, p.Body)
			}
		}
		if p.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("success page Cache-Control %q", p.Header.Get("Cache-Control"))
		}
		tok := e.provider.LastToken()
		stored := e.raw(t, "users/"+user+"/github")
		if stored["access_token"] != tok.Access || stored["refresh_token"] != tok.Refresh || stored["token_type"] != "Bearer" {
			t.Fatalf("Vault holds %v, want the provider's tokens", stored)
		}
		exp, err := time.Parse(time.RFC3339, fmt.Sprint(stored["expires_at"]))
		if err != nil || time.Until(exp) < 55*time.Minute || time.Until(exp) > 61*time.Minute {
			t.Fatalf("expires_at %v, want an hour from now", stored["expires_at"])
		}
		if used := e.raw(t, "link-codes/"+code); used == nil || used["used"] == nil {
			t.Fatalf("link code not burnt: %v", used)
		}
		if e.raw(t, "link-codes/pending/"+user+"/github") != nil {
			t.Fatal("pending index left behind")
		}

		if r := e.turn(t, user); r.Speech != linkFlowRepos {
			t.Fatalf("linked turn said %q, want %q", r.Speech, linkFlowRepos)
		}
		if got := e.upstream.LastAuth(user); got != "Bearer "+tok.Access {
			t.Fatalf("upstream saw Authorization %q, want the new bearer token", got)
		}

		// Replaying the callback URL shows an error page and changes nothing.
		callback := c.hops[len(c.hops)-1].String()
		replay := c.get(t, callback)
		if replay.Status != http.StatusGone || !strings.Contains(replay.Body, "already used") {
			t.Fatalf("replayed callback = %d: %s", replay.Status, replay.Body)
		}
		if after := e.raw(t, "users/"+user+"/github"); after["access_token"] != tok.Access {
			t.Fatal("the replay changed the stored token")
		}
		// So does entering the used code again.
		if p := c.enter(t, e, code); p.Status != http.StatusGone || !strings.Contains(p.Body, "already used") {
			t.Fatalf("used code = %d: %s", p.Status, p.Body)
		}
	})

	t.Run("relinking replaces a revoked token", func(t *testing.T) {
		const user = "amzn1.ask.account.LINKFLOW_RELINK"
		code := e.code(t, user)
		// Meanwhile an operator stored a token the provider does not
		// know (revoked), with a refresh token it refuses.
		const stale, staleRefresh = "stale-access-token-5b1e", "stale-refresh-token-77ac"
		e.leaks = append(e.leaks, stale, staleRefresh)
		e.vault.Put(t, "voicegw/users/"+user+"/github", map[string]any{
			"access_token": stale, "refresh_token": staleRefresh, "token_type": "Bearer", "note": "old",
		})
		// The upstream rejects it, the refresh is refused: Alexa asks to
		// link, with the same pending code.
		if r := e.turn(t, user); !strings.Contains(r.Speech, "enter code "+spaced(code)) {
			t.Fatalf("turn with a revoked token said %q, want the pending code %s", r.Speech, code)
		}
		if got := e.upstream.LastAuth(user); got != "Bearer "+stale {
			t.Fatalf("upstream saw %q, want the stale token first", got)
		}
		c := newLinkFlowClient(t)
		if p := c.enter(t, e, code); p.Status != http.StatusOK {
			t.Fatalf("relink ended with %d: %s", p.Status, p.Body)
		}
		tok := e.provider.LastToken()
		stored := e.raw(t, "users/"+user+"/github")
		if stored["access_token"] != tok.Access || stored["refresh_token"] != tok.Refresh || stored["note"] != nil {
			t.Fatalf("Vault holds %v, want only the new link", stored)
		}
		if r := e.turn(t, user); r.Speech != linkFlowRepos {
			t.Fatalf("turn after relinking said %q", r.Speech)
		}
		if got := e.upstream.LastAuth(user); got != "Bearer "+tok.Access {
			t.Fatalf("upstream saw %q, want the new token", got)
		}
	})

	t.Run("short-lived token is refreshed at the provider", func(t *testing.T) {
		const user = "amzn1.ask.account.LINKFLOW_REFRESH"
		code := e.code(t, user)
		e.provider.SetExpiresIn(30 * time.Second) // within the 60 s refresh skew
		defer e.provider.SetExpiresIn(time.Hour)
		if p := newLinkFlowClient(t).enter(t, e, code); p.Status != http.StatusOK {
			t.Fatalf("link ended with %d: %s", p.Status, p.Body)
		}
		linked := e.provider.LastToken()
		e.provider.SetExpiresIn(time.Hour)
		if r := e.turn(t, user); r.Speech != linkFlowRepos {
			t.Fatalf("turn said %q", r.Speech)
		}
		refreshed := e.provider.LastToken()
		if refreshed == linked {
			t.Fatal("the provider issued no new token: no refresh")
		}
		if got := e.upstream.LastAuth(user); got != "Bearer "+refreshed.Access {
			t.Fatalf("upstream saw %q, want the refreshed token", got)
		}
		if stored := e.raw(t, "users/"+user+"/github"); stored["access_token"] != refreshed.Access || stored["refresh_token"] != refreshed.Refresh {
			t.Fatal("the refreshed token was not written back")
		}
	})

	t.Run("expired code", func(t *testing.T) {
		const user = "amzn1.ask.account.LINKFLOW_EXPIRED"
		code := e.code(t, user)
		e.expire(t, code)
		p := newLinkFlowClient(t).enter(t, e, code)
		if p.Status != http.StatusGone || !strings.Contains(p.Body, "expired") || !strings.Contains(p.Body, "Ask Alexa again") {
			t.Fatalf("expired code = %d: %s", p.Status, p.Body)
		}
		if next := e.code(t, user); next == code {
			t.Fatal("asking after expiry repeated the expired code")
		}
	})

	t.Run("wrong code", func(t *testing.T) {
		const user = "amzn1.ask.account.LINKFLOW_WRONG"
		code := e.code(t, user)
		wrong := linkFlowUnused(t, e, code)
		p := newLinkFlowClient(t).enter(t, e, wrong)
		if p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "not valid") || !linkFlowCSRF.MatchString(p.Body) {
			t.Fatalf("wrong code = %d: %s", p.Status, p.Body)
		}
	})

	t.Run("bad state", func(t *testing.T) {
		const user = "amzn1.ask.account.LINKFLOW_STATE"
		code := e.code(t, user)
		c := newLinkFlowClient(t)
		var callback *url.URL
		c.CheckRedirect = func(r *http.Request, via []*http.Request) error {
			if r.URL.Path == "/link/callback" {
				callback = r.URL
				return http.ErrUseLastResponse
			}
			return nil
		}
		c.enter(t, e, code)
		if callback == nil {
			t.Fatal("the provider did not send the browser back")
		}
		for name, st := range map[string]string{
			"garbage":  "garbage",
			"empty":    "",
			"tampered": tamper(callback.Query().Get("state")),
		} {
			q := callback.Query()
			q.Set("state", st)
			bad := *callback
			bad.RawQuery = q.Encode()
			if p := c.get(t, bad.String()); p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "not valid") {
				t.Errorf("%s state = %d: %s", name, p.Status, p.Body)
			}
		}
		if e.raw(t, "users/"+user+"/github") != nil {
			t.Fatal("a bad state linked the account")
		}
		// The genuine callback still works.
		if p := c.get(t, callback.String()); p.Status != http.StatusOK {
			t.Fatalf("genuine callback after bad ones = %d: %s", p.Status, p.Body)
		}
	})

	t.Run("user denies at the provider", func(t *testing.T) {
		const user = "amzn1.ask.account.LINKFLOW_DENY"
		code := e.code(t, user)
		e.provider.SetDeny(true)
		p := newLinkFlowClient(t).enter(t, e, code)
		e.provider.SetDeny(false)
		if p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "cancelled") {
			t.Fatalf("denied = %d: %s", p.Status, p.Body)
		}
		if e.raw(t, "users/"+user+"/github") != nil {
			t.Fatal("a denied link stored a token")
		}
		if r := e.turn(t, user); !strings.Contains(r.Speech, "enter code "+spaced(code)) {
			t.Fatalf("after denying, Alexa said %q, want the same code", r.Speech)
		}
		if p := newLinkFlowClient(t).enter(t, e, code); p.Status != http.StatusOK {
			t.Fatalf("linking after a denial = %d: %s", p.Status, p.Body)
		}
	})

	t.Run("logs", func(t *testing.T) {
		logs := e.logs.String()
		for _, want := range []string{`"msg":"account linked"`, `"msg":"link failed"`, `"reason":"code expired"`,
			`"reason":"provider answered error access_denied"`, `"reason":"bad state: `} {
			if !strings.Contains(logs, want) {
				t.Errorf("the logs lack %s", want)
			}
		}
		e.assertLogsClean(t)
	})
}

// linkFlowUnused returns a six-digit code that is not in Vault.
func linkFlowUnused(t testing.TB, e *linkFlowEnv, near string) string {
	t.Helper()
	n := 0
	fmt.Sscan(near, &n)
	for i := 1; i < 100; i++ {
		c := fmt.Sprintf("%06d", (n+i*7919)%1_000_000)
		if e.raw(t, "link-codes/"+c) == nil {
			return c
		}
	}
	t.Fatal("no unused code found")
	return ""
}

// linkFlowUpstream is the linked API: it answers {"count": 7} to a bearer
// token the provider issued and has not replaced, 401 otherwise.
type linkFlowUpstream struct {
	*httptest.Server
	mu   sync.Mutex
	last map[string]string // user -> last Authorization
}

func newLinkFlowUpstream(t testing.TB, p *linkingtest.Provider) *linkFlowUpstream {
	u := &linkFlowUpstream{last: map[string]string{}}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, ok := strings.CutPrefix(r.URL.Path, "/user/")
		user, ok2 := strings.CutSuffix(user, "/repos")
		if !ok || !ok2 {
			http.NotFound(w, r)
			return
		}
		got := r.Header.Get("Authorization")
		u.mu.Lock()
		u.last[user] = got
		u.mu.Unlock()
		tok, ok := strings.CutPrefix(got, "Bearer ")
		w.Header().Set("Content-Type", "application/json")
		if !ok || !p.Live(tok) {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"message":"Bad credentials"}`)
			return
		}
		_, _ = io.WriteString(w, `{"count": 7}`)
	}))
	t.Cleanup(u.Close)
	return u
}

// LastAuth is the Authorization header of user's last call.
func (u *linkFlowUpstream) LastAuth(user string) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last[user]
}
