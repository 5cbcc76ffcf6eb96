package main

// The attacks of issue 11 on account linking, performed end to end
// against a real Vault, a fake OAuth provider and the gateway as serve
// wires it, each browser a cookie jar of its own behind a trusted proxy
// that reports it in X-Forwarded-For. Each of them succeeded before the
// flow was bound to the browser.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/gateway/linking"
	"github.com/voicegw/voicegw/gateway/ratelimit"
)

// codeCeiling is the attack tests' ceiling on new codes: a burst of this
// many, then one a minute.
const codeCeiling = 20

func startLinkAttacks(t *testing.T) *linkFlowEnv {
	t.Helper()
	return startLinkFlowWith(t, func(cfg *config.Config, d *deps) {
		_, lo, _ := net.ParseCIDR("127.0.0.0/8")
		cfg.Server.TrustedNets = []*net.IPNet{lo}
		d.links = &linking.Limits{
			Submissions: ratelimit.New(linking.WrongCodes, linking.WrongCodeWindow, 500),
			Codes:       rate.NewLimiter(rate.Every(time.Minute), codeCeiling),
		}
	})
}

// untilProvider enters code and stops where the gateway sends the browser
// to the provider; it returns that provider URL.
func (c *linkFlowClient) untilProvider(t testing.TB, e *linkFlowEnv, code string) string {
	t.Helper()
	saved := c.CheckRedirect
	defer func() { c.CheckRedirect = saved }()
	c.CheckRedirect = func(r *http.Request, via []*http.Request) error { return http.ErrUseLastResponse }
	p := c.enter(t, e, code)
	loc := p.Header.Get("Location")
	if p.Status != http.StatusSeeOther || !strings.HasPrefix(loc, e.provider.URL+"/authorize") {
		t.Fatalf("entering %s = %d (Location %q), want a redirect to the provider: %s", code, p.Status, loc, p.Body)
	}
	return loc
}

func (e *linkFlowEnv) codeVersion(t testing.TB, code string) int {
	t.Helper()
	m, err := e.vault.Client().KVv2("secret").GetMetadata(context.Background(), "voicegw/link-codes/"+code)
	if err != nil {
		t.Fatalf("metadata of link-codes/%s: %v", code, err)
	}
	return m.CurrentVersion
}

func TestLinkAttacksE2E(t *testing.T) {
	e := startLinkAttacks(t)

	t.Run("a provider URL sent to another browser links nobody", func(t *testing.T) {
		const mallory = "amzn1.ask.account.ATTACK_MALLORY"
		code := e.code(t, mallory)
		mal := newLinkFlowClient(t)
		providerURL := mal.untilProvider(t, e, code)
		if strings.Contains(providerURL, code) || strings.Contains(providerURL, mallory) {
			t.Fatalf("the provider URL shows the code or the user: %s", providerURL)
		}
		// Bob's browser has never seen voicegw; the provider sends it
		// straight back to the callback.
		bob := newLinkFlowClient(t)
		p := bob.get(t, providerURL)
		if p.Status != http.StatusForbidden || p.URL.Path != "/link/callback" {
			t.Fatalf("Bob's browser ended on %s with %d, want a 403 at the callback: %s", p.URL, p.Status, p.Body)
		}
		if !strings.Contains(p.Body, "started in a different browser") || !strings.Contains(p.Body, "nothing was linked") {
			t.Fatalf("Bob's page does not say what happened: %s", p.Body)
		}
		if got := e.raw(t, "users/"+mallory+"/github"); got != nil {
			t.Fatalf("Bob's token was stored under Mallory's user: %v", got)
		}
		if entry := e.raw(t, "link-codes/"+code); entry["used"] != nil {
			t.Fatal("Bob's visit burned Mallory's code")
		}
		if r := e.turn(t, mallory); !strings.HasPrefix(r.Speech, "To use github") {
			t.Fatalf("Mallory's Echo said %q, want the linking instructions", r.Speech)
		}
		// In Mallory's own browser the same URL links her own account.
		if p := mal.get(t, providerURL); p.Status != http.StatusOK {
			t.Fatalf("Mallory's own callback = %d: %s", p.Status, p.Body)
		}
	})

	t.Run("a code in flight cannot be hijacked", func(t *testing.T) {
		const carolUser = "amzn1.ask.account.ATTACK_CAROL"
		code := e.code(t, carolUser)
		carol := newLinkFlowClient(t)
		providerURL := carol.untilProvider(t, e, code)
		before := e.codeVersion(t, code)

		eve := newLinkFlowClient(t)
		p := eve.enter(t, e, code)
		if p.Status != http.StatusConflict || p.URL.Host != strings.TrimPrefix(e.gateway.URL, "http://") {
			t.Fatalf("the second browser's submission = %d at %s, want 409 on the gateway: %s", p.Status, p.URL, p.Body)
		}
		if after := e.codeVersion(t, code); after != before {
			t.Fatalf("the refused submission wrote the code (version %d -> %d)", before, after)
		}
		if p := carol.get(t, providerURL); p.Status != http.StatusOK || !strings.Contains(p.Body, "now linked") {
			t.Fatalf("Carol's callback after the attempt = %d: %s", p.Status, p.Body)
		}
		if r := e.turn(t, carolUser); r.Speech != linkFlowRepos {
			t.Fatalf("Carol's Echo said %q", r.Speech)
		}
	})

	t.Run("one code cannot buy unlimited Vault writes", func(t *testing.T) {
		const user = "amzn1.ask.account.ATTACK_WRITES"
		code := e.code(t, user)
		before := e.codeVersion(t, code)
		c := newLinkFlowClient(t)
		statuses := map[int]int{}
		for range 50 {
			c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			statuses[c.enter(t, e, code).Status]++
		}
		if statuses[http.StatusSeeOther] != linking.MaxSubmissions || statuses[http.StatusTooManyRequests] != 50-linking.WrongCodes {
			t.Fatalf("50 submissions of one code answered %v, want %d redirects and 429 after %d", statuses, linking.MaxSubmissions, linking.WrongCodes)
		}
		if got := e.codeVersion(t, code) - before; got != linking.MaxSubmissions {
			t.Fatalf("50 submissions wrote link-codes/%s %d times, want %d", code, got, linking.MaxSubmissions)
		}
	})

	t.Run("code creation has a ceiling", func(t *testing.T) {
		busy, codes := 0, 0
		for i := range codeCeiling + 10 {
			r := e.turn(t, fmt.Sprintf("amzn1.ask.account.FLOOD_%03d", i))
			switch {
			case r.Speech == linking.Busy:
				busy++
			case strings.HasPrefix(r.Speech, "To use github"):
				codes++
			default:
				t.Fatalf("turn %d said %q", i, r.Speech)
			}
		}
		// Three codes of the subtests above came out of the same bucket.
		if codes > codeCeiling || busy < 10 {
			t.Fatalf("%d codes and %d 'try again' answers, want at most %d codes", codes, busy, codeCeiling)
		}
		metrics := httptest.NewServer(e.deps.metrics.Handler())
		defer metrics.Close()
		resp, err := http.Get(metrics.URL)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := fmt.Sprintf(`voicegw_link_steps_total{result="ceiling",step="code"} %d`, busy)
		if !strings.Contains(string(body), want) {
			t.Fatalf("metrics lack %s", want)
		}
	})

	t.Run("a flood of new clients does not free a blocked one", func(t *testing.T) {
		attacker := newLinkFlowClient(t)
		attacker.addr = "203.0.113.7"
		for i := range linking.WrongCodes {
			if p := attacker.enter(t, e, "000000"); p.Status != http.StatusBadRequest {
				t.Fatalf("wrong code %d = %d", i+1, p.Status)
			}
		}
		if p := attacker.enter(t, e, "000000"); p.Status != http.StatusTooManyRequests {
			t.Fatalf("the 11th code = %d, want 429", p.Status)
		}
		// 2,000 new clients, each one POST without a CSRF token, against
		// a limiter that tracks 500.
		flood := &http.Client{Timeout: 5 * time.Second}
		for i := range 2000 {
			req, _ := http.NewRequest(http.MethodPost, e.gateway.URL+"/link", strings.NewReader("code=123456"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("X-Forwarded-For", fmt.Sprintf("198.19.%d.%d", i/250, i%250+1))
			resp, err := flood.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		if p := attacker.enter(t, e, "000000"); p.Status != http.StatusTooManyRequests {
			t.Fatalf("after the flood the attacker got %d, want 429", p.Status)
		}
		// The limit is the client's, not the proxy's: others still link.
		if p := newLinkFlowClient(t).enter(t, e, "000000"); p.Status == http.StatusTooManyRequests {
			t.Fatal("an innocent client behind the same proxy was limited")
		}
		// IPv6 clients are limited per /64.
		v6 := newLinkFlowClient(t)
		v6.addr = "2001:db8:77:1::1"
		for range linking.WrongCodes {
			v6.enter(t, e, "000000")
		}
		v6.addr = "2001:db8:77:1:ffff:1234::9"
		if p := v6.enter(t, e, "000000"); p.Status != http.StatusTooManyRequests {
			t.Fatalf("another address of the blocked /64 got %d, want 429", p.Status)
		}
	})

	t.Run("every answer under /link carries the security headers", func(t *testing.T) {
		for _, tc := range []struct{ method, path string }{
			{http.MethodHead, "/link"},
			{http.MethodPut, "/link"},
			{http.MethodDelete, "/link/callback"},
			{http.MethodGet, "/link/nothing"},
			{http.MethodOptions, "/link"},
			{http.MethodGet, "/link"},
		} {
			req, _ := http.NewRequest(tc.method, e.gateway.URL+tc.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			h := resp.Header
			if h.Get("X-Frame-Options") != "DENY" || h.Get("Cache-Control") != "no-store" ||
				h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" {
				t.Errorf("%s %s (%d) lacks security headers: %v", tc.method, tc.path, resp.StatusCode, h)
			}
			csp := h.Get("Content-Security-Policy")
			u, _ := url.Parse(e.provider.URL)
			if !strings.Contains(csp, "form-action 'self' http://"+u.Host+";") || strings.Contains(csp, "https:;") {
				t.Errorf("%s %s: CSP %q, want form-action 'self' and the provider only", tc.method, tc.path, csp)
			}
			if tc.method != http.MethodGet && resp.StatusCode < 400 {
				t.Errorf("%s %s = %d", tc.method, tc.path, resp.StatusCode)
			}
		}
	})

	e.assertLogsClean(t)
}
