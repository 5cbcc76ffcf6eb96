package main

// The account-linking flow in real headless Chromium (Debian's chromium,
// driven by chromedp), against the same gateway, Vault, provider and
// upstream as linking_e2e_test.go. It also captures the screenshots of
// the README: VOICEGW_SCREENSHOTS=1 writes them to docs/.

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// linkFlowChromium is the browser the test drives; scripts/install-chromium.sh
// installs it.
const linkFlowChromium = "/usr/bin/chromium"

// startLinkFlowBrowser starts headless Chromium with a throwaway profile
// and returns a tab's context; the browser stops when the test ends.
func startLinkFlowBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(linkFlowChromium); err != nil {
		t.Fatalf("the browser test needs Chromium at %s (%v): run scripts/install-chromium.sh", linkFlowChromium, err)
	}
	profile, err := os.MkdirTemp("", "voicegw-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs after the browser has stopped.
	t.Cleanup(func() {
		for range 50 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(linkFlowChromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(800, 600),
	)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	ctx, cancelTime := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() {
		cancelTime()
		cancelTab()
		cancelAlloc()
	})
	// Start the browser now, so a broken install fails here, clearly.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v (scripts/install-chromium.sh installs it)", linkFlowChromium, err)
	}
	return ctx
}

// linkFlowConsole collects the browser's log entries other than failed
// loads (the error pages answer 4xx on purpose): a blocked style or a
// script error shows up here.
type linkFlowConsole struct {
	mu      sync.Mutex
	entries []string
}

func watchLinkFlowConsole(ctx context.Context) *linkFlowConsole {
	c := &linkFlowConsole{}
	events := chromedp.Events(ctx, cdplog.EntryAdded)
	go func() {
		for ev, err := range events {
			if err != nil {
				return
			}
			if e := ev.Entry; e != nil && e.Source != cdplog.EntrySourceNetwork {
				c.mu.Lock()
				c.entries = append(c.entries, fmt.Sprintf("%s %s: %s (%s)", e.Level, e.Source, e.Text, e.URL))
				c.mu.Unlock()
			}
		}
	}()
	return c
}

func (c *linkFlowConsole) Entries() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.entries...)
}

// linkFlowShot captures the whole page as PNG into dir/name.
func linkFlowShot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	img, err := png.Decode(bytes.NewReader(buf))
	if err != nil {
		t.Fatalf("screenshot %s is no PNG: %v", name, err)
	}
	if b := img.Bounds(); b.Dx() < 300 || b.Dy() < 200 {
		t.Fatalf("screenshot %s is only %v", name, b)
	}
	if err := os.WriteFile(filepath.Join(dir, name), buf, 0o644); err != nil {
		t.Fatal(err)
	}
}

// linkFlowText returns the text of the element with id.
func linkFlowText(t *testing.T, ctx context.Context, id string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID(id)))
	if err != nil {
		t.Fatalf("text of #%s: %v", id, err)
	}
	return strings.TrimSpace(s)
}

// linkFlowOpen navigates to u and returns the document's response.
func linkFlowOpen(t *testing.T, ctx context.Context, u string) *network.Response {
	t.Helper()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(u))
	if err != nil {
		t.Fatalf("open %s: %v", u, err)
	}
	return resp
}

// linkFlowType opens the link page, types code as a user would, shoots
// the filled form when shot is set, and submits; it returns the response
// of the page the browser ends on, after every redirect.
func linkFlowType(t *testing.T, ctx context.Context, e *linkFlowEnv, code, dir, shot string) *network.Response {
	t.Helper()
	form := linkFlowOpen(t, ctx, e.gateway.URL+"/link")
	if form.Status != 200 {
		t.Fatalf("GET /link in the browser = %d", form.Status)
	}
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("code"), code)); err != nil {
		t.Fatalf("type the code: %v", err)
	}
	// The whole code, as typed, stays visible in the field.
	fits, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(f => f.scrollWidth <= f.clientWidth)(document.getElementById("code"))`))
	if err != nil || !fits {
		t.Errorf("the code %q does not fit in the field (%v)", code, err)
	}
	if shot != "" {
		linkFlowShot(t, ctx, dir, shot)
	}
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.ID("submit")))
	if err != nil {
		t.Fatalf("submit the code: %v", err)
	}
	return resp
}

func TestLinkBrowser(t *testing.T) {
	start := time.Now()
	ctx := startLinkFlowBrowser(t)
	e := startLinkFlow(t)
	dir := t.TempDir()
	if os.Getenv("VOICEGW_SCREENSHOTS") == "1" {
		dir = filepath.Join("..", "..", "docs")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	console := watchLinkFlowConsole(ctx)
	var callback string

	t.Run("happy path", func(t *testing.T) {
		const user = "amzn1.ask.account.BROWSER_HAPPY"
		code := e.code(t, user)
		authBefore := e.provider.Counts().Authorizations

		form := linkFlowOpen(t, ctx, e.gateway.URL+"/link")
		if got := fmt.Sprint(form.Headers["Cache-Control"]); got != "no-store" {
			t.Errorf("form Cache-Control %q", got)
		}
		label, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("code").labels[0].textContent`))
		if err != nil || label != "Code" {
			t.Errorf("the code field's label is %q (%v)", label, err)
		}
		// Typed as Alexa says it, digit by digit with spaces.
		resp := linkFlowType(t, ctx, e, spaced(code), dir, "link-form.png")
		if resp.Status != 200 || !strings.Contains(resp.URL, "/link/callback?") {
			t.Fatalf("ended on %s with %d", resp.URL, resp.Status)
		}
		if e.provider.Counts().Authorizations != authBefore+1 {
			t.Fatal("the browser was not sent to the provider")
		}
		if h1 := linkFlowText(t, ctx, "result"); !strings.Contains(h1, "linked") {
			t.Fatalf("success page says %q", h1)
		}
		title, _ := chromedp.Run(ctx, chromedp.Title())
		if !strings.HasPrefix(title, "Account linked") {
			t.Errorf("success page title %q", title)
		}
		linkFlowShot(t, ctx, dir, "link-success.png")
		callback, err = chromedp.Run(ctx, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}

		tok := e.provider.LastToken()
		if r := e.turn(t, user); r.Speech != linkFlowRepos {
			t.Fatalf("next turn said %q, want %q", r.Speech, linkFlowRepos)
		}
		if got := e.upstream.LastAuth(user); got != "Bearer "+tok.Access {
			t.Fatalf("upstream saw Authorization %q, want the new bearer token", got)
		}
	})

	t.Run("replayed callback", func(t *testing.T) {
		if callback == "" {
			t.Fatal("no callback URL from the happy path")
		}
		resp := linkFlowOpen(t, ctx, callback)
		if resp.Status != 410 {
			t.Fatalf("replayed callback = %d, want 410", resp.Status)
		}
		if msg := linkFlowText(t, ctx, "result"); !strings.Contains(msg, "already used") {
			t.Fatalf("replay page says %q", msg)
		}
	})

	t.Run("wrong code", func(t *testing.T) {
		code := e.code(t, "amzn1.ask.account.BROWSER_WRONG")
		resp := linkFlowType(t, ctx, e, linkFlowUnused(t, e, code), dir, "")
		if resp.Status != 400 {
			t.Fatalf("wrong code = %d, want 400", resp.Status)
		}
		if msg := linkFlowText(t, ctx, "error"); !strings.Contains(msg, "not valid") {
			t.Fatalf("wrong code page says %q", msg)
		}
		// The form is shown again, ready for another try.
		if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID("code"))); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("expired code", func(t *testing.T) {
		code := e.code(t, "amzn1.ask.account.BROWSER_EXPIRED")
		e.expire(t, code)
		resp := linkFlowType(t, ctx, e, code, dir, "")
		if resp.Status != 410 {
			t.Fatalf("expired code = %d, want 410", resp.Status)
		}
		if msg := linkFlowText(t, ctx, "result"); !strings.Contains(msg, "expired") {
			t.Fatalf("expired code page says %q", msg)
		}
		linkFlowShot(t, ctx, dir, "link-error.png")
	})

	// The account-takeover attack of issue 11 with two real browsers:
	// Mallory's tab stops where the gateway sends her to the provider, and
	// Bob opens that URL in a browser context of his own.
	t.Run("a provider URL opened in another browser links nobody", func(t *testing.T) {
		const mallory = "amzn1.ask.account.BROWSER_MALLORY"
		code := e.code(t, mallory)
		paused := make(chan *fetch.EventRequestPaused, 1)
		lctx, stopListen := context.WithCancel(ctx)
		defer stopListen()
		if err := chromedp.Listen(lctx, func(ev any) {
			if p, ok := ev.(*fetch.EventRequestPaused); ok {
				select {
				case paused <- p:
				default:
				}
			}
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{
			Patterns: []*fetch.RequestPattern{{URLPattern: e.provider.URL + "/authorize*"}},
		}); err != nil {
			t.Fatalf("intercept the provider: %v", err)
		}
		linkFlowOpen(t, ctx, e.gateway.URL+"/link")
		if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("code"), code), chromedp.Click(chromedp.ID("submit"))); err != nil {
			t.Fatalf("submit the code: %v", err)
		}
		var providerURL string
		select {
		case p := <-paused:
			providerURL = p.Request.URL
			if _, err := chromedp.Call(ctx, fetch.FailRequest, fetch.FailRequestParams{RequestID: p.RequestID, ErrorReason: network.ErrorReasonAborted}); err != nil {
				t.Fatal(err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the browser was never sent to the provider")
		}
		if _, err := chromedp.Call(ctx, fetch.Disable, cdp.Empty{}); err != nil {
			t.Fatal(err)
		}

		bob, closeBob := chromedp.NewContext(ctx, chromedp.WithNewBrowserContext())
		defer closeBob()
		resp := linkFlowOpen(t, bob, providerURL)
		if resp.Status != 403 || !strings.Contains(resp.URL, "/link/callback?") {
			t.Fatalf("Bob's browser ended on %s with %d, want 403 at the callback", resp.URL, resp.Status)
		}
		if msg := linkFlowText(t, bob, "result"); !strings.Contains(msg, "started in a different browser") {
			t.Fatalf("Bob's page says %q", msg)
		}
		linkFlowShot(t, bob, dir, "link-other-browser.png")
		if got := e.raw(t, "users/"+mallory+"/github"); got != nil {
			t.Fatal("Bob's account was linked to Mallory's Echo")
		}
		// Nothing was burned: in Mallory's own browser the URL still works.
		if resp := linkFlowOpen(t, ctx, providerURL); resp.Status != 200 {
			t.Fatalf("Mallory's own callback = %d", resp.Status)
		}
		if msg := linkFlowText(t, ctx, "result"); !strings.Contains(msg, "linked") {
			t.Fatalf("Mallory's page says %q", msg)
		}
	})

	e.assertLogsClean(t)
	if entries := console.Entries(); len(entries) > 0 {
		t.Errorf("the browser logged:\n%s", strings.Join(entries, "\n"))
	}
	t.Logf("browser test took %v", time.Since(start).Round(time.Millisecond))
}
