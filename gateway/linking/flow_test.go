package linking

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/voicegw/voicegw/gateway"
)

const testSubject = "mcp.0123456789abcdefABCD"

// TestBeginRefuses: Begin starts nothing for a service without oauth2,
// a user that cannot name a store path, or a next page off the gateway.
func TestBeginRefuses(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name, service, user, next string
	}{
		{"no such service", "nope", testSubject, "/oauth/authorize/continue"},
		{"invalid user", "github", "mcp.short", "/oauth/authorize/continue"},
		{"next on another host", "github", testSubject, "//evil.example.com/x"},
		{"next absolute", "github", testSubject, "https://evil.example.com/x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			err := f.l.Begin(context.Background(), rec, httptest.NewRequest(http.MethodGet, "/oauth/authorize", nil),
				f.cfg.Services[tc.service], tc.user, tc.next)
			if err == nil || rec.Code != http.StatusBadRequest || rec.Header().Get("Location") != "" {
				t.Fatalf("Begin = %v, %d to %q; want an error page", err, rec.Code, rec.Header().Get("Location"))
			}
			if rec.Header().Get("Content-Security-Policy") == "" {
				t.Error("error page without security headers")
			}
		})
	}
}

// TestBeginFlow: a flow started by Begin stores the token under the user
// and sends the browser that started it to next, once; the state names
// neither the flow's user nor its next page.
func TestBeginFlow(t *testing.T) {
	f := newFixture(t)
	rec := httptest.NewRecorder()
	if err := f.l.Begin(context.Background(), rec, httptest.NewRequest(http.MethodGet, "/oauth/authorize", nil),
		f.cfg.Services["github"], testSubject, "/oauth/authorize/continue?flow=abc"); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("Begin = %d", rec.Code)
	}
	to, _ := url.Parse(rec.Header().Get("Location"))
	if st := to.Query().Get("state"); strings.Contains(st, "mcp.") || strings.Contains(st, "continue") {
		t.Fatal("the state is readable")
	}
	var binding *http.Cookie
	for _, c := range rec.Result().Cookies() {
		if c.Name == "__Host-"+bindingCookie {
			binding = c
		}
	}
	if binding == nil || !binding.HttpOnly || !binding.Secure {
		t.Fatalf("binding cookie %+v", binding)
	}
	back := f.provider.MustAuthorize(t, to.String())
	callback := func(c *http.Cookie) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, "/link/callback?"+back.RawQuery, nil)
		if c != nil {
			r.AddCookie(c)
		}
		return f.serve(r)
	}
	if rec := callback(nil); rec.Code != http.StatusForbidden {
		t.Fatalf("callback without the cookie = %d, want 403", rec.Code)
	}
	rec = callback(binding)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/oauth/authorize/continue?flow=abc" {
		t.Fatalf("callback = %d to %q", rec.Code, rec.Header().Get("Location"))
	}
	e, err := f.store.Read(context.Background(), gateway.UserPath(testSubject, "github"))
	if err != nil || e.Data["access_token"].Reveal() != f.provider.LastToken().Access {
		t.Fatalf("the token is not stored under the subject: %v", err)
	}
	if rec := callback(binding); rec.Code != http.StatusGone && rec.Code != http.StatusBadRequest {
		t.Fatalf("replayed callback = %d, want 410", rec.Code)
	}
}
