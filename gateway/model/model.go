// Package model builds the Alexa interaction model of a configured skill:
// the JSON that the Alexa developer console, the ASK CLI and the Skill
// Management API accept as a skill's voice model (SPEC section 8).
//
// The model holds every configured intent with its sample utterances and
// slots, the built-in intents the gateway answers, the custom slot types and
// a dialog model with an elicitation prompt for each required slot and a
// confirmation prompt for each intent with a confirm. The dialog uses the
// SKILL_RESPONSE delegation strategy: the gateway itself answers a missing
// required slot with Dialog.ElicitSlot and a confirm with
// Dialog.ConfirmIntent at run time, so Alexa never delegates on its own; the
// dialog model is there because the Dialog directives require one and it
// improves slot recognition.
//
// Everything is sorted (intents, slots, types, prompts) so that the same
// configuration always gives the same bytes.
package model

import (
	"encoding/json"
	"io"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
	"text/template/parse"

	"github.com/voicegw/voicegw/gateway/config"
)

// DefaultLocale is the locale a model is built for when none is given.
const DefaultLocale = config.DefaultLocale

// DelegationStrategy is the dialog delegation strategy of every model: the
// skill (the gateway) drives the dialog, Alexa does not delegate by itself.
const DelegationStrategy = "SKILL_RESPONSE"

// Prompt variation types.
const (
	PlainText = "PlainText"
	SSML      = "SSML"
)

// Model is a skill's interaction model as the Alexa Skill Management API
// and the developer console's JSON editor take it.
type Model struct {
	// Locale is the locale the model was built for. It is not part of the
	// JSON: Alexa takes the locale from where the model is uploaded (the
	// console's language tab, the ASK CLI's models/<locale>.json, the
	// SMAPI .../interactionModel/locales/<locale> path). The samples,
	// prompts, type values and invocation name are that locale's (see
	// config.Skill.LocaleFor for a locale the skill does not list).
	Locale string `json:"-"`
	// InteractionModel is the whole model.
	InteractionModel InteractionModel `json:"interactionModel"`
}

// InteractionModel is the language model with its dialog and prompts.
type InteractionModel struct {
	LanguageModel LanguageModel `json:"languageModel"`
	// Dialog is always present, with no intents when no intent has a
	// required slot or a confirm (SPEC 8 names both keys).
	Dialog  *Dialog   `json:"dialog"`
	Prompts []*Prompt `json:"prompts"`
}

// LanguageModel is the invocation name, intents and custom slot types.
type LanguageModel struct {
	InvocationName string      `json:"invocationName"`
	Intents        []*Intent   `json:"intents"`
	Types          []*SlotType `json:"types"`
}

// Intent is an intent with its sample utterances and slots.
type Intent struct {
	Name string `json:"name"`
	// Slots is left out for an intent without slots.
	Slots []*Slot `json:"slots,omitempty"`
	// Samples is [] for a built-in intent with no extra samples.
	Samples []string `json:"samples"`
}

// Slot is one slot of an intent.
type Slot struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// Samples are what users say when Alexa elicits the slot.
	Samples []string `json:"samples,omitempty"`
	// MultipleValues is set for a slot that takes several values.
	MultipleValues *MultipleValues `json:"multipleValues,omitempty"`
}

// MultipleValues enables several values in one slot ("cheese, ham and
// tomatoes").
type MultipleValues struct {
	Enabled bool `json:"enabled"`
}

// SlotType is a custom slot type.
type SlotType struct {
	Name   string       `json:"name"`
	Values []*TypeValue `json:"values"`
}

// TypeValue is one value of a custom slot type.
type TypeValue struct {
	// ID is the entity-resolution id; left out when not configured.
	ID   string    `json:"id,omitempty"`
	Name ValueName `json:"name"`
}

// ValueName is a slot type value and its synonyms.
type ValueName struct {
	Value    string   `json:"value"`
	Synonyms []string `json:"synonyms,omitempty"`
}

// Dialog is the dialog model.
type Dialog struct {
	DelegationStrategy string          `json:"delegationStrategy"`
	Intents            []*DialogIntent `json:"intents"`
}

// DialogIntent is an intent that has dialog rules: a required slot or a
// confirmation.
type DialogIntent struct {
	Name                 string        `json:"name"`
	ConfirmationRequired bool          `json:"confirmationRequired"`
	Prompts              DialogPrompts `json:"prompts"`
	// Slots lists the slots with dialog rules (the required ones), [] when
	// the intent only has a confirmation.
	Slots []*DialogSlot `json:"slots"`
}

// DialogSlot is a slot with dialog rules.
type DialogSlot struct {
	Name                 string        `json:"name"`
	Type                 string        `json:"type"`
	ConfirmationRequired bool          `json:"confirmationRequired"`
	ElicitationRequired  bool          `json:"elicitationRequired"`
	Prompts              DialogPrompts `json:"prompts"`
}

// DialogPrompts refers to prompts by id.
type DialogPrompts struct {
	Elicitation  string `json:"elicitation,omitempty"`
	Confirmation string `json:"confirmation,omitempty"`
}

// Prompt is what Alexa says to elicit a slot or confirm an intent.
type Prompt struct {
	ID         string       `json:"id"`
	Variations []*Variation `json:"variations"`
}

// Variation is one wording of a prompt.
type Variation struct {
	// Type is PlainText or SSML.
	Type  string `json:"type"`
	Value string `json:"value"`
}

// ElicitID is the id of the prompt that elicits slot of intent.
func ElicitID(intent, slot string) string { return "Elicit.Slot." + intent + "." + slot }

// ConfirmID is the id of the prompt that confirms intent.
func ConfirmID(intent string) string { return "Confirm.Intent." + intent }

// Build returns the interaction model of a loaded skill for locale (""
// means DefaultLocale).
//
// Built-in intents (config.BuiltinIntents) are always present, with no
// samples unless the skill configures an intent of the same name, whose
// samples and slots then take their place. A required slot's prompt is the
// configured prompt, or the gateway's default one when the config has none.
// Prompts are converted from templates with PromptText; one that converts
// to nothing becomes "Which <slot>?" or "Are you sure?".
func Build(sk *config.Skill, locale string) *Model {
	if locale == "" {
		locale = DefaultLocale
	}
	m := &Model{Locale: locale}
	// The texts are those of the skill's locale that answers locale.
	loc := sk.LocaleFor(locale)
	lm := &m.InteractionModel.LanguageModel
	lm.InvocationName = sk.Invocation.In(loc)
	lm.Intents = []*Intent{}
	lm.Types = []*SlotType{}

	var dialog []*DialogIntent
	var prompts []*Prompt
	for _, name := range intentNames(sk) {
		in := sk.Intents[name]
		it := &Intent{Name: name, Samples: []string{}}
		lm.Intents = append(lm.Intents, it)
		if in == nil {
			continue
		}
		it.Samples = append(it.Samples, in.Samples.In(loc)...)
		slotNames := sortedKeys(in.Slots)
		di := &DialogIntent{Name: name, Slots: []*DialogSlot{}}
		for _, sn := range slotNames {
			s := in.Slots[sn]
			if s == nil {
				continue
			}
			slot := &Slot{Name: sn, Type: s.Type, Samples: s.Samples.In(loc)}
			if s.Multiple {
				slot.MultipleValues = &MultipleValues{Enabled: true}
			}
			it.Slots = append(it.Slots, slot)
			if !s.Required {
				continue
			}
			id := ElicitID(name, sn)
			di.Slots = append(di.Slots, &DialogSlot{
				Name: sn, Type: s.Type, ElicitationRequired: true,
				Prompts: DialogPrompts{Elicitation: id},
			})
			prompts = append(prompts, newPrompt(id, slotPrompt(in, sn, s, loc), slotNames,
				"Which "+strings.ToLower(sn)+"?"))
		}
		if confirm := in.Confirm.In(loc); confirm != "" {
			id := ConfirmID(name)
			di.ConfirmationRequired = true
			di.Prompts.Confirmation = id
			prompts = append(prompts, newPrompt(id, confirm, slotNames, "Are you sure?"))
		}
		if len(di.Slots) > 0 || di.ConfirmationRequired {
			dialog = append(dialog, di)
		}
	}
	for _, tn := range sortedKeys(sk.Types) {
		st := &SlotType{Name: tn, Values: []*TypeValue{}}
		for _, v := range sk.Types[tn] {
			if v == nil {
				continue
			}
			st.Values = append(st.Values, &TypeValue{
				ID:   v.ID,
				Name: ValueName{Value: v.Value.In(loc), Synonyms: v.Synonyms.In(loc)},
			})
		}
		lm.Types = append(lm.Types, st)
	}
	if dialog == nil {
		dialog = []*DialogIntent{}
	}
	if prompts == nil {
		prompts = []*Prompt{}
	}
	m.InteractionModel.Dialog = &Dialog{DelegationStrategy: DelegationStrategy, Intents: dialog}
	sort.Slice(prompts, func(i, j int) bool { return prompts[i].ID < prompts[j].ID })
	m.InteractionModel.Prompts = prompts
	return m
}

// WriteJSON writes the model as JSON indented by two spaces, with a final
// newline. Characters such as <, > and & are written as they are (not as
// \u003c ...), so that SSML prompts stay readable and greppable.
func (m *Model) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(m)
}

// intentNames returns the configured and built-in intent names, sorted.
func intentNames(sk *config.Skill) []string {
	seen := map[string]bool{}
	var names []string
	for _, n := range config.BuiltinIntents {
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	for n := range sk.Intents {
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// slotPrompt returns the prompt source of a required slot: the compiled
// one when the skill was loaded (it carries the gateway's default), else
// the configured text.
func slotPrompt(in *config.Intent, name string, s *config.Slot, locale string) string {
	if in.C != nil {
		for _, spec := range in.C.Slots {
			if p := spec.Prompt.In(locale); spec.Name == name && p != nil && p.T != nil {
				return p.T.Source()
			}
		}
	}
	return s.Prompt.In(locale)
}

func newPrompt(id, src string, slots []string, def string) *Prompt {
	text := PromptText(src, slots)
	if strings.TrimSpace(text) == "" {
		text = def
	}
	typ := PlainText
	if strings.HasPrefix(text, "<speak>") {
		typ = SSML
	}
	return &Prompt{ID: id, Variations: []*Variation{{Type: typ, Value: text}}}
}

var (
	spaceRe = regexp.MustCompile(`\s+`)
	punctRe = regexp.MustCompile(` ([.,!?;:]+)(\s|$)`)
	commaRe = regexp.MustCompile(`[,;:]+([.!?])`)
	actRe   = regexp.MustCompile(`(?s)\{\{.*?\}\}`)
)

// PromptText converts a speech template (a slot prompt or a confirm) into
// Alexa prompt text, which has no template language of its own, only
// {SlotName} references to the intent's slots:
//
//   - an action that simply references a slot of the intent,
//     {{ .slots.NAME }} (with or without trim markers), becomes {NAME};
//   - every other action is removed: function calls, pipelines (even
//     {{ .slots.NAME | upper }}), extracts, session values and comments;
//   - if, with and range keep their first branch (converted the same way)
//     and drop their else branches, so "{{ if .slots.N }}{{ .slots.N }}
//     shares{{ else }}one share{{ end }}" becomes "{N} shares";
//   - runs of white space become one space; a space, comma, colon or
//     semicolon that a removed action left before punctuation is dropped
//     ("like, {{ .user.id }}?" becomes "like?"); the result is trimmed.
//
// The gateway speaks the fully rendered template at run time (its
// Dialog.ElicitSlot and Dialog.ConfirmIntent carry their own speech), so the
// prompt in the model only has to be a faithful approximation. A source that
// does not parse as a template loses its {{ }} actions textually.
func PromptText(src string, slots []string) string {
	known := map[string]bool{}
	for _, s := range slots {
		known[s] = true
	}
	var b strings.Builder
	tree := parse.New("prompt")
	tree.Mode = parse.SkipFuncCheck
	if _, err := tree.Parse(src, "", "", map[string]*parse.Tree{}); err != nil || tree.Root == nil {
		b.WriteString(actRe.ReplaceAllString(src, ""))
	} else {
		writeNode(&b, tree.Root, known)
	}
	out := spaceRe.ReplaceAllString(b.String(), " ")
	out = punctRe.ReplaceAllString(out, "$1$2")
	out = commaRe.ReplaceAllString(out, "$1")
	return strings.TrimSpace(out)
}

func writeNode(b *strings.Builder, n parse.Node, slots map[string]bool) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			writeNode(b, c, slots)
		}
	case *parse.TextNode:
		b.Write(n.Text)
	case *parse.ActionNode:
		if name, ok := slotRef(n.Pipe); ok && slots[name] {
			b.WriteString("{" + name + "}")
		}
	case *parse.IfNode:
		writeBranch(b, &n.BranchNode, slots)
	case *parse.RangeNode:
		writeBranch(b, &n.BranchNode, slots)
	case *parse.WithNode:
		writeBranch(b, &n.BranchNode, slots)
	}
}

func writeBranch(b *strings.Builder, n *parse.BranchNode, slots map[string]bool) {
	writeNode(b, n.List, slots)
}

// slotRef reports whether p is exactly .slots.NAME and returns NAME.
func slotRef(p *parse.PipeNode) (string, bool) {
	if p == nil || len(p.Decl) > 0 || len(p.Cmds) != 1 || len(p.Cmds[0].Args) != 1 {
		return "", false
	}
	f, ok := p.Cmds[0].Args[0].(*parse.FieldNode)
	if !ok || len(f.Ident) != 2 || f.Ident[0] != "slots" {
		return "", false
	}
	return f.Ident[1], true
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
