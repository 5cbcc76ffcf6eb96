package config

import (
	"bytes"
	"encoding/json"
	"net/url"

	"github.com/voicegw/voicegw/gateway/render"
)

// Speech is a compiled speech (or card) template; SSML when its source
// starts with <speak>, in which case every action's output is XML-escaped.
// A text given per locale has a Speech per locale in ByLocale, and T and
// SSML are the first locale's.
type Speech struct {
	T    *render.Template
	SSML bool
	// ByLocale holds the speech of each locale when the text was given per
	// locale; nil otherwise.
	ByLocale map[string]*Speech
	// order lists the locales of ByLocale as the file gives them.
	order []string
}

// In returns the speech for a locale: the speech itself when it serves
// every locale, else the one of that exact locale, else the first of the
// same language, else the first given. A nil speech stays nil.
func (s *Speech) In(locale string) *Speech {
	if s == nil || s.ByLocale == nil {
		return s
	}
	if v, ok := s.ByLocale[locale]; ok {
		return v
	}
	return s.ByLocale[pickLocale(locale, s.order)]
}

// variants returns the speech of every locale, or the speech itself.
func (s *Speech) variants() []*Speech {
	if s.ByLocale == nil {
		return []*Speech{s}
	}
	out := make([]*Speech, 0, len(s.order))
	for _, l := range s.order {
		out = append(out, s.ByLocale[l])
	}
	return out
}

// Named is a compiled template with the key it was written under.
type Named struct {
	Name string
	T    *render.Template
}

// ErrorSpeech maps error keys ("404", "4xx", "timeout", ..., "default") to
// compiled speech.
type ErrorSpeech map[string]*Speech

// Compiled is a launch, built-in or configured intent ready to run.
type Compiled struct {
	Intent      string
	Say         *Speech
	Reprompt    *Speech
	CardTitle   *Speech
	CardText    *Speech
	Session     []Named
	EndSession  bool
	Slots       []SlotSpec
	Confirm     *Speech
	Progressive *Speech
	Calls       []*CompiledCall
	Errors      ErrorSpeech
	// Extracts lists every extract name of the calls, so that the engine
	// can give the ones not (yet) extracted the value "".
	Extracts []string
}

// SlotSpec is a declared slot.
type SlotSpec struct {
	Name     string
	Type     string
	Required bool
	// Multiple slots hold a list of values.
	Multiple bool
	Prompt   *Speech
}

// CompiledCall is a call ready to render.
type CompiledCall struct {
	Service *Service
	Method  string
	// Path renders each action as one escaped path segment.
	Path    *render.Template
	Query   []Named
	Headers []Named
	// Body is nil for no body.
	Body    *Body
	Form    bool
	Extract []Extract
}

// Extract takes one value out of a JSON response with a gjson path.
type Extract struct {
	Name     string
	Path     string
	Required bool
}

// Body is a compiled request body: a YAML value whose string leaves are
// templates.
type Body struct {
	// Exactly one of the following is set.
	Keys    []string // with Items: a mapping
	Items   []*Body  // alone: a list
	Literal json.RawMessage
	T       *render.Template
	isList  bool
}

// JSON renders the body as JSON. A leaf that is exactly one action keeps
// its value's type; other string leaves are rendered and JSON-encoded, so
// no value can leave its JSON string.
func (b *Body) JSON(data map[string]any) ([]byte, error) {
	var buf bytes.Buffer
	if err := b.write(&buf, data); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (b *Body) write(buf *bytes.Buffer, data map[string]any) error {
	switch {
	case b.T != nil:
		raw, err := b.T.JSON(data)
		if err != nil {
			return err
		}
		buf.Write(raw)
	case b.Literal != nil:
		buf.Write(b.Literal)
	case b.isList:
		buf.WriteByte('[')
		for i, it := range b.Items {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := it.write(buf, data); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	default:
		buf.WriteByte('{')
		for i, k := range b.Keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			key, _ := json.Marshal(k)
			buf.Write(key)
			buf.WriteByte(':')
			if err := b.Items[i].write(buf, data); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	}
	return nil
}

// Form renders a flat mapping body as an URL-encoded form.
func (b *Body) Form(data map[string]any) ([]byte, error) {
	v := url.Values{}
	for i, k := range b.Keys {
		it := b.Items[i]
		switch {
		case it.T != nil:
			s, err := it.T.Execute(data)
			if err != nil {
				return nil, err
			}
			v.Add(k, s)
		case it.Literal != nil:
			var x any
			_ = json.Unmarshal(it.Literal, &x)
			if s, ok := x.(string); ok {
				v.Add(k, s)
			} else if x != nil {
				v.Add(k, string(it.Literal))
			}
		}
	}
	return []byte(v.Encode()), nil
}
