package config

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/voicegw/voicegw/gateway/render"
)

// Reserved template data names; extract names may not use them.
var reserved = map[string]bool{
	"slots": true, "slot_ids": true, "session": true, "user": true,
	"locale": true, "intent": true, "skill": true, "status": true,
}

// Built-in intents and what answers them.
const (
	HelpIntent     = "AMAZON.HelpIntent"
	StopIntent     = "AMAZON.StopIntent"
	CancelIntent   = "AMAZON.CancelIntent"
	FallbackIntent = "AMAZON.FallbackIntent"
)

// BuiltinIntents are always in a skill's interaction model.
var BuiltinIntents = []string{CancelIntent, HelpIntent, StopIntent, FallbackIntent, "AMAZON.NavigateHomeIntent"}

var (
	nameRe    = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	intentRe  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)
	identRe   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	headerRe  = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
	statusRe  = regexp.MustCompile(`^[1-5][0-9][0-9]$`)
	classRe   = regexp.MustCompile(`^[1-5]xx$`)
	sampleRef = regexp.MustCompile(`\{([^{}]*)\}`)
)

// errorKinds are the non-status error keys.
var errorKinds = map[string]bool{"timeout": true, "unlinked": true, "vault": true, "missing": true, "default": true}

func (ck *checker) validate(cfg *Config) {
	if cfg.Version != 1 {
		ck.errf("version", "must be 1")
	}
	ck.server(cfg)
	ck.alexa(cfg)
	ck.vault(cfg)
	for _, name := range sortedKeys(cfg.Services) {
		ck.service(cfg, name, cfg.Services[name])
	}
	if len(cfg.Skills) == 0 {
		ck.errf("skills", "no skills configured")
	}
	for _, name := range sortedKeys(cfg.Skills) {
		ck.skill(cfg, name, cfg.Skills[name])
	}
	// Gateway-wide error speech may read the extracts of any skill.
	extracts := map[string]bool{}
	for _, sk := range cfg.Skills {
		for _, n := range sk.ExtractRefs {
			extracts[n] = true
		}
	}
	for _, k := range sortedKeys(cfg.Errors) {
		ck.checkRefs("server.errors."+k, cfg.Errors[k].T, &scope{anySlots: true, extracts: extracts})
	}
	needsVault := false
	for _, name := range sortedKeys(cfg.Services) {
		svc := cfg.Services[name]
		if t := svc.Auth.Type; t == AuthLinked || t == AuthSecret {
			needsVault = true
		}
		if svc.OAuth2 != nil && svc.Auth.Type == AuthLinked && cfg.Server.PublicURL == "" {
			ck.warnf("services."+name+".oauth2", "server.public_url is not set: users cannot link %s through /link", name)
		}
	}
	if cfg.Vault == nil && needsVault {
		path := "vault"
		if !ck.has(path) {
			path = ""
		}
		ck.warnf(path, "no vault configured: linked services answer \"unlinked\" and secret services answer \"vault\"")
	}
	refs := map[string]bool{}
	for _, r := range ck.sessionRefs {
		refs[r] = true
	}
	cfg.SessionRefs = sortedKeys(refs)
}

func (ck *checker) duration(path string, d *Duration, def time.Duration) {
	if d.Raw == "" {
		d.D = def
		return
	}
	v, err := time.ParseDuration(d.Raw)
	if err != nil {
		ck.errf(path, "invalid duration %q (use e.g. 500ms, 2s, 1m)", d.Raw)
		return
	}
	if v <= 0 {
		ck.errf(path, "must be positive")
		return
	}
	d.D = v
}

func (ck *checker) server(cfg *Config) {
	s := &cfg.Server
	if s.Listen == "" {
		s.Listen = DefaultListen
	}
	if s.PublicURL != "" {
		ck.absURL("server.public_url", s.PublicURL)
		s.PublicURL = strings.TrimRight(s.PublicURL, "/")
	}
	if s.MaxBodyBytes == 0 {
		s.MaxBodyBytes = DefaultMaxBodyBytes
	} else if s.MaxBodyBytes < 1024 {
		ck.errf("server.max_body_bytes", "must be at least 1024")
	}
	ck.duration("server.deadline", &s.Deadline, DefaultDeadline)
	if s.Deadline.D > 8*time.Second {
		ck.warnf("server.deadline", "Alexa gives up after 8s; a longer deadline answers too late")
	}
	ck.duration("server.progressive_after", &s.ProgressiveAfter, DefaultProgressiveAfter)
	cfg.Errors = ck.errorSpeech("server.errors", s.Errors, &scope{anySlots: true, anyExtracts: true})
}

func (ck *checker) alexa(cfg *Config) {
	ck.duration("alexa.timestamp_tolerance", &cfg.Alexa.TimestampTolerance, DefaultTimestampTolerance)
	if !cfg.Alexa.Verifying() {
		ck.warnf("alexa.verify", "request verification is off: use only for local testing")
	}
}

func (ck *checker) vault(cfg *Config) {
	v := cfg.Vault
	if v == nil {
		return
	}
	if v.Address == "" {
		cfg.Vault = nil
		return
	}
	ck.absURL("vault.address", v.Address)
	switch v.Auth.Method {
	case "", "token":
		v.Auth.Method = "token"
	case "approle":
		if v.Auth.RoleID == "" {
			ck.errf("vault.auth.role_id", "required for approle")
		}
		if v.Auth.SecretIDFile == "" {
			ck.errf("vault.auth.secret_id_file", "required for approle")
		}
	default:
		ck.errf("vault.auth.method", "must be token or approle, not %q", v.Auth.Method)
	}
	if v.KVMount == "" {
		v.KVMount = DefaultKVMount
	}
	v.KVMount = strings.Trim(v.KVMount, "/")
	if v.Prefix == "" {
		v.Prefix = DefaultPrefix
	}
	v.Prefix = strings.Trim(v.Prefix, "/")
	ck.duration("vault.cache_ttl", &v.CacheTTL, DefaultCacheTTL)
}

func (ck *checker) absURL(path, raw string) *url.URL {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		ck.errf(path, "must be an absolute http or https URL, not %q", raw)
		return nil
	}
	return u
}

func (ck *checker) service(cfg *Config, name string, s *Service) {
	p := "services." + name
	if s == nil {
		ck.errf(p, "empty service")
		cfg.Services[name] = &Service{Name: name}
		return
	}
	s.Name = name
	if !nameRe.MatchString(name) {
		ck.errf(p, "service names use letters, digits, - and _ only")
	}
	if s.BaseURL == "" {
		ck.errf(p+".base_url", "required")
	} else if u := ck.absURL(p+".base_url", s.BaseURL); u != nil {
		if u.RawQuery != "" || u.Fragment != "" {
			ck.errf(p+".base_url", "must not have a query or fragment")
		}
		u.Path = strings.TrimRight(u.Path, "/")
		u.RawPath = strings.TrimRight(u.RawPath, "/")
		s.URL = u
	}
	ck.duration(p+".timeout", &s.Timeout, DefaultServiceTimeout)
	if s.Retries < 0 || s.Retries > 5 {
		ck.errf(p+".retries", "must be between 0 and 5")
	}
	if s.MaxResponseBytes == 0 {
		s.MaxResponseBytes = DefaultMaxResponseBytes
	} else if s.MaxResponseBytes < 0 {
		ck.errf(p+".max_response_bytes", "must be positive")
	}
	ck.staticHeaders(p+".headers", s.Headers)
	a := &s.Auth
	ap := p + ".auth"
	switch a.Type {
	case "", AuthNone:
		a.Type = AuthNone
	case AuthLinked, AuthAlexa:
	case AuthSecret:
		if a.Field == "" {
			ck.errf(ap+".field", "required for type secret")
		}
	default:
		ck.errf(ap+".type", "must be none, linked, secret or alexa, not %q", a.Type)
	}
	if a.Type != AuthSecret && a.Field != "" {
		ck.errf(ap+".field", "only for type secret")
	}
	if a.Header == "" {
		a.Header = "Authorization"
	} else if !headerRe.MatchString(a.Header) {
		ck.errf(ap+".header", "invalid header name %q", a.Header)
	}
	if a.Format == "" {
		a.Format = "Bearer {{ .token }}"
		if a.Query != "" {
			a.Format = "{{ .token }}"
		}
	}
	if t := ck.template(ap+".format", a.Format, render.Text); t != nil {
		for _, r := range t.Refs() {
			if r[0] != "token" && r[0] != "fields" {
				ck.errf(ap+".format", "unknown field .%s (use .token or .fields.NAME)", strings.Join(r, "."))
			}
		}
		s.Format = t
	}
	if s.OAuth2 != nil {
		op := p + ".oauth2"
		if a.Type != AuthLinked {
			ck.errf(op, "only for auth type linked")
		}
		if s.OAuth2.AuthURL == "" {
			ck.errf(op+".auth_url", "required")
		} else {
			ck.absURL(op+".auth_url", s.OAuth2.AuthURL)
		}
		if s.OAuth2.TokenURL == "" {
			ck.errf(op+".token_url", "required")
		} else {
			ck.absURL(op+".token_url", s.OAuth2.TokenURL)
		}
		if s.OAuth2.ClientID == "" {
			ck.errf(op+".client_id", "required")
		}
	}
}

func (ck *checker) staticHeaders(path string, h map[string]string) {
	for _, k := range sortedKeys(h) {
		if !headerRe.MatchString(k) {
			ck.errf(path+"."+k, "invalid header name")
		}
		if strings.ContainsAny(h[k], "\r\n\x00") {
			ck.errf(path+"."+k, "header values cannot contain CR, LF or NUL")
		}
	}
}

// scope says which template data a template may read.
type scope struct {
	slots       map[string]bool
	anySlots    bool
	extracts    map[string]bool
	anyExtracts bool
}

func (ck *checker) template(path, src string, ctx render.Context) *render.Template {
	t, err := render.Compile(path, src, ctx)
	if err != nil {
		ck.errf(path, "template: %v", err)
		return nil
	}
	return t
}

// checkRefs reports every field a template reads that will not exist.
func (ck *checker) checkRefs(path string, t *render.Template, sc *scope) {
	if t == nil {
		return
	}
	for _, r := range t.Refs() {
		name := r[0]
		switch name {
		case "slots", "slot_ids":
			if len(r) > 1 && !sc.anySlots && !sc.slots[r[1]] {
				ck.errf(path, "no slot %q in this intent (.%s)", r[1], strings.Join(r, "."))
			}
		case "session":
			if len(r) > 1 {
				ck.sessionRefs = append(ck.sessionRefs, r[1])
			}
		case "user":
			if len(r) > 1 && r[1] != "id" {
				ck.errf(path, "unknown field .%s (only .user.id)", strings.Join(r, "."))
			}
		case "locale", "intent", "skill", "status":
			if len(r) > 1 {
				ck.errf(path, "field .%s has no field %q", name, r[1])
			}
		default:
			if !sc.anyExtracts && !sc.extracts[name] {
				ck.errf(path, "unknown field .%s: not a slot, session or extract name", name)
			}
		}
	}
}

func (ck *checker) speech(path, src string, sc *scope) *Speech {
	if src == "" {
		return nil
	}
	ssml := strings.HasPrefix(strings.TrimSpace(src), "<speak>")
	ctx := render.Text
	if ssml {
		ctx = render.SSML
		if !strings.HasSuffix(strings.TrimSpace(src), "</speak>") {
			ck.errf(path, "SSML speech must end with </speak>")
		}
	}
	t := ck.template(path, src, ctx)
	if t == nil {
		return nil
	}
	ck.checkRefs(path, t, sc)
	return &Speech{T: t, SSML: ssml}
}

func (ck *checker) text(path, src string, sc *scope) *render.Template {
	if src == "" {
		return nil
	}
	t := ck.template(path, src, render.Text)
	ck.checkRefs(path, t, sc)
	return t
}

func (ck *checker) errorSpeech(path string, m map[string]string, sc *scope) ErrorSpeech {
	if len(m) == 0 {
		return nil
	}
	out := ErrorSpeech{}
	for _, k := range sortedKeys(m) {
		kp := path + "." + k
		if !statusRe.MatchString(k) && !classRe.MatchString(k) && !errorKinds[k] {
			ck.errf(kp, "unknown error key (use a status like \"404\", a class like 4xx, timeout, unlinked, vault, missing or default)")
			continue
		}
		if m[k] == "" {
			ck.errf(kp, "empty speech")
			continue
		}
		if s := ck.speech(kp, m[k], sc); s != nil {
			out[k] = s
		}
	}
	return out
}

func (ck *checker) skill(cfg *Config, name string, sk *Skill) {
	p := "skills." + name
	if sk == nil {
		ck.errf(p, "empty skill")
		cfg.Skills[name] = &Skill{Name: name}
		return
	}
	sk.Name = name
	if !nameRe.MatchString(name) {
		ck.errf(p, "skill names use letters, digits, - and _ only")
	}
	for _, other := range sortedKeys(cfg.Skills) {
		o := cfg.Skills[other]
		if other < name && o != nil && sk.ApplicationID != "" && o.ApplicationID == sk.ApplicationID {
			ck.errf(p+".application_id", "same application id as skill %q", other)
		}
	}
	if sk.Invocation != "" && sk.Invocation != strings.ToLower(sk.Invocation) {
		ck.warnf(p+".invocation", "Alexa invocation names are lower case")
	}
	for _, tn := range sortedKeys(sk.Types) {
		tp := p + ".types." + tn
		if !identRe.MatchString(tn) {
			ck.errf(tp, "type names use letters, digits and _ only")
		}
		if len(sk.Types[tn]) == 0 {
			ck.errf(tp, "a type needs at least one value")
		}
		for i, v := range sk.Types[tn] {
			if v == nil || v.Value == "" {
				ck.errf(fmt.Sprintf("%s[%d].value", tp, i), "required")
			}
		}
	}
	// Extract names across the skill, for skill-level templates.
	all := map[string]bool{}
	for _, in := range sk.Intents {
		if in == nil {
			continue
		}
		for _, c := range in.allCalls() {
			if c != nil {
				for k := range c.Extract {
					all[k] = true
				}
			}
		}
	}
	sk.ExtractRefs = sortedKeys(all)
	skillScope := &scope{anySlots: true, extracts: all}
	sk.ErrorsC = ck.errorSpeech(p+".errors", sk.Errors, skillScope)
	if sk.Launch == nil {
		sk.Launch = &Response{Say: "Welcome. What would you like to do?"}
	}
	launch := &Compiled{Intent: "", Say: ck.speech(p+".launch.say", sk.Launch.Say, skillScope)}
	if sk.Launch.Say == "" {
		ck.errf(p+".launch.say", "required")
	}
	ck.response(p+".launch", sk.Launch, launch, skillScope, false)
	sk.LaunchC = launch

	fixed := func(key, src, def, intent string, end bool) *Compiled {
		if src == "" {
			src = def
		}
		c := &Compiled{Intent: intent, Say: ck.speech(p+"."+key, src, skillScope), EndSession: end}
		if !end {
			c.Reprompt = c.Say
		}
		return c
	}
	sk.HelpC = fixed("help", sk.Help, "You can ask me a question, or say stop.", HelpIntent, false)
	sk.StopC = fixed("stop", sk.Stop, "Goodbye.", StopIntent, true)
	sk.FallbackC = fixed("fallback", sk.Fallback, "Sorry, I didn't get that. You can say help.", FallbackIntent, false)

	for _, in := range sortedKeys(sk.Intents) {
		ck.intent(cfg, sk, in, sk.Intents[in])
	}
}

// allCalls returns the call or calls of an intent.
func (in *Intent) allCalls() []*Call {
	if in.Call != nil {
		return append([]*Call{in.Call}, in.Calls...)
	}
	return in.Calls
}

func (ck *checker) response(p string, r *Response, c *Compiled, sc *scope, endDefault bool) {
	c.Reprompt = ck.speech(p+".reprompt", r.Reprompt, sc)
	if r.Card != nil {
		c.CardTitle = ck.text(p+".card.title", r.Card.Title, sc)
		c.CardText = ck.text(p+".card.text", r.Card.Text, sc)
		if r.Card.Title == "" && r.Card.Text == "" {
			ck.errf(p+".card", "a card needs a title or text")
		}
	}
	for _, k := range sortedKeys(r.Session) {
		if !identRe.MatchString(k) {
			ck.errf(p+".session."+k, "session attribute names use letters, digits and _ only")
		}
		if t := ck.text(p+".session."+k, r.Session[k], sc); t != nil {
			c.Session = append(c.Session, Named{Name: k, T: t})
		}
	}
	c.EndSession = endDefault
	if r.EndSession != nil {
		c.EndSession = *r.EndSession
	}
}

func (ck *checker) intent(cfg *Config, sk *Skill, name string, in *Intent) {
	p := "skills." + sk.Name + ".intents." + name
	if in == nil {
		ck.errf(p, "empty intent")
		sk.Intents[name] = &Intent{Name: name, C: &Compiled{Intent: name}}
		return
	}
	in.Name = name
	if !intentRe.MatchString(name) {
		ck.errf(p, "intent names use letters, digits and _ (AMAZON. for built-ins)")
	}
	builtin := strings.HasPrefix(name, "AMAZON.")
	if !builtin && len(in.Samples) == 0 {
		ck.errf(p+".samples", "a custom intent needs at least one sample utterance")
	}
	c := &Compiled{Intent: name}
	sc := &scope{slots: map[string]bool{}, extracts: map[string]bool{}}
	// Every slot first, so a prompt or sample may name any of them.
	for sn, s := range in.Slots {
		if s != nil {
			sc.slots[sn] = true
		}
	}
	for _, sn := range sortedKeys(in.Slots) {
		sp := p + ".slots." + sn
		s := in.Slots[sn]
		if s == nil {
			ck.errf(sp, "empty slot")
			continue
		}
		if !identRe.MatchString(sn) {
			ck.errf(sp, "slot names use letters, digits and _ only")
		}
		ck.samples(sp+".samples", s.Samples, sc)
		if s.Type == "" {
			ck.errf(sp+".type", "required")
		} else if !strings.HasPrefix(s.Type, "AMAZON.") && sk.Types[s.Type] == nil {
			ck.errf(sp+".type", "no type %q in skill %s (custom types go under types:, built-ins start with AMAZON.)", s.Type, sk.Name)
		}
		spec := SlotSpec{Name: sn, Type: s.Type, Required: s.Required}
		if s.Required {
			prompt := s.Prompt
			if prompt == "" {
				prompt = "Which " + strings.ToLower(sn) + "?"
			}
			spec.Prompt = ck.speech(sp+".prompt", prompt, &scope{slots: sc.slots})
		}
		c.Slots = append(c.Slots, spec)
	}
	ck.samples(p+".samples", in.Samples, sc)
	if in.Call != nil && len(in.Calls) > 0 {
		ck.errf(p+".calls", "use call or calls, not both")
	}
	calls := in.allCalls()
	callPath := func(i int) string {
		if in.Call != nil && len(in.Calls) == 0 {
			return p + ".call"
		}
		return fmt.Sprintf("%s.calls[%d]", p, i)
	}
	for i, call := range calls {
		cp := callPath(i)
		if call == nil {
			ck.errf(cp, "empty call")
			continue
		}
		// A call sees the extracts of the calls before it.
		callScope := &scope{slots: sc.slots, extracts: copySet(sc.extracts)}
		cc := ck.call(cfg, cp, call, callScope)
		for _, e := range cc.Extract {
			if sc.extracts[e.Name] {
				ck.errf(cp+".extract."+e.Name, "extract %q is already defined by an earlier call", e.Name)
			}
			sc.extracts[e.Name] = true
			c.Extracts = append(c.Extracts, e.Name)
		}
		c.Calls = append(c.Calls, cc)
	}
	c.Say = ck.speech(p+".say", in.Say, sc)
	switch {
	case in.Say != "":
	case ck.has(p + ".say"):
		ck.errf(p+".say", "required") // e.g. an unset ${VAR}
	default:
		ck.errf(p, "say is required")
	}
	ck.response(p, &in.Response, c, sc, true)
	c.Confirm = ck.speech(p+".confirm", in.Confirm, sc)
	c.Progressive = ck.speech(p+".progressive", in.Progressive, sc)
	if c.Progressive != nil && len(calls) == 0 {
		ck.warnf(p+".progressive", "has no effect without calls")
	}
	c.Errors = ck.errorSpeech(p+".errors", in.Errors, sc)
	in.C = c
}

// samples reports every {Slot} of sample utterances that is not a slot
// of the intent.
func (ck *checker) samples(path string, samples []string, sc *scope) {
	for i, s := range samples {
		reported := map[string]bool{}
		for _, m := range sampleRef.FindAllStringSubmatch(s, -1) {
			name := m[1]
			if sc.slots[name] || reported[name] {
				continue
			}
			reported[name] = true
			if name == "" {
				ck.errf(fmt.Sprintf("%s[%d]", path, i), "empty slot reference {}")
				continue
			}
			ck.errf(fmt.Sprintf("%s[%d]", path, i), "no slot %q in this intent", name)
		}
	}
}

func copySet(m map[string]bool) map[string]bool {
	out := make(map[string]bool, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

var methods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
}

func (ck *checker) call(cfg *Config, p string, call *Call, sc *scope) *CompiledCall {
	cc := &CompiledCall{}
	if call.Service == "" {
		ck.errf(p+".service", "required")
	} else if s, ok := cfg.Services[call.Service]; !ok {
		ck.errf(p+".service", "no service %q", call.Service)
	} else {
		cc.Service = s
	}
	cc.Method = strings.ToUpper(call.Method)
	if cc.Method == "" {
		cc.Method = http.MethodGet
	}
	if !methods[cc.Method] {
		ck.errf(p+".method", "unsupported method %q", call.Method)
	}
	switch {
	case call.Path == "":
		call.Path = "/"
	case !strings.HasPrefix(call.Path, "/"):
		ck.errf(p+".path", "must start with /")
	case strings.ContainsAny(literalText(call.Path), "?#"):
		ck.errf(p+".path", "must not contain ? or # (use query:)")
	}
	if t := ck.template(p+".path", call.Path, render.PathSegment); t != nil {
		ck.checkRefs(p+".path", t, sc)
		cc.Path = t
	}
	for _, k := range sortedKeys(call.Query) {
		if t := ck.text(p+".query."+k, call.Query[k], sc); t != nil {
			cc.Query = append(cc.Query, Named{Name: k, T: t})
		} else {
			cc.Query = append(cc.Query, Named{Name: k, T: render.MustCompile(k, "", render.Text)})
		}
	}
	for _, k := range sortedKeys(call.Headers) {
		if !headerRe.MatchString(k) {
			ck.errf(p+".headers."+k, "invalid header name")
		}
		if strings.ContainsAny(literalText(call.Headers[k]), "\r\n\x00") {
			ck.errf(p+".headers."+k, "header values cannot contain CR, LF or NUL")
		}
		if t := ck.text(p+".headers."+k, call.Headers[k], sc); t != nil {
			cc.Headers = append(cc.Headers, Named{Name: k, T: t})
		}
	}
	switch call.ContentType {
	case "", "json":
	case "form":
		cc.Form = true
	default:
		ck.errf(p+".content_type", "must be json or form, not %q", call.ContentType)
	}
	if call.Body.Kind != 0 && !(call.Body.Kind == yaml.ScalarNode && call.Body.Tag == "!!null") {
		cc.Body = ck.body(p+".body", &call.Body, sc)
		if cc.Form && cc.Body != nil && (cc.Body.isList || cc.Body.Literal != nil || cc.Body.T != nil) {
			ck.errf(p+".body", "a form body must be a mapping")
		}
		if cc.Method == http.MethodGet || cc.Method == http.MethodHead {
			ck.warnf(p+".body", "a body with %s is ignored by most servers", cc.Method)
		}
	}
	for _, name := range sortedKeys(call.Extract) {
		ep := p + ".extract." + name
		n := call.Extract[name]
		e := Extract{Name: name}
		switch n.Kind {
		case yaml.ScalarNode:
			e.Path = n.Value
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				switch k.Value {
				case "path":
					e.Path = v.Value
				case "required":
					b, err := strconv.ParseBool(v.Value)
					if err != nil || v.Kind != yaml.ScalarNode {
						ck.errf(ep+".required", "expected true or false")
					}
					e.Required = b
				default:
					ck.errf(ep+"."+k.Value, "unknown key")
				}
			}
		default:
			ck.errf(ep, "expected a gjson path or {path, required}")
			continue
		}
		if !identRe.MatchString(name) {
			ck.errf(ep, "extract names use letters, digits and _ only")
		} else if reserved[name] {
			ck.errf(ep, "%q is a reserved template name", name)
		}
		if strings.TrimSpace(e.Path) == "" {
			ck.errf(ep, "empty gjson path")
		}
		cc.Extract = append(cc.Extract, e)
	}
	return cc
}

// literalText returns the template source without its actions.
func literalText(src string) string {
	var b strings.Builder
	for {
		i := strings.Index(src, "{{")
		if i < 0 {
			b.WriteString(src)
			return b.String()
		}
		b.WriteString(src[:i])
		j := strings.Index(src[i:], "}}")
		if j < 0 {
			return b.String()
		}
		src = src[i+j+2:]
	}
}

func (ck *checker) body(p string, n *yaml.Node, sc *scope) *Body {
	switch n.Kind {
	case yaml.MappingNode:
		b := &Body{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			item := ck.body(p+"."+k, n.Content[i+1], sc)
			if item == nil {
				return nil
			}
			b.Keys = append(b.Keys, k)
			b.Items = append(b.Items, item)
		}
		return b
	case yaml.SequenceNode:
		b := &Body{isList: true}
		for i, c := range n.Content {
			item := ck.body(fmt.Sprintf("%s[%d]", p, i), c, sc)
			if item == nil {
				return nil
			}
			b.Items = append(b.Items, item)
		}
		return b
	case yaml.ScalarNode:
		var v any
		if err := n.Decode(&v); err != nil {
			ck.errf(p, "%v", err)
			return nil
		}
		if s, ok := v.(string); ok && strings.Contains(s, "{{") {
			t := ck.text(p, s, sc)
			if t == nil {
				return nil
			}
			return &Body{T: t}
		}
		raw, err := json.Marshal(v)
		if err != nil {
			ck.errf(p, "cannot encode as JSON: %v", err)
			return nil
		}
		return &Body{Literal: raw}
	case yaml.AliasNode:
		return ck.body(p, n.Alias, sc)
	}
	ck.errf(p, "unsupported YAML value")
	return nil
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
