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
// custom type of the skill, the resolution Alexa would add: a value or
// synonym of the type (ignoring case) resolves to that value's id and
// name. A slot given as {value, id, name} keeps its id and name.
func ResolveSlots(sk *config.Skill, intent string, slots map[string]Slot) (map[string]string, map[string]Resolution) {
	values := make(map[string]string, len(slots))
	res := map[string]Resolution{}
	var declared map[string]*config.Slot
	if in := sk.Intents[intent]; in != nil {
		declared = in.Slots
	}
	for name, s := range slots {
		values[name] = s.Value
		if s.ID != "" || s.Name != "" {
			n := s.Name
			if n == "" {
				n = s.Value
			}
			res[name] = Resolution{Match: true, ID: s.ID, Name: n}
			continue
		}
		d := declared[name]
		if d == nil || sk.Types[d.Type] == nil {
			continue
		}
		res[name] = resolve(sk.Types[d.Type], s.Value)
	}
	return values, res
}

// resolve matches a spoken value against the values and synonyms of a
// custom slot type, ignoring case.
func resolve(values []*config.TypeValue, spoken string) Resolution {
	for _, v := range values {
		if v == nil {
			continue
		}
		if strings.EqualFold(v.Value, spoken) || slices.ContainsFunc(v.Synonyms, func(syn string) bool { return strings.EqualFold(syn, spoken) }) {
			return Resolution{Match: true, ID: v.ID, Name: v.Value}
		}
	}
	return Resolution{}
}

// WithResolutions adds entity resolutions to the slots of an Alexa
// IntentRequest envelope, as Alexa does for slots of custom types.
func WithResolutions(body []byte, res map[string]Resolution) []byte {
	if len(res) == 0 {
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
		auth := map[string]any{
			"authority": "amzn1.er-authority.echo-sdk.amzn1.ask.skill.scenario." + name,
			"status":    map[string]any{"code": "ER_SUCCESS_NO_MATCH"},
		}
		if r.Match {
			auth["status"] = map[string]any{"code": "ER_SUCCESS_MATCH"}
			auth["values"] = []any{map[string]any{"value": map[string]any{"name": r.Name, "id": r.ID}}}
		}
		slot["resolutions"] = map[string]any{"resolutionsPerAuthority": []any{auth}}
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
		if t.Launch {
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
