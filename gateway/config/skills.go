package config

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/voicegw/voicegw/gateway/render"
)

func (ck *checker) skill(cfg *Config, name string, sk *Skill) {
	p := "skills." + name
	if sk == nil {
		ck.errf(p, "empty skill: its keys (invocation:, intents:, …) go on the lines below, indented under it")
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
	ck.skillName = name
	ck.locales(p+".locales", sk)
	defer func() { ck.skillName, ck.skillLocales = "", nil }()
	if ls := localized(ck, p+".invocation", sk.Invocation); ls != nil {
		for _, l := range ls {
			ck.invocation(p+".invocation."+l, sk.Invocation.ByLocale[l])
		}
	} else {
		ck.invocation(p+".invocation", sk.Invocation.Plain)
	}
	ck.seenSamples = map[string]string{}
	for _, tn := range sortedKeys(sk.Types) {
		tp := p + ".types." + tn
		if !identRe.MatchString(tn) {
			ck.errf(tp, "type names use letters, digits and _ only")
		}
		if len(sk.Types[tn]) == 0 {
			ck.errf(tp, "a type needs at least one value")
		}
		for i, v := range sk.Types[tn] {
			vp := fmt.Sprintf("%s[%d]", tp, i)
			if v == nil || !v.Value.PerLocale() && v.Value.Plain == "" {
				ck.errf(vp+".value", "required")
				continue
			}
			for _, l := range localized(ck, vp+".value", v.Value) {
				if v.Value.ByLocale[l] == "" {
					ck.errf(vp+".value."+l, "required")
				}
			}
			localized(ck, vp+".synonyms", v.Synonyms)
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
	// Skill-level templates answer no particular intent: they see neither
	// an intent's slots nor any extract (SPEC 8).
	skillLevel := func(what, where string) *scope {
		return &scope{
			noSlots:    what + " and see no slot; " + where,
			noExtracts: what + " and see no extract; " + where,
			known:      all,
		}
	}
	sk.ErrorsC = ck.errorSpeech(p+".errors", sk.Errors,
		skillLevel("skill-level errors answer every intent", "use it in an intent's own errors:"))
	if sk.Launch == nil {
		sk.Launch = &Response{Say: Plain("Welcome. What would you like to do?")}
	}
	launchScope := &scope{
		noSlots:    "launch answers a LaunchRequest, which has no slots: remove the reference",
		noExtracts: "launch runs no call and sees no extract: remove the reference",
		known:      all,
	}
	launch := &Compiled{Intent: "", Say: ck.speech(p+".launch.say", sk.Launch.Say, launchScope)}
	if sk.Launch.Say.Plain == "" && !sk.Launch.Say.PerLocale() {
		ck.errf(p+".launch.say", "required")
	}
	ck.response(p+".launch", sk.Launch, launch, launchScope, false)
	sk.LaunchC = launch

	fixed := func(key string, src Text, def, intent string, end bool) *Compiled {
		if src.Plain == "" && !src.PerLocale() {
			src = Plain(def)
		}
		sc := &scope{
			noSlots:    fmt.Sprintf("%s answers %s, which has no slots: remove the reference", key, intent),
			noExtracts: fmt.Sprintf("%s runs no call and sees no extract: remove the reference", key),
			known:      all,
		}
		c := &Compiled{Intent: intent, Say: ck.speech(p+"."+key, src, sc), EndSession: end}
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
		c.CardTitle = ck.cardText(p+".card.title", r.Card.Title, sc)
		c.CardText = ck.cardText(p+".card.text", r.Card.Text, sc)
		if empty(r.Card.Title) && empty(r.Card.Text) {
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
		ck.errf(p, "empty intent: its keys (samples:, say:, …) go on the lines below, indented under it")
		sk.Intents[name] = &Intent{Name: name, C: &Compiled{Intent: name}}
		return
	}
	in.Name = name
	if !intentRe.MatchString(name) {
		ck.errf(p, "intent names use letters, digits and _ (AMAZON. for built-ins)")
	}
	builtin := strings.HasPrefix(name, "AMAZON.")
	if !builtin && !in.Samples.PerLocale() && len(in.Samples.Plain) == 0 {
		ck.errf(p+".samples", "a custom intent needs at least one sample utterance")
	}
	c := &Compiled{Intent: name}
	sc := &scope{slots: map[string]bool{}, extracts: map[string]bool{}}
	// setBy names the call that sets each extract, for messages about
	// templates that run before it.
	setBy := map[string]string{}
	for i, call := range in.allCalls() {
		if call == nil {
			continue
		}
		where := fmt.Sprintf("calls[%d]", i)
		if in.Call != nil && len(in.Calls) == 0 {
			where = "the call"
		}
		for k := range call.Extract {
			if _, ok := setBy[k]; !ok {
				setBy[k] = where
			}
		}
	}
	// before is the scope of a template that runs before any call.
	before := func(why string) *scope {
		return &scope{slots: sc.slots, extracts: map[string]bool{}, noExtracts: why, later: setBy}
	}
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
		ck.localSamples(sp+".samples", s.Samples, sc, "")
		if s.Type == "" {
			ck.errf(sp+".type", "required")
		} else if strings.HasPrefix(s.Type, "AMAZON.") {
			ck.builtinSlotType(sp+".type", s.Type)
		} else if sk.Types[s.Type] == nil {
			msg := fmt.Sprintf("no type %q in skill %s (custom types go under types:, built-ins start with AMAZON.)", s.Type, sk.Name)
			if near := closest(s.Type, sortedKeys(sk.Types)); near != "" {
				msg += fmt.Sprintf("; did you mean %s?", near)
			}
			ck.errf(sp+".type", "%s", msg)
		}
		spec := SlotSpec{Name: sn, Type: s.Type, Required: s.Required, Multiple: s.Multiple}
		if s.Required {
			prompt := s.Prompt
			if prompt.Plain == "" && !prompt.PerLocale() {
				prompt = Plain("Which " + strings.ToLower(sn) + "?")
			}
			spec.Prompt = ck.speech(sp+".prompt", prompt, before("a slot prompt is asked before any call runs"))
		}
		c.Slots = append(c.Slots, spec)
	}
	ck.localSamples(p+".samples", in.Samples, sc, name)
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
		later := map[string]string{}
		for k, v := range setBy {
			if !sc.extracts[k] {
				later[k] = v
			}
		}
		callScope := &scope{slots: sc.slots, extracts: copySet(sc.extracts), later: later}
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
	case in.Say.Plain != "" || in.Say.PerLocale():
	case ck.has(p + ".say"):
		ck.errf(p+".say", "required") // e.g. an unset ${VAR}
	default:
		ck.errf(p, "say is required")
	}
	ck.response(p, &in.Response, c, sc, true)
	c.Confirm = ck.speech(p+".confirm", in.Confirm, before("confirm is asked before any call runs"))
	c.Progressive = ck.speech(p+".progressive", in.Progressive, before("progressive speech is sent while the calls run"))
	if c.Progressive != nil && len(calls) == 0 {
		ck.warnf(p+".progressive", "has no effect without calls")
	}
	c.Errors = ck.errorSpeech(p+".errors", in.Errors, sc)
	in.C = c
}

// localSamples checks sample utterances given for every locale or per
// locale. For an intent's samples (intent != ""), each locale needs at
// least one and no sample may appear twice among a locale's samples of
// the skill.
func (ck *checker) localSamples(path string, samples TextList, sc *scope, intent string) {
	locales := localized(ck, path, samples)
	if locales == nil {
		ck.samples(path, samples.Plain, sc)
		if intent != "" {
			for _, l := range ck.skillLocales {
				ck.sameSamples(path, samples.Plain, l, intent, "")
			}
		}
		return
	}
	for _, l := range locales {
		list := samples.ByLocale[l]
		ck.samples(path+"."+l, list, sc)
		if intent == "" {
			continue
		}
		if len(list) == 0 && !strings.HasPrefix(intent, "AMAZON.") {
			ck.errf(path+"."+l, "a custom intent needs at least one sample utterance in every locale")
		}
		ck.sameSamples(path+"."+l, list, l, intent, "."+l)
	}
}

// sameSamples reports a sample that another sample of the skill in the
// same locale already has.
func (ck *checker) sameSamples(path string, list []string, locale, intent, suffix string) {
	for i, s := range list {
		sp := fmt.Sprintf("%s[%d]", path, i)
		key := sampleKey(s)
		if key == "" {
			continue
		}
		key = locale + "\x00" + key
		if first, ok := ck.seenSamples[key]; ok {
			ck.errf(sp, "the same sample as %s: Alexa would send it to only one intent; keep one", first)
			continue
		}
		ck.seenSamples[key] = fmt.Sprintf("intents.%s.samples%s[%d]", intent, suffix, i)
	}
}

// samples reports every {Slot} of sample utterances that is not a slot
// of the intent.
func (ck *checker) samples(path string, samples []string, sc *scope) {
	for i, s := range samples {
		ck.sampleText(fmt.Sprintf("%s[%d]", path, i), s)
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
			msg := fmt.Sprintf("no slot %q in this intent", name)
			if near := closest(name, sortedKeys(sc.slots)); near != "" {
				msg += fmt.Sprintf("; did you mean {%s}?", near)
			} else {
				msg += "; declare it under slots:"
			}
			ck.errf(fmt.Sprintf("%s[%d]", path, i), "%s", msg)
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
		msg := fmt.Sprintf("no service %q", call.Service)
		if near := closest(call.Service, sortedKeys(cfg.Services)); near != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", near)
		}
		ck.errf(p+".service", "%s", msg)
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
					msg := "unknown key (an extract is a gjson path or {path, required})"
					if near := closest(k.Value, []string{"path", "required"}); near != "" {
						msg = fmt.Sprintf("unknown key (did you mean %s?)", near)
					}
					ck.errf(ep+"."+k.Value, "%s", msg)
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
		pathAt := ep
		if n.Kind == yaml.MappingNode && ck.has(ep+".path") {
			pathAt = ep + ".path"
		}
		if msg := checkGJSONPath(e.Path); msg != "" {
			ck.errf(pathAt, "%s", msg)
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

// empty reports whether a text is not given: an empty plain value.
func empty(t Text) bool { return !t.PerLocale() && t.Plain == "" }
