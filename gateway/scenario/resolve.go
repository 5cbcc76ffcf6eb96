package scenario

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/voicegw/voicegw/gateway/config"
)

// Resolution is the entity resolution of one slot as Alexa sends it in
// the first authority: Match says ER_SUCCESS_MATCH with ID and Name,
// otherwise ER_SUCCESS_NO_MATCH.
type Resolution struct {
	Match bool
	ID    string
	Name  string
}

// ResolveSlots returns the spoken value of each slot and, for slots of a
// custom type of the skill, the resolution Alexa would add in the
// request's locale: a value or synonym of the type (ignoring case)
// resolves to that value's id and name. A slot given as {value, id, name}
// keeps its id and name. A slot given as a list (a multi-value slot) is
// in lists, each value resolved the same way.
func ResolveSlots(sk *config.Skill, intent, locale string, slots map[string]Slot) (map[string]string, map[string]Resolution, map[string][]Value) {
	values := make(map[string]string, len(slots))
	res := map[string]Resolution{}
	var lists map[string][]Value
	var declared map[string]*config.Slot
	if in := sk.Intents[intent]; in != nil {
		declared = in.Slots
	}
	loc := sk.LocaleFor(locale)
	one := func(name string, s Slot) (Resolution, bool) {
		if s.ID != "" || s.Name != "" {
			n := s.Name
			if n == "" {
				n = s.Value
			}
			return Resolution{Match: true, ID: s.ID, Name: n}, true
		}
		d := declared[name]
		if d == nil || sk.Types[d.Type] == nil {
			return Resolution{}, false
		}
		return resolve(sk.Types[d.Type], loc, s.Value), true
	}
	for name, s := range slots {
		if s.List != nil {
			if lists == nil {
				lists = map[string][]Value{}
			}
			vs := make([]Value, 0, len(s.List))
			for _, item := range s.List {
				r, ok := one(name, item)
				vs = append(vs, Value{Value: item.Value, Resolution: r, Resolved: ok})
			}
			lists[name] = vs
			continue
		}
		values[name] = s.Value
		if r, ok := one(name, s); ok {
			res[name] = r
		}
	}
	return values, res, lists
}

// Value is one value of a multi-value slot with its resolution, when it
// has one.
type Value struct {
	Value      string
	Resolution Resolution
	Resolved   bool
}

// resolve matches a spoken value against the values and synonyms of a
// custom slot type in a locale, ignoring case.
func resolve(values []*config.TypeValue, locale, spoken string) Resolution {
	for _, v := range values {
		if v.Matches(locale, spoken) {
			return Resolution{Match: true, ID: v.ID, Name: v.Value.In(locale)}
		}
	}
	return Resolution{}
}

// authority is the entity resolution of one authority as Alexa sends it.
func authority(name string, r Resolution) map[string]any {
	auth := map[string]any{
		"authority": "amzn1.er-authority.echo-sdk.amzn1.ask.skill.scenario." + name,
		"status":    map[string]any{"code": "ER_SUCCESS_NO_MATCH"},
	}
	if r.Match {
		auth["status"] = map[string]any{"code": "ER_SUCCESS_MATCH"}
		auth["values"] = []any{map[string]any{"value": map[string]any{"name": r.Name, "id": r.ID}}}
	}
	return map[string]any{"resolutionsPerAuthority": []any{auth}}
}

// WithSlots adds entity resolutions to the slots of an Alexa
// IntentRequest envelope, and the slots with several values as Alexa
// sends them: slotValue {type: List, values: [{type: Simple, value,
// resolutions}]}.
func WithSlots(body []byte, res map[string]Resolution, lists map[string][]Value) []byte {
	if len(res) == 0 && len(lists) == 0 {
		return body
	}
	var env map[string]any
	if err := json.Unmarshal(body, &env); err != nil {
		return body
	}
	req, _ := env["request"].(map[string]any)
	intent, _ := req["intent"].(map[string]any)
	slots, _ := intent["slots"].(map[string]any)
	for name, r := range res {
		slot, ok := slots[name].(map[string]any)
		if !ok {
			continue
		}
		slot["resolutions"] = authority(name, r)
	}
	for name, vs := range lists {
		values := make([]any, 0, len(vs))
		for _, v := range vs {
			item := map[string]any{"type": "Simple", "value": v.Value}
			if v.Resolved {
				item["resolutions"] = authority(name, v.Resolution)
			}
			values = append(values, item)
		}
		slots[name] = map[string]any{"name": name, "confirmationStatus": "NONE",
			"slotValue": map[string]any{"type": "List", "values": values}}
	}
	out, err := json.Marshal(env)
	if err != nil {
		return body
	}
	return out
}

// checkTurns reports turns the skill cannot answer as Alexa would send
// them: an intent the skill neither configures nor has built in, that is
// a likely misspelling or an AMAZON.* intent, and slots the intent does
// not have. Another unknown intent runs as the fallback, with a warning.
func checkTurns(file string, sc *Scenario, sk *config.Skill) (out, warnings []string) {
	known := append(config.IntentNames(sk), config.BuiltinIntents...)
	for i, t := range sc.Turns {
		if t.Launch || t.Tool != "" { // MCP turns name their tool, checked when they run
			continue
		}
		at := func(key string) string {
			p, ok := t.at[key]
			if !ok {
				p = t.at[""]
			}
			return fmt.Sprintf("%s:%d:%d: turns[%d]", file, p[0], p[1], i)
		}
		in := sk.Intents[t.Intent]
		if in == nil && !slices.Contains(config.BuiltinIntents, t.Intent) {
			if near := config.Closest(t.Intent, known); near != "" || strings.HasPrefix(t.Intent, "AMAZON.") {
				msg := fmt.Sprintf("%s.intent: skill %s has no intent %q", at("intent"), sc.Skill, t.Intent)
				if near != "" {
					msg += fmt.Sprintf(" (did you mean %s?)", near)
				}
				out = append(out, msg)
			} else {
				warnings = append(warnings, fmt.Sprintf("%s.intent: skill %s has no intent %q: the turn runs as the fallback", at("intent"), sc.Skill, t.Intent))
			}
			continue
		}
		for _, name := range sortedSlotNames(t.Slots) {
			if in != nil && in.Slots[name] != nil {
				if t.Slots[name].List != nil && !in.Slots[name].Multiple {
					out = append(out, fmt.Sprintf("%s.slots.%s: slot %s of intent %s takes one value: give a string, or set multiple: true on the slot", at("slots."+name), name, name, t.Intent))
				}
				continue
			}
			msg := fmt.Sprintf("%s.slots.%s: intent %s has no slot %q", at("slots."+name), name, t.Intent, name)
			if in != nil {
				if near := config.Closest(name, config.SlotNames(in)); near != "" {
					msg += fmt.Sprintf(" (did you mean %s?)", near)
				}
			}
			out = append(out, msg)
		}
	}
	return out, warnings
}

func sortedSlotNames(m map[string]Slot) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
