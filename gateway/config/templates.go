package config

import (
	"strings"

	"github.com/voicegw/voicegw/gateway/render"
)

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
