// Package mcp is voicegw's second platform beside alexa (SPEC 13): the
// configured intents of mcp.skills as tools of a Model Context Protocol
// server over Streamable HTTP, built with the official Go SDK, and the
// OAuth 2.1 authorization server that guards it. A tool call becomes the
// same neutral gateway.Turn that an Alexa request becomes, and the
// engine's neutral reply becomes the tool result: the engine learns
// nothing about MCP.
package mcp

import (
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/voicegw/voicegw/gateway/config"
)

// ConfirmedArg is the extra boolean argument of a tool whose intent has
// `confirm`: without it (or with false) the tool answers with the
// confirmation question and makes no call.
const ConfirmedArg = "confirmed"

// Tool is one configured intent as an MCP tool.
type Tool struct {
	// Name is <skill>_<Intent>.
	Name        string
	Skill       string
	Intent      string
	Description string
	// InputSchema is the JSON schema of the arguments.
	InputSchema map[string]any
	// ReadOnly: every call is GET or HEAD and there is no confirm.
	ReadOnly bool
	// Destructive: a call is DELETE.
	Destructive bool
	// Confirm: the intent asks for confirmation before its calls.
	Confirm bool
	// Slots are the intent's slots, by name.
	Slots map[string]*config.Slot
	// Types are the skill's custom types, for enums and resolution.
	Types map[string][]*config.TypeValue
	// Locale is the skill's first locale: the tool's description, enums,
	// resolution and speech are that locale's.
	Locale string
}

// Tools returns the tools of cfg's mcp.skills, sorted by name.
func Tools(cfg *config.Config) []*Tool {
	if cfg.MCP == nil {
		return nil
	}
	var out []*Tool
	for _, skill := range cfg.MCP.Skills {
		sk := cfg.Skills[skill]
		if sk == nil {
			continue
		}
		for name, in := range sk.Intents {
			if in == nil || !config.MCPTool(name) {
				continue
			}
			out = append(out, tool(sk, name, in))
		}
	}
	slices.SortFunc(out, func(a, b *Tool) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func tool(sk *config.Skill, name string, in *config.Intent) *Tool {
	t := &Tool{Name: sk.Name + "_" + name, Skill: sk.Name, Intent: name,
		Description: in.Description, Slots: in.Slots, Types: sk.Types,
		Confirm: in.Confirm.PerLocale() || strings.TrimSpace(in.Confirm.Plain) != "",
		Locale:  sk.LocaleFor("")}
	if samples := in.Samples.In(t.Locale); t.Description == "" && len(samples) > 0 {
		t.Description = samples[0]
	}
	t.ReadOnly = !t.Confirm
	for _, m := range methods(in) {
		if m != http.MethodGet && m != http.MethodHead {
			t.ReadOnly = false
		}
		if m == http.MethodDelete {
			t.Destructive = true
		}
	}
	props := map[string]any{}
	required := []string{}
	for _, sn := range slices.Sorted(maps.Keys(in.Slots)) {
		s := in.Slots[sn]
		if s == nil {
			continue
		}
		props[sn] = slotSchema(s, sk.Types, t.Locale)
		if s.Required {
			required = append(required, sn)
		}
	}
	if t.Confirm {
		props[ConfirmedArg] = map[string]any{
			"type":        "boolean",
			"description": "true once the user has said yes to the confirmation question; without it the tool only asks the question",
		}
	}
	t.InputSchema = map[string]any{"type": "object", "properties": props, "required": required}
	return t
}

// slotSchema is the JSON schema of one slot: a custom type is an enum of
// its values, AMAZON.NUMBER an integer, AMAZON.DATE a date string, any
// other type a string; a multi-value slot a list of those.
func slotSchema(s *config.Slot, types map[string][]*config.TypeValue, locale string) map[string]any {
	if s.Multiple {
		// A multi-value slot: a list of such values.
		one := *s
		one.Multiple = false
		return map[string]any{"type": "array", "items": slotSchema(&one, types, locale)}
	}
	switch s.Type {
	case "AMAZON.NUMBER":
		return map[string]any{"type": "integer"}
	case "AMAZON.DATE":
		return map[string]any{"type": "string", "format": "date", "description": "a date, YYYY-MM-DD"}
	}
	if values, ok := types[s.Type]; ok {
		enum := make([]any, 0, len(values))
		for _, v := range values {
			if v != nil {
				enum = append(enum, v.Value.In(locale))
			}
		}
		return map[string]any{"type": "string", "enum": enum}
	}
	return map[string]any{"type": "string"}
}

// methods are the HTTP methods of the intent's calls.
func methods(in *config.Intent) []string {
	var out []string
	if in.C != nil {
		for _, cc := range in.C.Calls {
			out = append(out, cc.Method)
		}
		return out
	}
	calls := in.Calls
	if in.Call != nil {
		calls = append([]*config.Call{in.Call}, calls...)
	}
	for _, c := range calls {
		if c == nil {
			continue
		}
		m := strings.ToUpper(c.Method)
		if m == "" {
			m = http.MethodGet
		}
		out = append(out, m)
	}
	return out
}
