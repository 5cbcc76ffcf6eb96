package linking

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/auth"
)

const csrfCookie = "voicegw_csrf"

// ServeHTTP serves GET /link (the code form), POST /link (check the code,
// redirect to the provider) and GET /link/callback (exchange and store the
// token).
func (l *Linker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' https: http:; frame-ancestors 'none'; base-uri 'none'")
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	switch {
	case r.URL.Path == "/link" && r.Method == http.MethodGet:
		l.form(w, r, http.StatusOK, "")
	case r.URL.Path == "/link" && r.Method == http.MethodPost:
		l.submit(ctx, w, r)
	case r.URL.Path == "/link/callback" && r.Method == http.MethodGet:
		l.callback(ctx, w, r)
	default:
		l.result(w, http.StatusNotFound, false, "Not found", "There is no such page.", "Open /link to link an account.")
	}
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
	var b [24]byte
	_, _ = rand.Read(b[:])
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	http.SetCookie(w, &http.Cookie{
		Name: csrfCookie, Value: tok, Path: "/link", HttpOnly: true,
		Secure: strings.HasPrefix(l.cfg.Server.PublicURL, "https://"), SameSite: http.SameSiteStrictMode,
		MaxAge: int(CodeTTL / time.Second),
	})
	l.render(w, status, "link.html", formPage{Title: "Link your account", Action: "/link", CSRF: tok, Error: msg})
}

func (l *Linker) result(w http.ResponseWriter, status int, ok bool, title, msg, hint string) {
	l.render(w, status, "result.html", resultPage{Title: title, OK: ok, Message: msg, Hint: hint})
}

func (l *Linker) fail(w http.ResponseWriter, status int, reason, title, msg string) {
	l.log.Warn("link failed", "status", status, "reason", reason)
	l.result(w, status, false, title, msg, "Ask Alexa again to get a new code, then open this page once more.")
}

func (l *Linker) unavailable(w http.ResponseWriter, err error) {
	l.log.Error("link: secret store failed", "error", err.Error())
	l.result(w, http.StatusServiceUnavailable, false, "Linking is unavailable",
		"Sorry, linking is not available right now.", "Please try again in a few minutes.")
}

func (l *Linker) submit(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	client := clientAddr(r)
	if !l.wrong.reserve(client, l.now()) {
		l.log.Warn("link failed", "status", http.StatusTooManyRequests, "reason", "too many wrong codes", "client", client)
		w.Header().Set("Retry-After", "600")
		l.result(w, http.StatusTooManyRequests, false, "Too many attempts",
			"Too many wrong codes were entered from here.", "Please wait ten minutes and try again.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := r.ParseForm(); err != nil {
		l.wrong.release(client)
		l.form(w, r, http.StatusBadRequest, "Please enter the six-digit code.")
		return
	}
	c, err := r.Cookie(csrfCookie)
	if err != nil || c.Value == "" || !constantEqual(c.Value, r.PostForm.Get("csrf")) {
		l.wrong.release(client)
		l.log.Warn("link failed", "status", http.StatusForbidden, "reason", "csrf token mismatch")
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
		// The attempt reserved above stays counted.
		l.log.Warn("link failed", "status", http.StatusBadRequest, "reason", reason, "client", client)
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
		l.unavailable(w, err)
		return
	}
	if !constantEqual(e.Data["code"].Reveal(), code) {
		wrong("code mismatch")
		return
	}
	if e.Data["used"] != "" {
		l.fail(w, http.StatusGone, "code already used", "Code already used", "This code was already used.")
		return
	}
	if !validCode(e, "", "", l.now()) {
		l.fail(w, http.StatusGone, "code expired", "Code expired", "This code has expired.")
		return
	}
	svc := l.cfg.Services[e.Data["service"].Reveal()]
	if svc == nil || svc.OAuth2 == nil {
		l.fail(w, http.StatusBadRequest, "service no longer linkable", "Cannot link", "This service can no longer be linked.")
		return
	}
	conf, err := l.oauthConfig(ctx, svc)
	if err != nil {
		l.unavailable(w, err)
		return
	}
	var nb [18]byte
	_, _ = rand.Read(nb[:])
	nonce := base64.RawURLEncoding.EncodeToString(nb[:])
	next := clone(e.Data)
	next["nonce"] = gateway.Secret(nonce)
	opts := []oauth2.AuthCodeOption{}
	if svc.OAuth2.PKCE == nil || *svc.OAuth2.PKCE {
		verifier := oauth2.GenerateVerifier()
		next["pkce_verifier"] = gateway.Secret(verifier)
		opts = append(opts, oauth2.S256ChallengeOption(verifier))
	}
	if _, err := l.store.Write(ctx, codesPath+code, next, e.Version); err != nil {
		if errors.Is(err, gateway.ErrConflict) {
			l.fail(w, http.StatusConflict, "code changed meanwhile", "Please try again", "This code is being used elsewhere.")
			return
		}
		l.unavailable(w, err)
		return
	}
	key, err := l.stateKey(ctx)
	if err != nil {
		l.unavailable(w, err)
		return
	}
	l.wrong.release(client)
	st := l.signState(key, state{Code: code, Nonce: nonce, Expires: l.now().Add(StateTTL).Unix()})
	http.Redirect(w, r, conf.AuthCodeURL(st, opts...), http.StatusSeeOther)
}

func (l *Linker) callback(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	key, err := l.stateKey(ctx)
	if err != nil {
		l.unavailable(w, err)
		return
	}
	st, err := l.verifyState(key, q.Get("state"))
	if err != nil {
		l.fail(w, http.StatusBadRequest, "bad state: "+err.Error(), "Link not valid", "This link is not valid.")
		return
	}
	e, err := l.store.Read(ctx, codesPath+st.Code)
	if errors.Is(err, gateway.ErrNotFound) {
		l.fail(w, http.StatusGone, "callback replayed or code gone", "Link already used", "This link was already used or has expired.")
		return
	}
	if err != nil {
		l.unavailable(w, err)
		return
	}
	// The code's own expiry was checked when it was entered; from there
	// the signed state's expiry bounds the trip through the provider.
	if e.Data["used"] != "" {
		l.fail(w, http.StatusGone, "code used at callback", "Link already used", "This link was already used.")
		return
	}
	if !constantEqual(e.Data["nonce"].Reveal(), st.Nonce) {
		l.fail(w, http.StatusBadRequest, "state nonce does not match the code", "Link not valid", "This link is not valid any more.")
		return
	}
	if perr := q.Get("error"); perr != "" {
		msg := "The provider did not link your account."
		if perr == "access_denied" {
			msg = "You cancelled linking, so nothing was linked."
		}
		l.fail(w, http.StatusBadRequest, "provider answered error "+firstWord(perr), "Not linked", msg)
		return
	}
	authCode := q.Get("code")
	if authCode == "" {
		l.fail(w, http.StatusBadRequest, "callback without code", "Not linked", "The provider sent no authorization.")
		return
	}
	svc := l.cfg.Services[e.Data["service"].Reveal()]
	userID := e.Data["user_id"].Reveal()
	if svc == nil || svc.OAuth2 == nil || !gateway.ValidUserID(userID) {
		l.fail(w, http.StatusBadRequest, "code names no linkable service", "Cannot link", "This service can no longer be linked.")
		return
	}
	// Burn the code before the exchange, so a replayed callback loses.
	used := clone(e.Data)
	used["used"] = gateway.Secret(l.now().UTC().Format(time.RFC3339))
	delete(used, "pkce_verifier")
	delete(used, "nonce")
	if _, err := l.store.Write(ctx, codesPath+st.Code, used, e.Version); err != nil {
		if errors.Is(err, gateway.ErrConflict) {
			l.fail(w, http.StatusGone, "callback raced another", "Link already used", "This link was already used.")
			return
		}
		l.unavailable(w, err)
		return
	}
	conf, err := l.oauthConfig(ctx, svc)
	if err != nil {
		l.unavailable(w, err)
		return
	}
	opts := []oauth2.AuthCodeOption{}
	if v := e.Data["pkce_verifier"].Reveal(); v != "" {
		opts = append(opts, oauth2.VerifierOption(v))
	}
	tok, err := conf.Exchange(context.WithValue(ctx, oauth2.HTTPClient, l.client), authCode, opts...)
	if err != nil {
		reason := "token exchange failed"
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			reason += ": " + firstWord(re.ErrorCode)
		}
		l.fail(w, http.StatusBadGateway, reason, "Not linked", "The provider did not accept the link.")
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
		l.unavailable(w, err)
		return
	}
	// The burnt code stays in the store, marked used, so it is never
	// drawn again (creation writes with check-and-set 0); only the
	// pending index goes.
	_ = l.store.Delete(ctx, pendingPath+userID+"/"+svc.Name)
	l.log.Info("account linked", "service", svc.Name)
	l.result(w, http.StatusOK, true, "Account linked",
		"Your "+svc.Name+" account is now linked.", "")
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
