package config

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/voicegw/voicegw/gateway/render"
)

// scope says which template data a template may read, and why the rest is
// absent, so that a reference that cannot resolve says how to fix it.
type scope struct {
	slots    map[string]bool
	extracts map[string]bool
	// noSlots, when set, says why the template sees no slot at all (e.g.
	// "skill-level errors answer every intent").
	noSlots string
	// noExtracts, when set, says why the template sees no extract (e.g.
	// "confirm is asked before any call runs").
	noExtracts string
	// later maps extracts set after this template runs to the call that
	// sets them.
	later map[string]string
	// known lists extract names of the skill that this template cannot
	// see, for the message.
	known map[string]bool
}

func (ck *checker) template(path, src string, ctx render.Context) *render.Template {
	if ck.templates == nil {
		ck.templates = render.NewSet()
	}
	t, err := ck.templates.Compile(path, src, ctx)
	if err != nil {
		ck.errf(path, "template: %v", err)
		return nil
	}
	return t
}

// builtinData are the template data names other than slots and extracts.
var builtinData = []string{"slots", "slot_ids", "session", "user", "locale", "intent", "skill", "status"}

// checkRefs reports every field a template reads that will not exist,
// with the reason and, where there is one, the likely intended name.
// A nil scope compiles without checking: the caller checks the template
// later, when its scope is known (server.errors, once every skill's
// extracts are).
func (ck *checker) checkRefs(path string, t *render.Template, sc *scope) {
	if t == nil || sc == nil {
		return
	}
	for _, g := range t.GetPaths() {
		if msg := checkGJSONPath(g); msg != "" {
			ck.errf(path, "get %q: %s", g, msg)
		}
	}
	reported := map[string]bool{}
	for _, r := range t.Refs() {
		ref := "." + strings.Join(r, ".")
		if reported[ref] {
			continue
		}
		if msg := sc.resolve(r); msg != "" {
			reported[ref] = true
			l, c := ck.refPos(path, ref)
			ck.add(&Problem{Line: l, Col: c, Path: path, Msg: msg})
			continue
		}
		if r[0] == "session" && len(r) > 1 {
			ck.sessionRefs = append(ck.sessionRefs, r[1])
		}
	}
}

// resolve returns "" when the reference r exists in the scope, else why
// not and how to fix it.
func (sc *scope) resolve(r []string) string {
	name := r[0]
	ref := "." + strings.Join(r, ".")
	switch name {
	case "slots", "slot_ids":
		if len(r) < 2 || sc.slots[r[1]] {
			return ""
		}
		if sc.noSlots != "" {
			return fmt.Sprintf("%s: %s", ref, sc.noSlots)
		}
		msg := fmt.Sprintf("no slot %q in this intent (%s)", r[1], ref)
		if near := closest(r[1], sortedKeys(sc.slots)); near != "" {
			msg += fmt.Sprintf("; did you mean .%s.%s?", name, near)
		} else if len(sc.slots) > 0 {
			msg += "; its slots are " + strings.Join(sortedKeys(sc.slots), ", ")
		} else {
			msg += "; declare it under slots:"
		}
		return msg
	case "session":
		return ""
	case "user":
		if len(r) > 1 && r[1] != "id" {
			return fmt.Sprintf("unknown field %s (only .user.id)", ref)
		}
		return ""
	case "locale", "intent", "skill", "status":
		if len(r) > 1 {
			return fmt.Sprintf("field .%s has no field %q", name, r[1])
		}
		return ""
	}
	if sc.extracts[name] {
		return ""
	}
	// A bare slot name.
	if sc.slots[name] {
		return fmt.Sprintf("unknown field %s: %s is a slot, did you mean .slots.%s?", ref, name, name)
	}
	if call, ok := sc.later[name]; ok {
		if sc.noExtracts != "" {
			return fmt.Sprintf("extract %s is not set yet: %s (%s sets it)", ref, sc.noExtracts, call)
		}
		return fmt.Sprintf("extract %s is not set yet: %s sets it, and a call sees only the extracts of the calls before it", ref, call)
	}
	if sc.known[name] {
		return fmt.Sprintf("extract %s is not set here: %s", ref, sc.noExtracts)
	}
	msg := fmt.Sprintf("unknown field %s: not a slot, session or extract name", ref)
	if near := closest(name, sortedKeys(sc.extracts)); near != "" {
		return msg + fmt.Sprintf("; did you mean .%s?", near)
	}
	if near := closest(name, sortedKeys(sc.slots)); near != "" {
		return msg + fmt.Sprintf("; did you mean .slots.%s?", near)
	}
	if near := closest(name, sortedKeys(sc.known)); near != "" && sc.noExtracts != "" {
		return msg + fmt.Sprintf("; .%s is an extract, but %s", near, sc.noExtracts)
	}
	if near := closest(name, builtinData); near != "" {
		return msg + fmt.Sprintf("; did you mean .%s?", near)
	}
	return msg
}

// speech compiles a speech template, or one per locale when it is given
// per locale.
func (ck *checker) speech(path string, src Text, sc *scope) *Speech {
	return ck.localizedSpeech(path, src, func(p, s string) *Speech { return ck.speech1(p, s, sc) })
}

// cardText compiles a card's title or text (never SSML), or one per
// locale.
func (ck *checker) cardText(path string, src Text, sc *scope) *Speech {
	return ck.localizedSpeech(path, src, func(p, s string) *Speech {
		if t := ck.text(p, s, sc); t != nil {
			return &Speech{T: t}
		}
		return nil
	})
}

func (ck *checker) localizedSpeech(path string, src Text, compile func(path, src string) *Speech) *Speech {
	locales := localized(ck, path, src)
	if locales == nil {
		return compile(path, src.Plain)
	}
	var out *Speech
	for _, l := range locales {
		s := compile(path+"."+l, src.ByLocale[l])
		if s == nil {
			if src.ByLocale[l] == "" {
				ck.errf(path+"."+l, "empty text: every locale needs its own")
			}
			continue
		}
		if out == nil {
			out = &Speech{T: s.T, SSML: s.SSML, ByLocale: map[string]*Speech{}}
		}
		out.ByLocale[l] = s
		out.order = append(out.order, l)
	}
	return out
}

func (ck *checker) speech1(path, src string, sc *scope) *Speech {
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

func (ck *checker) errorSpeech(path string, m map[string]Text, sc *scope) ErrorSpeech {
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
		if !m[k].PerLocale() && m[k].Plain == "" {
			ck.errf(kp, "empty speech")
			continue
		}
		if s := ck.speech(kp, m[k], sc); s != nil {
			out[k] = s
		}
	}
	return out
}

// refPos returns the position of the reference ref (".slots.Name") in the
// template at path: the value's position, or for a template over several
// lines (a block scalar) the line and column of the reference when its
// text is found there.
func (ck *checker) refPos(path, ref string) (int, int) {
	l, c := ck.idx.pos(path)
	e, ok := ck.idx.byPath[path]
	if !ok || e.value.Kind != yaml.ScalarNode || l < 1 || l > len(ck.lines) {
		return l, c
	}
	// The value runs on while lines are indented deeper than its key.
	indent := c - 1
	if e.key != nil {
		indent = e.key.Column - 1
	}
	for i := l; i <= len(ck.lines); i++ {
		line := ck.lines[i-1]
		if i > l && strings.TrimSpace(line) != "" && len(line)-len(strings.TrimLeft(line, " ")) <= indent {
			break
		}
		from := 0
		if i == l {
			from = min(c-1, len(line))
		}
		for off := from; off < len(line); {
			j := strings.Index(line[off:], ref)
			if j < 0 {
				break
			}
			end := off + j + len(ref)
			if end == len(line) || !isIdentByte(line[end]) {
				if i == l {
					return l, c
				}
				return i, off + j + 1
			}
			off = end
		}
	}
	return l, c
}

func isIdentByte(b byte) bool {
	return b == '_' || b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
}
