package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/auth"
	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/gateway/render"
	"github.com/voicegw/voicegw/gateway/upstream"
)

// Error kinds, which are also the error speech keys besides statuses.
const (
	kindStatus   = "status"
	kindTimeout  = "timeout"
	kindUnlinked = "unlinked"
	kindVault    = "vault"
	kindMissing  = "missing"
	kindDefault  = "default"
)

// builtinErrors answer when no configured speech matches. Upstream
// statuses have none of their own and get the default one. The built-in
// unlinked speech is made by unlinked, with the user's link code.
var builtinErrors = map[string]string{
	kindTimeout: gateway.SayTimeout,
	kindVault:   "Sorry, I can't reach my secure storage right now. Please try again later.",
	kindMissing: "Sorry, I couldn't find that information.",
	kindDefault: gateway.SayDefault,
}

// turnError is a failed turn, classified for error speech.
type turnError struct {
	kind    string
	status  int
	service *config.Service
	err     error
}

func (te *turnError) Error() string {
	if te.err == nil {
		return te.kind
	}
	return te.err.Error()
}

// keys lists the error speech keys to try, most specific first.
func (te *turnError) keys() []string {
	if te.kind == kindStatus {
		s := strconv.Itoa(te.status)
		return []string{s, s[:1] + "xx", kindDefault}
	}
	if te.kind == kindDefault {
		return []string{kindDefault}
	}
	return []string{te.kind, kindDefault}
}

// run is the state of one turn.
type run struct {
	e      *Engine
	ctx    context.Context
	turn   *gateway.Turn
	skill  *config.Skill
	data   map[string]any
	status int
	failed *turnError
	// locale is the skill's locale that answers the turn.
	locale string
}

// intentLabel names the turn's intent for metrics without letting a
// request invent label values.
func (r *run) intentLabel() string {
	switch r.turn.Kind {
	case gateway.KindLaunch:
		return "launch"
	case gateway.KindSessionEnded:
		return "session_ended"
	case gateway.KindCanFulfill:
		return "can_fulfill"
	case gateway.KindDisabled:
		return "skill_disabled"
	case gateway.KindIntent:
		if _, ok := r.skill.Intents[r.turn.Intent]; ok {
			return r.turn.Intent
		}
		switch r.turn.Intent {
		case config.HelpIntent, config.StopIntent, config.CancelIntent, config.FallbackIntent:
			return r.turn.Intent
		}
	}
	return "other"
}

func (r *run) outcome() string {
	if r.failed == nil {
		return "ok"
	}
	return r.failed.kind
}

func (r *run) answer() *gateway.Reply {
	r.locale = r.skill.LocaleFor(r.turn.Locale)
	switch r.turn.Kind {
	case gateway.KindLaunch:
		return r.respond(r.skill.LaunchC)
	case gateway.KindIntent:
		return r.respond(r.compiled())
	case gateway.KindCanFulfill:
		return &gateway.Reply{Empty: true, CanFulfill: r.canFulfill()}
	case gateway.KindDisabled:
		r.forgetUser()
	}
	return &gateway.Reply{Empty: true}
}

// canFulfill answers whether the skill can fulfil the turn's intent with
// its slots, from the configuration alone (no call, no secret): YES for a
// configured intent whose slots are all its own, else NO; a slot is
// understood (YES) when its value is a value or synonym of its custom type
// in the turn's locale, or resolved by the platform, or its type is built
// in, else MAYBE; the intent's own slots can be fulfilled, others not.
func (r *run) canFulfill() *gateway.CanFulfill {
	in := r.skill.Intents[r.turn.Intent]
	out := &gateway.CanFulfill{Intent: gateway.CanYes, Slots: make(map[string]gateway.SlotFulfill, len(r.turn.Slots))}
	if in == nil {
		out.Intent = gateway.CanNo
	}
	for name, s := range r.turn.Slots {
		var decl *config.Slot
		if in != nil {
			decl = in.Slots[name]
		}
		if decl == nil {
			out.Intent = gateway.CanNo
			out.Slots[name] = gateway.SlotFulfill{Understand: gateway.CanMaybe, Fulfill: gateway.CanNo}
			continue
		}
		out.Slots[name] = gateway.SlotFulfill{Understand: r.understands(decl, s), Fulfill: gateway.CanYes}
	}
	return out
}

// understands says whether every value of a slot is one of its type.
func (r *run) understands(decl *config.Slot, s gateway.Slot) string {
	values, custom := r.skill.Types[decl.Type]
	if !custom {
		return gateway.CanYes // a built-in type: Alexa recognised the value
	}
	all := s.Values
	if len(all) == 0 {
		all = []gateway.Slot{s}
	}
	for _, v := range all {
		known := v.Resolved != ""
		for _, tv := range values {
			known = known || tv.Matches(r.locale, v.Value)
		}
		if !known {
			return gateway.CanMaybe
		}
	}
	return gateway.CanYes
}

// forgetBudget bounds the deletions of a SkillDisabled event.
const forgetBudget = 30 * time.Second

// forgetUser forgets the user who removed the skill. It runs in the
// background with a budget of its own: the event is acknowledged at once
// (nothing is spoken), and a slow Vault cannot cut the deletions short at
// the turn's deadline and leave the user half forgotten.
func (r *run) forgetUser() {
	log, requestID, skill, user := r.e.log, r.turn.RequestID, r.skill.Name, r.turn.UserID
	if r.e.forget == nil {
		log.LogAttrs(r.ctx, slog.LevelInfo, "skill disabled: no secret store, nothing to forget",
			slog.String("request_id", requestID), slog.String("skill", skill))
		return
	}
	ctx, forget := context.WithoutCancel(r.ctx), r.e.forget
	go func() {
		ctx, cancel := context.WithTimeout(ctx, forgetBudget)
		defer cancel()
		if err := forget.Forget(ctx, user); err != nil {
			log.LogAttrs(ctx, slog.LevelWarn, "skill disabled: forgetting the user failed",
				slog.String("request_id", requestID), slog.String("skill", skill), slog.String("error", err.Error()))
		}
	}()
}

// compiled returns the configured intent, or the built-in one that
// answers it.
func (r *run) compiled() *config.Compiled {
	if in := r.skill.Intents[r.turn.Intent]; in != nil && in.C != nil {
		return in.C
	}
	switch r.turn.Intent {
	case config.HelpIntent:
		return r.skill.HelpC
	case config.StopIntent, config.CancelIntent:
		return r.skill.StopC
	}
	return r.skill.FallbackC
}

func (r *run) respond(c *config.Compiled) *gateway.Reply {
	r.data = r.newData(c)
	if r.turn.Kind == gateway.KindIntent {
		if reply := r.dialog(c); reply != nil {
			return reply
		}
	}
	stop := r.progressive(c)
	te := r.runCalls(c)
	stop()
	if te != nil {
		return r.fail(c, te)
	}
	reply := &gateway.Reply{EndSession: c.EndSession, Session: r.session()}
	var err error
	if reply.Speech, err = r.speak(c.Say); err != nil {
		return r.fail(c, r.templateError(err))
	}
	if c.Reprompt != nil {
		rp, err := r.speak(c.Reprompt)
		if err != nil {
			return r.fail(c, r.templateError(err))
		}
		reply.Reprompt = &rp
	}
	if c.CardTitle != nil || c.CardText != nil {
		card := &gateway.Card{Type: gateway.CardSimple}
		if card.Title, err = r.text(c.CardTitle); err != nil {
			return r.fail(c, r.templateError(err))
		}
		if card.Text, err = r.text(c.CardText); err != nil {
			return r.fail(c, r.templateError(err))
		}
		reply.Card = card
	}
	for _, s := range c.Session {
		v, err := s.T.Execute(r.data)
		if err != nil {
			return r.fail(c, r.templateError(err))
		}
		reply.Session[s.Name] = v
	}
	if len(c.Extracts) > 0 {
		reply.Values = make(map[string]any, len(c.Extracts))
		for _, name := range c.Extracts {
			reply.Values[name] = r.data[name]
		}
	}
	return reply
}

// progressive arranges for the intent's progressive speech to be sent
// when its calls have not finished after server.progressive_after; the
// returned function cancels it once they have.
func (r *run) progressive(c *config.Compiled) (stop func()) {
	if c.Progressive == nil || len(c.Calls) == 0 || r.e.progress == nil || r.turn.APIEndpoint == "" {
		return func() {}
	}
	// Rendered now: the calls write to the data while they run.
	sp, err := r.speak(c.Progressive)
	if err != nil {
		r.e.log.Warn("progressive speech failed", "skill", r.skill.Name, "error", err.Error())
		return func() {}
	}
	after := r.e.cfg.Server.ProgressiveAfter.Or(config.DefaultProgressiveAfter)
	t := time.AfterFunc(after, func() {
		if err := r.e.progress.Send(r.ctx, r.turn, sp); err != nil {
			r.e.log.Warn("progressive response failed", "skill", r.skill.Name, "error", err.Error())
		}
	})
	return func() { t.Stop() }
}

// dialog elicits a missing required slot and asks for confirmation; it
// returns nil when the intent may run.
func (r *run) dialog(c *config.Compiled) *gateway.Reply {
	for _, s := range c.Slots {
		if !s.Required || r.turn.Slots[s.Name].Filled() {
			continue
		}
		return r.ask(c, s.Prompt, gateway.Directive{Type: "Dialog.ElicitSlot", Slot: s.Name})
	}
	if c.Confirm == nil {
		return nil
	}
	switch r.turn.Confirmation {
	case gateway.ConfirmConfirmed:
		return nil
	case gateway.ConfirmDenied:
		return &gateway.Reply{Speech: gateway.Speech{Text: "Okay."}, EndSession: true, Session: r.session()}
	}
	return r.ask(c, c.Confirm, gateway.Directive{Type: "Dialog.ConfirmIntent"})
}

// ask speaks a dialog question (also as the reprompt) with its directive;
// the session stays open.
func (r *run) ask(c *config.Compiled, question *config.Speech, d gateway.Directive) *gateway.Reply {
	sp, err := r.speak(question)
	if err != nil {
		return r.fail(c, r.templateError(err))
	}
	return &gateway.Reply{Speech: sp, Reprompt: &sp, Session: r.session(), Directives: []gateway.Directive{d}}
}

// newData builds the template data of SPEC 3.1. Every session attribute a
// template reads and every extract name of the skill is present ("" when
// absent), so templates never print "<no value>". A slot with multiple
// values is a list of them (an empty list when absent).
func (r *run) newData(c *config.Compiled) map[string]any {
	t := r.turn
	slots := make(map[string]any, len(t.Slots))
	ids := make(map[string]any, len(t.Slots))
	for name, s := range t.Slots {
		slots[name] = s.Text()
		ids[name] = s.ID
	}
	for _, spec := range c.Slots {
		s, ok := t.Slots[spec.Name]
		switch {
		case spec.Multiple:
			slots[spec.Name] = s.Texts()
			ids[spec.Name] = s.IDs()
		case !ok:
			slots[spec.Name] = ""
			ids[spec.Name] = ""
		}
	}
	session := make(map[string]any, len(t.Session)+len(r.e.cfg.SessionRefs))
	for k, v := range t.Session {
		session[k] = v
	}
	for _, k := range r.e.cfg.SessionRefs {
		if _, ok := session[k]; !ok {
			session[k] = ""
		}
	}
	data := make(map[string]any, 10+len(r.skill.ExtractRefs))
	for _, n := range r.skill.ExtractRefs {
		data[n] = ""
	}
	data["slots"] = slots
	data["slot_ids"] = ids
	data["session"] = session
	data["user"] = map[string]string{"id": t.UserID}
	data["locale"] = t.Locale
	data["intent"] = t.Intent
	data["skill"] = r.skill.Name
	data["status"] = 0
	return data
}

// session returns the attributes the reply carries: the request's, to
// which the intent's session values are added.
func (r *run) session() map[string]any {
	out := make(map[string]any, len(r.turn.Session)+2)
	for k, v := range r.turn.Session {
		out[k] = v
	}
	return out
}

func (r *run) speak(s *config.Speech) (gateway.Speech, error) {
	s = s.In(r.locale)
	if s == nil {
		return gateway.Speech{}, nil
	}
	text, err := s.T.Execute(r.data)
	if err != nil {
		return gateway.Speech{}, err
	}
	return gateway.Speech{Text: strings.TrimSpace(text), SSML: s.SSML}, nil
}

func (r *run) text(t *config.Speech) (string, error) {
	t = t.In(r.locale)
	if t == nil {
		return "", nil
	}
	s, err := t.T.Execute(r.data)
	return strings.TrimSpace(s), err
}

func (r *run) templateError(err error) *turnError {
	return &turnError{kind: kindDefault, err: fmt.Errorf("%w: %v", ErrTemplate, err)}
}

// runCalls runs the calls in order; each sees the extracts of the ones
// before it.
func (r *run) runCalls(c *config.Compiled) *turnError {
	creds := map[string]*auth.Credential{}
	for _, cc := range c.Calls {
		svc := cc.Service
		cred, ok := creds[svc.Name]
		if !ok {
			var err error
			if cred, err = r.e.creds.Get(r.ctx, svc, r.turn); err != nil {
				return credentialError(svc, err)
			}
			creds[svc.Name] = cred
		}
		resp, te := r.call(cc, cred)
		if te == nil && cred != nil && (resp.Status == http.StatusUnauthorized || resp.Status == http.StatusForbidden) {
			fresh, err := r.e.creds.Rejected(r.ctx, svc, r.turn, cred, resp.Status)
			if err != nil {
				return credentialError(svc, err)
			}
			if fresh != nil {
				creds[svc.Name] = fresh
				resp, te = r.call(cc, fresh)
			}
		}
		if te != nil {
			return te
		}
		r.status = resp.Status
		r.data["status"] = resp.Status
		r.data[render.BodyKey] = resp.Body
		if resp.Status < 200 || resp.Status > 299 {
			return &turnError{kind: kindStatus, status: resp.Status, service: svc,
				err: fmt.Errorf("%s %s: status %d", cc.Method, svc.Name, resp.Status)}
		}
		if te := r.extract(cc, resp.Body); te != nil {
			return te
		}
	}
	return nil
}

func credentialError(svc *config.Service, err error) *turnError {
	switch {
	case errors.Is(err, auth.ErrUnlinked):
		return &turnError{kind: kindUnlinked, service: svc, err: fmt.Errorf("%s: %w", svc.Name, err)}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return &turnError{kind: kindTimeout, service: svc, err: fmt.Errorf("%s credential: %w", svc.Name, err)}
	case errors.Is(err, auth.ErrRefresh):
		return &turnError{kind: kindDefault, service: svc, err: err}
	}
	return &turnError{kind: kindVault, service: svc, err: fmt.Errorf("%s credential: %w", svc.Name, err)}
}

func (r *run) extract(cc *config.CompiledCall, body []byte) *turnError {
	if len(cc.Extract) == 0 {
		return nil
	}
	if !gjson.ValidBytes(body) {
		return &turnError{kind: kindDefault, service: cc.Service,
			err: fmt.Errorf("%s: response is not valid JSON", cc.Service.Name)}
	}
	for _, x := range cc.Extract {
		res := gjson.GetBytes(body, x.Path)
		if !res.Exists() || res.Type == gjson.Null {
			if x.Required {
				return &turnError{kind: kindMissing, service: cc.Service,
					err: fmt.Errorf("%s: required extract %s (%s) is absent", cc.Service.Name, x.Name, x.Path)}
			}
			r.data[x.Name] = ""
			continue
		}
		r.data[x.Name] = render.Value(res)
	}
	return nil
}

// call renders and sends one call within the smaller of the service's
// timeout and what is left of the turn.
func (r *run) call(cc *config.CompiledCall, cred *auth.Credential) (*upstream.Response, *turnError) {
	svc := cc.Service
	ctx, cancel := context.WithTimeout(r.ctx, svc.Timeout.Or(config.DefaultServiceTimeout))
	defer cancel()
	req, err := r.request(ctx, cc, cred)
	if err != nil {
		return nil, &turnError{kind: kindDefault, service: svc, err: err}
	}
	start := time.Now()
	resp, err := r.e.calls.Call(svc, req)
	if r.e.observer != nil {
		status := 0
		if resp != nil {
			status = resp.Status
		}
		r.e.observer.Call(svc.Name, status, time.Since(start))
	}
	if err != nil {
		if errors.Is(err, upstream.ErrTimeout) {
			return nil, &turnError{kind: kindTimeout, service: svc, err: err}
		}
		return nil, &turnError{kind: kindDefault, service: svc, err: err}
	}
	return resp, nil
}

// request renders a call: the path with every action escaped as one
// segment, query values URL-encoded, headers refused when they hold
// control characters, the body as typed JSON or a form.
func (r *run) request(ctx context.Context, cc *config.CompiledCall, cred *auth.Credential) (*http.Request, error) {
	svc := cc.Service
	path, err := cc.Path.Execute(r.data)
	if err != nil {
		return nil, fmt.Errorf("%w: path: %v", ErrTemplate, err)
	}
	// %2E is an unreserved character, so servers that normalize the path
	// (RFC 3986 6.2.2) read %2E%2E as "..": refuse those segments too.
	for seg := range strings.SplitSeq(path, "/") {
		if !strings.Contains(seg, ".") && !strings.Contains(seg, "%") {
			continue
		}
		if dec, _ := url.PathUnescape(seg); dec == "." || dec == ".." {
			return nil, fmt.Errorf("%s: rendered path has a dot segment", svc.Name)
		}
	}
	base := svc.Base
	if base == "" { // a Service built in code, not loaded
		base = svc.URL.String()
	}
	u, err := url.Parse(base + path)
	if err != nil || u.Host != svc.URL.Host || u.Scheme != svc.URL.Scheme {
		return nil, fmt.Errorf("%s: rendered path is not a valid URL path", svc.Name)
	}
	var q url.Values
	if u.RawQuery != "" || len(cc.Query) > 0 || (cred != nil && svc.Auth.Query != "") {
		q = u.Query()
	}
	for _, kv := range cc.Query {
		v, err := kv.T.Execute(r.data)
		if err != nil {
			return nil, fmt.Errorf("%w: query %s: %v", ErrTemplate, kv.Name, err)
		}
		q.Add(kv.Name, v)
	}
	header := make(http.Header, len(svc.Headers)+len(cc.Headers)+2)
	for k, v := range svc.Headers {
		header.Set(k, v)
	}
	for _, kv := range cc.Headers {
		v, err := kv.T.Execute(r.data)
		if err != nil {
			return nil, fmt.Errorf("%w: header %s: %v", ErrTemplate, kv.Name, err)
		}
		if hasCTL(v) {
			return nil, fmt.Errorf("%s: header %s: value has a control character", svc.Name, kv.Name)
		}
		header.Set(kv.Name, v)
	}
	if cred != nil {
		v, err := svc.Format.Execute(map[string]any{"token": cred.Token.Reveal(), "fields": revealAll(cred.Fields)})
		if err != nil {
			return nil, fmt.Errorf("%s: auth format failed", svc.Name)
		}
		if hasCTL(v) {
			return nil, fmt.Errorf("%s: credential has a control character", svc.Name)
		}
		if svc.Auth.Query != "" {
			q.Set(svc.Auth.Query, v)
		} else {
			header.Set(svc.Auth.Header, v)
		}
	}
	if q != nil {
		u.RawQuery = q.Encode()
	}
	var body []byte
	if cc.Body != nil {
		if cc.Form {
			body, err = cc.Body.Form(r.data)
			header.Set("Content-Type", "application/x-www-form-urlencoded")
		} else {
			body, err = cc.Body.JSON(r.data)
			if header.Get("Content-Type") == "" {
				header.Set("Content-Type", "application/json")
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%w: body: %v", ErrTemplate, err)
		}
	}
	if header.Get("Accept") == "" {
		header.Set("Accept", "application/json")
	}
	// The URL is parsed already: build the request around it rather than
	// have NewRequest parse its text again.
	req, err := http.NewRequestWithContext(ctx, cc.Method, "", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%s: build request failed", svc.Name)
	}
	req.URL, req.Host, req.Header = u, u.Host, header
	return req, nil
}

func revealAll(d gateway.SecretData) map[string]string {
	out := make(map[string]string, len(d))
	for k, v := range d {
		out[k] = v.Reveal()
	}
	return out
}

func hasCTL(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return true
		}
	}
	return false
}

// fail answers a failed turn with the most specific error speech: for each
// key, most specific first, the intent's, the skill's and the gateway's
// speech; when none is configured, the built-in sentence of the error's
// kind. The one exception: an unlinked user hears the linking instructions
// rather than a configured default.
func (r *run) fail(c *config.Compiled, te *turnError) *gateway.Reply {
	r.failed = te
	r.e.log.LogAttrs(r.ctx, slog.LevelWarn, "turn failed",
		slog.String("request_id", r.turn.RequestID),
		slog.String("skill", r.skill.Name),
		slog.String("intent", r.turn.Intent),
		slog.String("kind", te.kind),
		slog.Int("status", te.status),
		slog.String("error", te.Error()),
	)
	reply := &gateway.Reply{EndSession: c.EndSession, Session: r.session(), Error: te.kind}
	levels := []config.ErrorSpeech{c.Errors, r.skill.ErrorsC, r.e.cfg.Errors}
	for _, key := range te.keys() {
		if key == kindDefault && te.kind == kindUnlinked {
			// The linking instructions carry the user's code: a configured
			// default (such as SPEC's gateway-wide one) must not hide them.
			return r.unlinked(reply, te)
		}
		for _, level := range levels {
			s := level[key]
			if s == nil {
				continue
			}
			sp, err := r.speak(s)
			if err != nil {
				r.e.log.Warn("error speech failed", "skill", r.skill.Name, "key", key, "error", err.Error())
				reply.Speech = gateway.Speech{Text: builtinErrors[kindDefault]}
				return reply
			}
			reply.Speech = sp
			return reply
		}
	}
	// Nothing configured matches: the built-in sentence of the error's
	// kind; statuses have none of their own and get the default one.
	if text, ok := builtinErrors[te.kind]; ok {
		reply.Speech = gateway.Speech{Text: text}
		return reply
	}
	reply.Speech = gateway.Speech{Text: builtinErrors[kindDefault]}
	return reply
}

// unlinked tells the user how to link: the Alexa app for Alexa-managed
// linking (with a LinkAccount card), the gateway's own linking flow
// otherwise.
func (r *run) unlinked(reply *gateway.Reply, te *turnError) *gateway.Reply {
	reply.EndSession = true
	svc := te.service
	if svc != nil && svc.Auth.Type == config.AuthAlexa {
		reply.Speech = gateway.Speech{Text: "To use this skill, please link your account using the card I sent to your Alexa app."}
		reply.Card = &gateway.Card{Type: gateway.CardLinkAccount}
		return reply
	}
	if r.e.linker != nil && svc != nil && svc.OAuth2 != nil && r.e.cfg.Server.PublicURL != "" {
		text, err := r.e.linker.Instructions(r.ctx, svc, r.turn.UserID)
		if err == nil {
			reply.Speech = gateway.Speech{Text: text}
			reply.Card = &gateway.Card{Type: gateway.CardSimple, Title: "Link your " + svc.Name + " account", Text: text}
			return reply
		}
		r.e.log.Warn("link instructions failed", "service", svc.Name, "error", err.Error())
	}
	name := "this skill"
	if svc != nil {
		name = svc.Name
	}
	reply.Speech = gateway.Speech{Text: "To use " + name + ", please link your account in the Alexa app."}
	return reply
}
