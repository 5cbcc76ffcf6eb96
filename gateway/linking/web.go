package linking

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/auth"
	"github.com/voicegw/voicegw/gateway/ratelimit"
	"github.com/voicegw/voicegw/templates"
)

// Cookie names without their __Host- prefix, which they get when
// public_url is https.
const (
	csrfCookie    = "voicegw_csrf"
	bindingCookie = "voicegw_link"
)

// cookieName returns name with the __Host- prefix when the gateway is
// served over https: such a cookie must be Secure, for the host only and
// for path /, so a sibling subdomain cannot plant it.
func (l *Linker) cookieName(name string) string {
	if l.https {
		return "__Host-" + name
	}
	return name
}

func (l *Linker) setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration, site http.SameSite) {
	http.SetCookie(w, &http.Cookie{
		Name: l.cookieName(name), Value: value, Path: "/", HttpOnly: true,
		Secure: l.https, SameSite: site, MaxAge: int(maxAge / time.Second),
	})
}

func (l *Linker) cookie(r *http.Request, name string) string {
	c, err := r.Cookie(l.cookieName(name))
	if err != nil {
		return ""
	}
	return c.Value
}

// ServeHTTP serves GET /link (the code form), POST /link (check the code,
// bind the flow to the browser, redirect to the provider) and GET
// /link/callback (check the browser, exchange and store the token); any
// other path or method under /link gets a 404 or 405 page.
func (l *Linker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	templates.SecurityHeaders(w.Header(), l.csp)
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	switch r.URL.Path {
	case "/link":
		switch r.Method {
		case http.MethodGet:
			l.form(w, r, http.StatusOK, "")
		case http.MethodPost:
			l.submit(ctx, w, r)
		default:
			l.notAllowed(w, "GET, POST")
		}
	case "/link/callback":
		if r.Method != http.MethodGet {
			l.notAllowed(w, "GET")
			return
		}
		l.callback(ctx, w, r)
	default:
		l.result(w, http.StatusNotFound, false, "Not found", "There is no such page.", "Open /link to link an account.")
	}
}

func (l *Linker) notAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	l.result(w, http.StatusMethodNotAllowed, false, "Not allowed", "This page cannot be used that way.", "Open /link to link an account.")
}

type formPage struct {
	Title  string
	Action string
	CSRF   string
	Error  string
}

type resultPage struct {
	Title   string
	OK      bool
	Message string
	Hint    string
}

func (l *Linker) render(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := l.pages.ExecuteTemplate(&buf, name, data); err != nil {
		l.log.Error("link page failed", "page", name, "error", err.Error())
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// form shows the code form with a fresh CSRF token (double-submit cookie).
func (l *Linker) form(w http.ResponseWriter, r *http.Request, status int, msg string) {
	tok := randomToken(24)
	l.setCookie(w, csrfCookie, tok, CodeTTL, http.SameSiteStrictMode)
	l.render(w, status, "link.html", formPage{Title: "Link your account", Action: "/link", CSRF: tok, Error: msg})
}

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (l *Linker) result(w http.ResponseWriter, status int, ok bool, title, msg, hint string) {
	l.render(w, status, "result.html", resultPage{Title: title, OK: ok, Message: msg, Hint: hint})
}

// fail answers a failed step with an error page and counts it.
func (l *Linker) fail(w http.ResponseWriter, step, result string, status int, reason, title, msg string) {
	l.observe(step, result)
	l.log.Warn("link failed", "step", step, "status", status, "reason", reason)
	l.result(w, status, false, title, msg, "Ask Alexa again to get a new code, then open this page once more.")
}

func (l *Linker) unavailable(w http.ResponseWriter, step string, err error) {
	l.observe(step, "error")
	l.log.Error("link: secret store failed", "step", step, "error", err.Error())
	l.result(w, http.StatusServiceUnavailable, false, "Linking is unavailable",
		"Sorry, linking is not available right now.", "Please try again in a few minutes.")
}

// submit checks an entered code and starts the provider flow for this
// browser. Every submission counts against the client's limit.
func (l *Linker) submit(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	client := clientAddr(r)
	now := l.now()
	if !l.limits.Submissions.Allow(ratelimit.ClientKey(client), now) {
		l.observe("submit", "limited")
		l.log.Warn("link failed", "step", "submit", "status", http.StatusTooManyRequests, "reason", "too many codes entered", "client", client)
		w.Header().Set("Retry-After", strconv.Itoa(int(WrongCodeWindow/time.Second)))
		l.result(w, http.StatusTooManyRequests, false, "Too many attempts",
			"Too many codes were entered from here.", "Please wait ten minutes and try again.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := r.ParseForm(); err != nil {
		l.observe("submit", "bad_form")
		l.form(w, r, http.StatusBadRequest, "Please enter the six-digit code.")
		return
	}
	if tok := l.cookie(r, csrfCookie); tok == "" || !constantEqual(tok, r.PostForm.Get("csrf")) {
		l.observe("submit", "csrf")
		l.log.Warn("link failed", "step", "submit", "status", http.StatusForbidden, "reason", "csrf token mismatch", "client", client)
		l.form(w, r, http.StatusForbidden, "This form expired. Please enter the code again.")
		return
	}
	code := strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		if r == ' ' || r == '-' {
			return -1
		}
		return 'x'
	}, r.PostForm.Get("code"))
	wrong := func(reason string) {
		l.observe("submit", "wrong")
		l.log.Warn("link failed", "step", "submit", "status", http.StatusBadRequest, "reason", reason, "client", client)
		l.form(w, r, http.StatusBadRequest, "That code is not valid. Check the code Alexa told you and try again.")
	}
	if len(code) != 6 || strings.Contains(code, "x") {
		wrong("malformed code")
		return
	}
	e, err := l.store.Read(ctx, codesPath+code)
	if errors.Is(err, gateway.ErrNotFound) {
		wrong("unknown code")
		return
	}
	if err != nil {
		l.unavailable(w, "submit", err)
		return
	}
	if !constantEqual(e.Data[fieldCode].Reveal(), code) {
		wrong("code mismatch")
		return
	}
	if e.Data[fieldUsed] != "" {
		l.fail(w, "submit", "used", http.StatusGone, "code already used", "Code already used", "This code was already used.")
		return
	}
	if exp, err := time.Parse(time.RFC3339, e.Data["expires_at"].Reveal()); err != nil || !now.Before(exp) {
		l.fail(w, "submit", "expired", http.StatusGone, "code expired", "Code expired", "This code has expired.")
		return
	}
	// While one browser's flow is fresh, no other browser may touch the
	// code: it would take the flow over, or break it.
	if freshFlow(e, now) && !constantEqual(browserHash(l.cookie(r, bindingCookie)).Reveal(), e.Data[fieldBrowser].Reveal()) {
		l.fail(w, "submit", "other_browser", http.StatusConflict, "code in use by another browser",
			"Code in use", "This code is already being used in another browser. Finish linking there, or ask Alexa for a new code in a few minutes.")
		return
	}
	if submissions(e) >= MaxSubmissions {
		l.fail(w, "submit", "spent", http.StatusGone, "code entered too often", "Code used up",
			"This code was entered too many times.")
		return
	}
	svc := l.cfg.Services[e.Data["service"].Reveal()]
	if svc == nil || svc.OAuth2 == nil {
		l.fail(w, "submit", "not_linkable", http.StatusBadRequest, "service no longer linkable", "Cannot link", "This service can no longer be linked.")
		return
	}
	conf, err := l.oauthConfig(ctx, svc)
	if err != nil {
		l.unavailable(w, "submit", err)
		return
	}
	aead, err := l.stateAEAD(ctx)
	if err != nil {
		l.unavailable(w, "submit", err)
		return
	}
	binding := randomToken(32)
	nonce := randomToken(18)
	next := clone(e.Data)
	next[fieldSubmissions] = gateway.Secret(strconv.Itoa(submissions(e) + 1))
	next[fieldBrowser] = browserHash(binding)
	next[fieldNonce] = gateway.Secret(nonce)
	next[fieldFlowUntil] = gateway.Secret(now.Add(FlowTTL).UTC().Format(time.RFC3339))
	delete(next, fieldVerifier)
	opts := []oauth2.AuthCodeOption{}
	if svc.OAuth2.PKCE == nil || *svc.OAuth2.PKCE {
		verifier := oauth2.GenerateVerifier()
		next[fieldVerifier] = gateway.Secret(verifier)
		opts = append(opts, oauth2.S256ChallengeOption(verifier))
	}
	if _, err := l.store.Write(ctx, codesPath+code, next, e.Version); err != nil {
		if errors.Is(err, gateway.ErrConflict) {
			l.fail(w, "submit", "conflict", http.StatusConflict, "code changed meanwhile", "Please try again", "This code is being used elsewhere.")
			return
		}
		l.unavailable(w, "submit", err)
		return
	}
	l.setCookie(w, bindingCookie, binding, FlowTTL, http.SameSiteLaxMode)
	l.observe("submit", "redirect")
	st := sealState(aead, state{Code: code, Nonce: nonce, Expires: now.Add(FlowTTL).Unix()})
	http.Redirect(w, r, conf.AuthCodeURL(st, opts...), http.StatusSeeOther)
}

// callback completes the flow: only in the browser that entered the code,
// for the flow that browser started last.
func (l *Linker) callback(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	aead, err := l.stateAEAD(ctx)
	if err != nil {
		l.unavailable(w, "callback", err)
		return
	}
	st, err := l.openState(aead, q.Get("state"))
	if err != nil {
		l.fail(w, "callback", "invalid", http.StatusBadRequest, "bad state: "+err.Error(), "Link not valid", "This link is not valid.")
		return
	}
	e, err := l.store.Read(ctx, codesPath+st.Code)
	if errors.Is(err, gateway.ErrNotFound) {
		l.fail(w, "callback", "used", http.StatusGone, "callback replayed or code gone", "Link already used", "This link was already used or has expired.")
		return
	}
	if err != nil {
		l.unavailable(w, "callback", err)
		return
	}
	if e.Data[fieldUsed] != "" {
		l.fail(w, "callback", "used", http.StatusGone, "code used at callback", "Link already used", "This link was already used.")
		return
	}
	// The browser binding is checked before anything is burned: a
	// provider URL sent to someone else links nobody and spoils nothing.
	if binding := l.cookie(r, bindingCookie); binding == "" ||
		!constantEqual(browserHash(binding).Reveal(), e.Data[fieldBrowser].Reveal()) {
		l.fail(w, "callback", "other_browser", http.StatusForbidden, "callback from a browser that did not enter the code",
			"Link started elsewhere", "This link was started in a different browser, so nothing was linked. "+
				"If you want to link your own account, ask Alexa for a code and enter it on this device.")
		return
	}
	if !constantEqual(e.Data[fieldNonce].Reveal(), st.Nonce) {
		l.fail(w, "callback", "invalid", http.StatusBadRequest, "state nonce does not match the code", "Link not valid", "This link is not valid any more.")
		return
	}
	if perr := q.Get("error"); perr != "" {
		// The flow is over: the code may be entered again, in any browser.
		ended := clone(e.Data)
		for _, k := range []string{fieldBrowser, fieldNonce, fieldFlowUntil, fieldVerifier} {
			delete(ended, k)
		}
		if _, err := l.store.Write(ctx, codesPath+st.Code, ended, e.Version); err != nil && !errors.Is(err, gateway.ErrConflict) {
			l.log.Warn("link: could not end the flow", "error", err.Error())
		}
		l.setCookie(w, bindingCookie, "", -time.Second, http.SameSiteLaxMode)
		msg := "The provider did not link your account."
		if perr == "access_denied" {
			msg = "You cancelled linking, so nothing was linked."
		}
		l.fail(w, "callback", "denied", http.StatusBadRequest, "provider answered error "+firstWord(perr), "Not linked", msg)
		return
	}
	authCode := q.Get("code")
	if authCode == "" {
		l.fail(w, "callback", "invalid", http.StatusBadRequest, "callback without code", "Not linked", "The provider sent no authorization.")
		return
	}
	svc := l.cfg.Services[e.Data["service"].Reveal()]
	userID := e.Data["user_id"].Reveal()
	if svc == nil || svc.OAuth2 == nil || !gateway.ValidUserID(userID) {
		l.fail(w, "callback", "not_linkable", http.StatusBadRequest, "code names no linkable service", "Cannot link", "This service can no longer be linked.")
		return
	}
	// Burn the code before the exchange, so a replayed callback loses.
	used := clone(e.Data)
	used[fieldUsed] = gateway.Secret(l.now().UTC().Format(time.RFC3339))
	delete(used, fieldVerifier)
	delete(used, fieldNonce)
	delete(used, fieldBrowser)
	if _, err := l.store.Write(ctx, codesPath+st.Code, used, e.Version); err != nil {
		if errors.Is(err, gateway.ErrConflict) {
			l.fail(w, "callback", "used", http.StatusGone, "callback raced another", "Link already used", "This link was already used.")
			return
		}
		l.unavailable(w, "callback", err)
		return
	}
	l.setCookie(w, bindingCookie, "", -time.Second, http.SameSiteLaxMode)
	conf, err := l.oauthConfig(ctx, svc)
	if err != nil {
		l.unavailable(w, "callback", err)
		return
	}
	opts := []oauth2.AuthCodeOption{}
	if v := e.Data[fieldVerifier].Reveal(); v != "" {
		opts = append(opts, oauth2.VerifierOption(v))
	}
	tok, err := conf.Exchange(context.WithValue(ctx, oauth2.HTTPClient, l.client), authCode, opts...)
	if err != nil {
		reason := "token exchange failed"
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			reason += ": " + firstWord(re.ErrorCode)
		}
		l.fail(w, "callback", "exchange_failed", http.StatusBadGateway, reason, "Not linked", "The provider did not accept the link.")
		return
	}
	data := gateway.SecretData{
		auth.FieldAccessToken: gateway.Secret(tok.AccessToken),
		auth.FieldTokenType:   gateway.Secret(tok.Type()),
	}
	if tok.RefreshToken != "" {
		data[auth.FieldRefreshToken] = gateway.Secret(tok.RefreshToken)
	}
	if !tok.Expiry.IsZero() {
		data[auth.FieldExpiresAt] = gateway.Secret(tok.Expiry.UTC().Format(time.RFC3339))
	}
	if _, err := l.store.Write(ctx, gateway.UserPath(userID, svc.Name), data, -1); err != nil {
		l.unavailable(w, "callback", err)
		return
	}
	// The burnt code stays in the store, marked used, until its number is
	// recycled; only the pending index goes.
	_ = l.store.Delete(ctx, pendingPath+userID+"/"+svc.Name)
	l.observe("callback", "linked")
	l.log.Info("account linked", "service", svc.Name)
	l.result(w, http.StatusOK, true, "Account linked",
		"Your "+svc.Name+" account is now linked.", "")
}

// clientAddr is the client's address as the server determined it (the
// server resolves X-Forwarded-For from trusted proxies into RemoteAddr).
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func clone(d gateway.SecretData) gateway.SecretData {
	out := make(gateway.SecretData, len(d)+2)
	for k, v := range d {
		out[k] = v
	}
	return out
}

// firstWord keeps a provider's error code short and free of free text.
func firstWord(s string) string {
	if i := strings.IndexAny(s, " \t\r\n"); i >= 0 {
		s = s[:i]
	}
	if len(s) > 40 {
		s = s[:40]
	}
	return s
}
