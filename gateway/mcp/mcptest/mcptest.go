// Package mcptest plays the user's browser in tests of voicegw's MCP
// authorization: it follows the redirects through voicegw, answers its
// consent page and passes an OAuth provider that approves without a page
// (linkingtest.Provider), until it is sent to the client's redirect URI.
package mcptest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
)

// Browser is a user agent with cookies.
type Browser struct {
	// Client has the cookie jar and never follows a redirect by itself.
	Client *http.Client
	// Redirect is the client's redirect URI: the browser stops there.
	Redirect string
	// Deny answers the consent page with deny instead of allow.
	Deny bool
}

// NewBrowser returns a browser with an empty cookie jar that stops at
// redirect.
func NewBrowser(redirect string) *Browser {
	jar, _ := cookiejar.New(nil)
	return &Browser{Redirect: redirect, Client: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var flowRe = regexp.MustCompile(`name="flow" value="([^"]+)"`)

// ConsentFlow returns the authorization id of a consent page, or "".
func ConsentFlow(page []byte) string {
	if m := flowRe.FindSubmatch(page); m != nil {
		return string(m[1])
	}
	return ""
}

// Authorize opens authURL and follows it. It returns the redirect URI
// the browser was finally sent to (with the code or the error), or, when
// the flow stops earlier, nil and the status and body of the last page.
func (b *Browser) Authorize(ctx context.Context, authURL string) (*url.URL, int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
	if err != nil {
		return nil, 0, nil, err
	}
	for hop := 0; hop < 20; hop++ {
		resp, err := b.Client.Do(req)
		if err != nil {
			return nil, 0, nil, err
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		switch {
		case resp.StatusCode >= 300 && resp.StatusCode < 400:
			next, err := req.URL.Parse(resp.Header.Get("Location"))
			if err != nil {
				return nil, 0, nil, err
			}
			if strings.HasPrefix(next.String(), b.Redirect) {
				return next, resp.StatusCode, nil, nil
			}
			if req, err = http.NewRequestWithContext(ctx, http.MethodGet, next.String(), nil); err != nil {
				return nil, 0, nil, err
			}
		case resp.StatusCode == http.StatusOK && ConsentFlow(body) != "":
			decision := "allow"
			if b.Deny {
				decision = "deny"
			}
			form := url.Values{"flow": {ConsentFlow(body)}, "decision": {decision}}
			consent, _ := req.URL.Parse("/oauth/authorize/consent")
			req, err = http.NewRequestWithContext(ctx, http.MethodPost, consent.String(), strings.NewReader(form.Encode()))
			if err != nil {
				return nil, 0, nil, err
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		default:
			return nil, resp.StatusCode, body, nil
		}
	}
	return nil, 0, nil, fmt.Errorf("more than 20 redirects from %s", authURL)
}
