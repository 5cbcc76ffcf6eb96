package linking

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/templates"
)

// Fields of a flow entry (link-codes/flows/<id>) beyond those of a code.
const fieldNext = "next"

// Begin starts the provider's authorization-code flow that links userID's
// svc account in this browser, for a part of the gateway that has already
// identified the user some other way than with a spoken code (the MCP
// authorization server). The flow is what /link runs after a code was
// entered: the same binding cookie, opaque state, PKCE and token storage
// under users/<userID>/<svc>; /link/callback then sends the browser to
// next, a path on the gateway, instead of showing the success page.
//
// It answers the browser itself (a redirect to the provider, or an error
// page) and returns an error only for the caller's log.
func (l *Linker) Begin(ctx context.Context, w http.ResponseWriter, r *http.Request, svc *config.Service, userID, next string) error {
	templates.SecurityHeaders(w.Header(), l.csp)
	if svc == nil || svc.OAuth2 == nil {
		l.flowFail(w, http.StatusBadRequest, "service not linkable", "Cannot link", "This service cannot be linked.")
		return errors.New("service has no oauth2")
	}
	if !gateway.ValidUser(userID) || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") {
		l.flowFail(w, http.StatusBadRequest, "invalid flow", "Cannot link", "This link is not valid.")
		return errors.New("invalid user or next path")
	}
	conf, err := l.oauthConfig(ctx, svc)
	if err != nil {
		l.unavailable(w, "begin", err)
		return err
	}
	aead, err := l.stateAEAD(ctx)
	if err != nil {
		l.unavailable(w, "begin", err)
		return err
	}
	now := l.now()
	id := randomToken(24)
	binding := randomToken(32)
	nonce := randomToken(18)
	data := gateway.SecretData{
		"user_id":      gateway.Secret(userID),
		"service":      gateway.Secret(svc.Name),
		"expires_at":   gateway.Secret(now.Add(FlowTTL).UTC().Format(time.RFC3339)),
		fieldBrowser:   browserHash(binding),
		fieldNonce:     gateway.Secret(nonce),
		fieldFlowUntil: gateway.Secret(now.Add(FlowTTL).UTC().Format(time.RFC3339)),
		fieldNext:      gateway.Secret(next),
	}
	opts := []oauth2.AuthCodeOption{}
	if svc.OAuth2.PKCE == nil || *svc.OAuth2.PKCE {
		verifier := oauth2.GenerateVerifier()
		data[fieldVerifier] = gateway.Secret(verifier)
		opts = append(opts, oauth2.S256ChallengeOption(verifier))
	}
	if _, err := l.store.Write(ctx, flowsPath+id, data, 0); err != nil {
		l.unavailable(w, "begin", err)
		return err
	}
	l.setCookie(w, bindingCookie, binding, FlowTTL, http.SameSiteLaxMode)
	l.observe("begin", "redirect")
	st := sealState(aead, state{Flow: id, Nonce: nonce, Expires: now.Add(FlowTTL).Unix()})
	http.Redirect(w, r, conf.AuthCodeURL(st, opts...), http.StatusSeeOther)
	return nil
}

// flowFail answers a failed step of a flow that Begin started.
func (l *Linker) flowFail(w http.ResponseWriter, status int, reason, title, msg string) {
	l.observe("flow", "failed")
	l.log.Warn("link failed", "step", "flow", "status", status, "reason", reason)
	l.result(w, status, false, title, msg, "Start connecting again from your assistant.")
}

// flowCallback completes a flow that Begin started: only in the browser
// that began it, once, then on to the flow's next page.
func (l *Linker) flowCallback(ctx context.Context, w http.ResponseWriter, r *http.Request, st state) {
	q := r.URL.Query()
	path := flowsPath + st.Flow
	e, err := l.store.Read(ctx, path)
	if errors.Is(err, gateway.ErrNotFound) {
		l.flowFail(w, http.StatusGone, "flow callback replayed or flow gone", "Link already used", "This link was already used or has expired.")
		return
	}
	if err != nil {
		l.unavailable(w, "callback", err)
		return
	}
	if e.Data[fieldUsed] != "" {
		l.flowFail(w, http.StatusGone, "flow used at callback", "Link already used", "This link was already used.")
		return
	}
	if binding := l.cookie(r, bindingCookie); binding == "" ||
		!constantEqual(browserHash(binding).Reveal(), e.Data[fieldBrowser].Reveal()) {
		l.flowFail(w, http.StatusForbidden, "flow callback from a browser that did not start it",
			"Link started elsewhere", "This link was started in a different browser, so nothing was linked.")
		return
	}
	if !constantEqual(e.Data[fieldNonce].Reveal(), st.Nonce) {
		l.flowFail(w, http.StatusBadRequest, "state nonce does not match the flow", "Link not valid", "This link is not valid any more.")
		return
	}
	// Burn the flow before anything else, so a replayed callback loses.
	used := clone(e.Data)
	used[fieldUsed] = gateway.Secret(l.now().UTC().Format(time.RFC3339))
	delete(used, fieldVerifier)
	if _, err := l.store.Write(ctx, path, used, e.Version); err != nil {
		if errors.Is(err, gateway.ErrConflict) {
			l.flowFail(w, http.StatusGone, "flow callback raced another", "Link already used", "This link was already used.")
			return
		}
		l.unavailable(w, "callback", err)
		return
	}
	defer func() { _ = l.store.Delete(context.WithoutCancel(ctx), path) }()
	l.setCookie(w, bindingCookie, "", -time.Second, http.SameSiteLaxMode)
	if perr := q.Get("error"); perr != "" {
		msg := "The provider did not link your account."
		if perr == "access_denied" {
			msg = "You cancelled linking, so nothing was linked."
		}
		l.flowFail(w, http.StatusBadRequest, "provider answered error "+firstWord(perr), "Not linked", msg)
		return
	}
	authCode := q.Get("code")
	svc := l.cfg.Services[e.Data["service"].Reveal()]
	userID := e.Data["user_id"].Reveal()
	next := e.Data[fieldNext].Reveal()
	switch {
	case authCode == "":
		l.flowFail(w, http.StatusBadRequest, "callback without code", "Not linked", "The provider sent no authorization.")
		return
	case svc == nil || svc.OAuth2 == nil || !gateway.ValidUser(userID) || !strings.HasPrefix(next, "/"):
		l.flowFail(w, http.StatusBadRequest, "flow names no linkable service", "Cannot link", "This service can no longer be linked.")
		return
	}
	reason, err := l.link(ctx, svc, userID, authCode, e.Data[fieldVerifier].Reveal())
	if err != nil {
		l.unavailable(w, "callback", err)
		return
	}
	if reason != "" {
		l.flowFail(w, http.StatusBadGateway, reason, "Not linked", "The provider did not accept the link.")
		return
	}
	l.observe("callback", "linked")
	l.log.Info("account linked", "service", svc.Name, "flow", "begin")
	u, err := url.Parse(next)
	if err != nil || u.Host != "" || u.Scheme != "" {
		l.flowFail(w, http.StatusBadRequest, "flow next is not a path", "Cannot link", "This link is not valid.")
		return
	}
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}
