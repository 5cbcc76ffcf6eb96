package alexa

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/voicegw/voicegw/gateway"
)

// Alexa's limits on a response.
const (
	// MaxSpeech is the most characters of outputSpeech text or SSML.
	MaxSpeech = 8000
	// MaxCard is the most characters of a card's title and text together.
	MaxCard = 8000
	// MaxResponse is the most bytes of a whole response (24 KB).
	MaxResponse = 24 << 10
)

type outSpeech struct {
	Type string `json:"type"`
	Text string `json:"text,omitempty"`
	SSML string `json:"ssml,omitempty"`
}

type outCard struct {
	Type    string `json:"type"`
	Title   string `json:"title,omitempty"`
	Content string `json:"content,omitempty"`
}

type outReprompt struct {
	OutputSpeech *outSpeech `json:"outputSpeech"`
}

type outDirective struct {
	Type         string `json:"type"`
	SlotToElicit string `json:"slotToElicit,omitempty"`
}

type outCanFulfill struct {
	CanFulfill string                   `json:"canFulfill"`
	Slots      map[string]outSlotFulfil `json:"slots,omitempty"`
}

type outSlotFulfil struct {
	CanUnderstand string `json:"canUnderstand"`
	CanFulfill    string `json:"canFulfill"`
}

type outBody struct {
	CanFulfillIntent *outCanFulfill `json:"canFulfillIntent,omitempty"`
	OutputSpeech     *outSpeech     `json:"outputSpeech,omitempty"`
	Card             *outCard       `json:"card,omitempty"`
	Reprompt         *outReprompt   `json:"reprompt,omitempty"`
	ShouldEndSession *bool          `json:"shouldEndSession,omitempty"`
	Directives       []outDirective `json:"directives,omitempty"`
}

type outEnvelope struct {
	Version           string         `json:"version"`
	SessionAttributes map[string]any `json:"sessionAttributes,omitempty"`
	Response          outBody        `json:"response"`
}

// Encode renders a reply as an Alexa response. Speech over MaxSpeech is cut
// at a sentence (else word) boundary and, when the reply has no card, the
// whole text goes to a Simple card "Full answer"; a card's title and text
// together are cut to MaxCard characters. Until the response fits in
// MaxResponse bytes, the card's text is shortened, then session attributes
// are dropped one at a time, largest first, then the reprompt is dropped
// and the speech cut further. SSML loses the characters XML cannot carry.
func Encode(r *gateway.Reply) []byte {
	env := outEnvelope{Version: "1.0"}
	if cf := r.CanFulfill; cf != nil {
		// Amazon's shape: response.canFulfillIntent {canFulfill, slots:
		// {Name: {canUnderstand, canFulfill}}}, nothing spoken.
		out := &outCanFulfill{CanFulfill: cf.Intent, Slots: make(map[string]outSlotFulfil, len(cf.Slots))}
		for name, sf := range cf.Slots {
			out.Slots[name] = outSlotFulfil{CanUnderstand: sf.Understand, CanFulfill: sf.Fulfill}
		}
		env.Response.CanFulfillIntent = out
		b, _ := json.Marshal(env)
		return b
	}
	if r.Empty {
		b, _ := json.Marshal(env)
		return b
	}
	env.SessionAttributes = r.Session
	speech, full, cut := limitSpeech(r.Speech)
	env.Response.OutputSpeech = speech
	if r.Reprompt != nil && r.Reprompt.Text != "" {
		rp, _, _ := limitSpeech(*r.Reprompt)
		env.Response.Reprompt = &outReprompt{OutputSpeech: rp}
	}
	switch {
	case r.Card != nil:
		env.Response.Card = &outCard{Type: string(r.Card.Type)}
		if r.Card.Type != gateway.CardLinkAccount {
			env.Response.Card.Title, env.Response.Card.Content = limitCard(r.Card.Title, r.Card.Text)
		}
	case cut:
		env.Response.Card = &outCard{Type: string(gateway.CardSimple)}
		env.Response.Card.Title, env.Response.Card.Content = limitCard(fullAnswerTitle, full)
	}
	end := r.EndSession
	for _, d := range r.Directives {
		env.Response.Directives = append(env.Response.Directives, outDirective{Type: d.Type, SlotToElicit: d.Slot})
		end = false
	}
	env.Response.ShouldEndSession = &end
	b, _ := json.Marshal(env)
	var largest []string // session attributes not yet dropped, largest first
	for len(b) > MaxResponse {
		c := env.Response.Card
		switch {
		case c != nil && c.Content != "":
			over := len(b) - MaxResponse
			keep := len(c.Content) - over - 64
			if keep < 0 {
				keep = 0
			}
			c.Content = cutText(c.Content, utf8.RuneCountInString(c.Content[:keep]))
			if keep == 0 {
				c.Content = ""
			}
		case len(env.SessionAttributes) > 0:
			if largest == nil {
				largest = bySize(env.SessionAttributes)
				// A copy: the reply's map is the caller's.
				env.SessionAttributes = maps.Clone(env.SessionAttributes)
			}
			delete(env.SessionAttributes, largest[0])
			largest = largest[1:]
		case env.Response.Reprompt != nil:
			// Speech and reprompt alone are within 2 x 8,000 characters of
			// at most 4 bytes each, plus JSON escaping: drop the reprompt.
			env.Response.Reprompt = nil
		default:
			// 8,000 characters of speech can still be over the limit
			// (multi-byte or JSON-escaped characters): cut it further, as
			// plain text, by at least one character per 6 bytes over.
			sp := env.Response.OutputSpeech
			if sp == nil {
				return b
			}
			text := sp.Text
			if sp.Type == "SSML" {
				text = stripSSML(sp.SSML)
			}
			keep := utf8.RuneCountInString(text) - (len(b)-MaxResponse+5)/6 - 1
			if keep < 0 {
				keep = 0
			}
			env.Response.OutputSpeech = &outSpeech{Type: "PlainText", Text: cutText(text, keep)}
		}
		b, _ = json.Marshal(env)
	}
	return b
}

// fullAnswerTitle is the title of the card that carries a cut speech's
// whole text.
const fullAnswerTitle = "Full answer"

// limitCard cuts a card's title and text so that together they have at
// most MaxCard characters: the text at a sentence (else word) boundary,
// the title only when it alone is longer.
func limitCard(title, text string) (string, string) {
	tn := utf8.RuneCountInString(title)
	if tn+utf8.RuneCountInString(text) <= MaxCard {
		return title, text
	}
	if tn > MaxCard {
		title = cutText(title, MaxCard)
		tn = utf8.RuneCountInString(title)
	}
	return title, cutText(text, MaxCard-tn)
}

// bySize returns the names of session attributes ordered by their encoded
// size, largest first (by name among equals, so the order is stable).
func bySize(attrs map[string]any) []string {
	size := make(map[string]int, len(attrs))
	names := make([]string, 0, len(attrs))
	for k, v := range attrs {
		b, _ := json.Marshal(v)
		size[k] = len(k) + len(b)
		names = append(names, k)
	}
	slices.SortFunc(names, func(a, b string) int {
		if d := size[b] - size[a]; d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	return names
}

// limitSpeech returns the Alexa speech, the full plain text, and whether
// the speech was cut.
func limitSpeech(s gateway.Speech) (*outSpeech, string, bool) {
	if s.SSML {
		s.Text = xmlChars(s.Text)
	}
	if !s.SSML {
		if utf8.RuneCountInString(s.Text) <= MaxSpeech {
			return &outSpeech{Type: "PlainText", Text: s.Text}, s.Text, false
		}
		return &outSpeech{Type: "PlainText", Text: cutText(s.Text, MaxSpeech)}, s.Text, true
	}
	if utf8.RuneCountInString(s.Text) <= MaxSpeech {
		return &outSpeech{Type: "SSML", SSML: s.Text}, s.Text, false
	}
	// Cutting SSML could split a tag: speak the plain text instead.
	plain := stripSSML(s.Text)
	if utf8.RuneCountInString(plain) <= MaxSpeech {
		return &outSpeech{Type: "PlainText", Text: plain}, plain, true
	}
	return &outSpeech{Type: "PlainText", Text: cutText(plain, MaxSpeech)}, plain, true
}

// xmlChars drops the characters XML 1.0 cannot carry (C0 controls but tab,
// CR and LF; U+FFFE, U+FFFF; surrogates), with which Alexa rejects SSML.
func xmlChars(s string) string {
	bad := func(r rune) bool {
		return !(r == '\t' || r == '\n' || r == '\r' || (r >= 0x20 && r <= 0xD7FF) ||
			(r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF))
	}
	if strings.IndexFunc(s, bad) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if bad(r) {
			return -1
		}
		return r
	}, s)
}

func stripSSML(s string) string { return gateway.Speech{Text: s, SSML: true}.Plain() }

// cutText cuts s to at most max characters, at the end of a sentence when
// one ends in the second half, else at a word boundary.
func cutText(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	// Byte offset of the max-th rune.
	end := 0
	for i := range s {
		if max == 0 {
			end = i
			break
		}
		max--
	}
	head := s[:end]
	if i := lastSentenceEnd(head); i > len(head)/2 {
		return strings.TrimSpace(head[:i])
	}
	if i := strings.LastIndexAny(head, " \t\n"); i > 0 {
		return strings.TrimSpace(head[:i])
	}
	return head
}

func lastSentenceEnd(s string) int {
	best := -1
	for _, p := range []string{". ", "! ", "? ", ".\n", "!\n", "?\n"} {
		if i := strings.LastIndex(s, p); i >= 0 && i+1 > best {
			best = i + 1
		}
	}
	if n := len(s); n > 0 && strings.ContainsRune(".!?", rune(s[n-1])) {
		return n
	}
	return best
}
