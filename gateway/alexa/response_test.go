package alexa_test

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/alexa"
)

func TestEncodeShape(t *testing.T) {
	tests := []struct {
		name  string
		reply *gateway.Reply
		want  string
	}{
		{name: "empty", reply: &gateway.Reply{Empty: true, Speech: gateway.Speech{Text: "ignored"}},
			want: `{"version":"1.0","response":{}}`},
		{name: "plain speech ends", reply: &gateway.Reply{Speech: gateway.Speech{Text: "Hi."}, EndSession: true},
			want: `{"version":"1.0","response":{"outputSpeech":{"type":"PlainText","text":"Hi."},"shouldEndSession":true}}`},
		{name: "ssml with reprompt and session", reply: &gateway.Reply{
			Speech:   gateway.Speech{Text: "<speak>Hi</speak>", SSML: true},
			Reprompt: &gateway.Speech{Text: "Again?"},
			Session:  map[string]any{"a": "b", "n": 2},
		}, want: `{"version":"1.0","sessionAttributes":{"a":"b","n":2},"response":{"outputSpeech":{"type":"SSML","ssml":"<speak>Hi</speak>"},"reprompt":{"outputSpeech":{"type":"PlainText","text":"Again?"}},"shouldEndSession":false}}`},
		{name: "empty reprompt is left out", reply: &gateway.Reply{Speech: gateway.Speech{Text: "Hi."}, Reprompt: &gateway.Speech{}},
			want: `{"version":"1.0","response":{"outputSpeech":{"type":"PlainText","text":"Hi."},"shouldEndSession":false}}`},
		{name: "simple card", reply: &gateway.Reply{Speech: gateway.Speech{Text: "Hi."}, Card: &gateway.Card{Type: gateway.CardSimple, Title: "T", Text: "C"}, EndSession: true},
			want: `{"version":"1.0","response":{"outputSpeech":{"type":"PlainText","text":"Hi."},"card":{"type":"Simple","title":"T","content":"C"},"shouldEndSession":true}}`},
		{name: "link account card carries no text", reply: &gateway.Reply{Speech: gateway.Speech{Text: "Link."}, Card: &gateway.Card{Type: gateway.CardLinkAccount, Title: "T", Text: "secret"}, EndSession: true},
			want: `{"version":"1.0","response":{"outputSpeech":{"type":"PlainText","text":"Link."},"card":{"type":"LinkAccount"},"shouldEndSession":true}}`},
		{name: "directive keeps the session open", reply: &gateway.Reply{Speech: gateway.Speech{Text: "Which?"}, Reprompt: &gateway.Speech{Text: "Which?"}, EndSession: true,
			Directives: []gateway.Directive{{Type: "Dialog.ElicitSlot", Slot: "S"}}},
			want: `{"version":"1.0","response":{"outputSpeech":{"type":"PlainText","text":"Which?"},"reprompt":{"outputSpeech":{"type":"PlainText","text":"Which?"}},"shouldEndSession":false,"directives":[{"type":"Dialog.ElicitSlot","slotToElicit":"S"}]}}`},
		{name: "confirm intent directive", reply: &gateway.Reply{Speech: gateway.Speech{Text: "Sure?"}, Directives: []gateway.Directive{{Type: "Dialog.ConfirmIntent"}}},
			want: `{"version":"1.0","response":{"outputSpeech":{"type":"PlainText","text":"Sure?"},"shouldEndSession":false,"directives":[{"type":"Dialog.ConfirmIntent"}]}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := normalizeJSON(alexa.Encode(tc.reply))
			if err != nil {
				t.Fatal(err)
			}
			want, _ := normalizeJSON([]byte(tc.want))
			if got != want {
				t.Errorf("got\n%s want\n%s", got, want)
			}
		})
	}
}

// encodedReply is the part of an encoded response the limit tests read.
type encodedReply struct {
	SessionAttributes map[string]any `json:"sessionAttributes"`
	Response          struct {
		OutputSpeech *struct{ Type, Text, SSML string } `json:"outputSpeech"`
		Reprompt     *struct {
			OutputSpeech *struct{ Type, Text, SSML string } `json:"outputSpeech"`
		} `json:"reprompt"`
		Card *struct{ Type, Title, Content string } `json:"card"`
	} `json:"response"`
}

func (d *encodedReply) speech() string {
	if s := d.Response.OutputSpeech; s != nil {
		return s.Text + s.SSML
	}
	return ""
}

func TestEncodeLimits(t *testing.T) {
	sentence := "The quick brown fox jumps over the lazy dog. "
	long := strings.Repeat(sentence, 400) // 18,000 characters
	tests := []struct {
		name  string
		reply *gateway.Reply
		check func(t *testing.T, d *encodedReply)
	}{
		{name: "long speech cut at a sentence, whole text on a card", reply: &gateway.Reply{Speech: gateway.Speech{Text: strings.Repeat(sentence, 200)}},
			check: func(t *testing.T, d *encodedReply) {
				sp := d.speech()
				if !strings.HasSuffix(sp, "lazy dog.") {
					t.Errorf("speech not cut at a sentence: ...%q", sp[len(sp)-20:])
				}
				// 9,000 characters: the card holds what fits with its
				// title in 8,000, cut at a sentence.
				c := d.Response.Card
				if c == nil || c.Type != "Simple" || c.Title != "Full answer" {
					t.Fatalf("no Full answer card: %+v", c)
				}
				if n := utf8.RuneCountInString(c.Title + c.Content); n > 8000 || n < 8000-len(sentence) {
					t.Errorf("card title and text have %d characters, want up to 8000", n)
				}
				if !strings.HasPrefix(strings.Repeat(sentence, 200), c.Content) || !strings.HasSuffix(c.Content, "lazy dog.") {
					t.Errorf("card text is not the text cut at a sentence: ...%q", c.Content[len(c.Content)-20:])
				}
			}},
		{name: "long speech cut at a word without sentence end", reply: &gateway.Reply{Speech: gateway.Speech{Text: strings.Repeat("word ", 2000)}},
			check: func(t *testing.T, d *encodedReply) {
				sp := d.speech()
				if !strings.HasSuffix(sp, "word") || strings.HasSuffix(sp, " ") {
					t.Errorf("speech not cut at a word: ...%q", sp[len(sp)-20:])
				}
			}},
		{name: "long speech keeps the reply's own card", reply: &gateway.Reply{Speech: gateway.Speech{Text: strings.Repeat(sentence, 200)}, Card: &gateway.Card{Type: gateway.CardSimple, Title: "Mine", Text: "own"}},
			check: func(t *testing.T, d *encodedReply) {
				if c := d.Response.Card; c == nil || c.Title != "Mine" || c.Content != "own" {
					t.Errorf("card %+v, want the reply's", c)
				}
			}},
		{name: "long SSML becomes plain text", reply: &gateway.Reply{Speech: gateway.Speech{SSML: true, Text: "<speak>" + strings.Repeat(`Tom &amp; Jerry <break time="1s"/> ran. `, 300) + "</speak>"}},
			check: func(t *testing.T, d *encodedReply) {
				if s := d.Response.OutputSpeech; s.Type != "PlainText" || strings.ContainsAny(s.Text, "<>") || !strings.HasPrefix(s.Text, "Tom & Jerry") {
					t.Errorf("speech %s %q", s.Type, s.Text[:40])
				}
			}},
		{name: "long speech, long card, large session", reply: &gateway.Reply{
			Speech:   gateway.Speech{Text: long},
			Reprompt: &gateway.Speech{Text: long},
			Session:  map[string]any{"blob": strings.Repeat("x", 30000)},
		}, check: func(t *testing.T, d *encodedReply) {
			if !strings.HasPrefix(long, d.speech()) || d.speech() == "" {
				t.Errorf("speech is not a cut of the text")
			}
		}},
		{name: "large session alone is dropped", reply: &gateway.Reply{Speech: gateway.Speech{Text: "Hi."}, Session: map[string]any{"blob": strings.Repeat("x", 30000)}},
			check: func(t *testing.T, d *encodedReply) {
				if d.speech() != "Hi." {
					t.Errorf("speech %q", d.speech())
				}
			}},
		{name: "8000 three-byte characters", reply: &gateway.Reply{Speech: gateway.Speech{Text: strings.Repeat("日本語のテキスト。", 1000)}, Reprompt: &gateway.Speech{Text: "何？"}}},
		{name: "8000 four-byte characters", reply: &gateway.Reply{Speech: gateway.Speech{Text: strings.Repeat("😀", 8000)}}},
		{name: "characters JSON escapes", reply: &gateway.Reply{Speech: gateway.Speech{Text: strings.Repeat("<&> ", 2000)}}},
		{name: "control characters", reply: &gateway.Reply{Speech: gateway.Speech{Text: strings.Repeat("\x01\x02 ", 2600)}}},
		{name: "long SSML and long reprompt", reply: &gateway.Reply{
			Speech:   gateway.Speech{SSML: true, Text: "<speak>" + strings.Repeat("ü&amp;ü ", 1500) + "</speak>"},
			Reprompt: &gateway.Speech{SSML: true, Text: "<speak>" + strings.Repeat("ö ", 3900) + "</speak>"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := alexa.Encode(tc.reply)
			if len(b) > alexa.MaxResponse {
				t.Errorf("response is %d bytes, over %d", len(b), alexa.MaxResponse)
			}
			var d encodedReply
			if err := json.Unmarshal(b, &d); err != nil {
				t.Fatalf("not JSON: %v", err)
			}
			if n := utf8.RuneCountInString(d.speech()); n > alexa.MaxSpeech || n == 0 {
				t.Errorf("speech has %d characters", n)
			}
			if rp := d.Response.Reprompt; rp != nil && rp.OutputSpeech != nil {
				if n := utf8.RuneCountInString(rp.OutputSpeech.Text + rp.OutputSpeech.SSML); n > alexa.MaxSpeech {
					t.Errorf("reprompt has %d characters", n)
				}
			}
			if tc.check != nil {
				tc.check(t, &d)
			}
		})
	}
}

// TestEncodeSSMLIsXML checks that SSML speech is well-formed XML even when
// the text holds characters XML cannot carry.
func TestEncodeSSMLIsXML(t *testing.T) {
	tests := []struct {
		name, ssml, want string
	}{
		{name: "plain", ssml: "<speak>Hi &amp; bye</speak>", want: "<speak>Hi &amp; bye</speak>"},
		{name: "NUL", ssml: "<speak>a\x00b</speak>", want: "<speak>ab</speak>"},
		{name: "C0 controls", ssml: "<speak>a\x01\x08\x0b\x0c\x1fb\tc\nd</speak>", want: "<speak>ab\tc\nd</speak>"},
		{name: "noncharacters", ssml: "<speak>a\ufffe\uffffb</speak>", want: "<speak>ab</speak>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var d encodedReply
			if err := json.Unmarshal(alexa.Encode(&gateway.Reply{Speech: gateway.Speech{SSML: true, Text: tc.ssml}, Reprompt: &gateway.Speech{SSML: true, Text: tc.ssml}}), &d); err != nil {
				t.Fatal(err)
			}
			if got := d.Response.OutputSpeech.SSML; got != tc.want {
				t.Errorf("ssml %q, want %q", got, tc.want)
			}
			if got := d.Response.Reprompt.OutputSpeech.SSML; got != tc.want {
				t.Errorf("reprompt ssml %q, want %q", got, tc.want)
			}
			if _, err := ssmlText(tc.want); err != nil {
				t.Errorf("want is not XML: %v", err)
			}
		})
	}
}

// TestCardLimit pins SPEC 10: a card's title and text together have at
// most 8,000 characters, Alexa's limit, named here as a literal so that a
// changed constant fails.
func TestCardLimit(t *testing.T) {
	const limit = 8000
	words := func(n int) string { // n characters of words, no sentence end
		return strings.Repeat("abcd ", n/5+1)[:n]
	}
	tests := []struct {
		name        string
		title, text string
		// wantTitle is the title the card must keep ("" for the input's).
		wantTitle string
		uncut     bool
	}{
		{name: "exactly at the limit", title: "Quote", text: words(limit - 5), uncut: true},
		{name: "one over the limit", title: "Quote", text: words(limit - 4)},
		{name: "long text, short title", title: "Quote", text: words(3 * limit)},
		{name: "long title", title: strings.Repeat("T", limit+1), text: "text", wantTitle: strings.Repeat("T", limit)},
		{name: "multi-byte characters count once", title: "日本", text: strings.Repeat("語", limit-2), uncut: true},
		{name: "multi-byte over", title: "日本", text: strings.Repeat("語", limit-1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var d encodedReply
			reply := &gateway.Reply{Speech: gateway.Speech{Text: "Hi."}, Card: &gateway.Card{Type: gateway.CardSimple, Title: tc.title, Text: tc.text}}
			if err := json.Unmarshal(alexa.Encode(reply), &d); err != nil {
				t.Fatal(err)
			}
			c := d.Response.Card
			if c == nil {
				t.Fatal("no card")
			}
			n := utf8.RuneCountInString(c.Title) + utf8.RuneCountInString(c.Content)
			if n > limit {
				t.Errorf("title and text have %d characters, over %d", n, limit)
			}
			if tc.uncut {
				if c.Title != tc.title || c.Content != tc.text {
					t.Errorf("card within the limit was cut to %d characters", n)
				}
				return
			}
			want := tc.wantTitle
			if want == "" {
				want = tc.title
			}
			if c.Title != want {
				t.Errorf("title cut to %d characters, want %d", utf8.RuneCountInString(c.Title), utf8.RuneCountInString(want))
			}
			if !strings.HasPrefix(tc.text, c.Content) {
				t.Errorf("text is not a cut of the card's text")
			}
			if c.Title == tc.title && n < limit-10 {
				t.Errorf("text cut to %d characters in all, far under %d", n, limit)
			}
		})
	}
	t.Run("Full answer card", func(t *testing.T) {
		// Speech of 20,000 characters: spoken cut to 8,000, and the card
		// "Full answer" carries as much as fits with its title.
		long := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 450)
		var d encodedReply
		if err := json.Unmarshal(alexa.Encode(&gateway.Reply{Speech: gateway.Speech{Text: long}}), &d); err != nil {
			t.Fatal(err)
		}
		c := d.Response.Card
		if c == nil || c.Title != "Full answer" {
			t.Fatalf("card %+v, want Full answer", c)
		}
		if n := utf8.RuneCountInString(c.Title + c.Content); n > limit || n < limit-50 {
			t.Errorf("Full answer card has %d characters, want up to %d", n, limit)
		}
	})
}

// TestResponseLimitDropsLargestAttributes pins SPEC 10: a response stays
// within 24 KB (24,576 bytes, named as a literal), and over it session
// attributes are dropped largest first, one at a time, not all at once.
func TestResponseLimitDropsLargestAttributes(t *testing.T) {
	const limit = 24576
	// size returns the encoded size of a reply whose attribute "big" has
	// n bytes beside the attributes of keep.
	build := func(n int) *gateway.Reply {
		return &gateway.Reply{Speech: gateway.Speech{Text: "Hi."}, Session: map[string]any{
			"big":    strings.Repeat("x", n),
			"medium": strings.Repeat("m", 3000),
			"small":  "s",
			"count":  3,
		}}
	}
	base := len(alexa.Encode(build(0)))
	fill := limit - base // "big" this long makes the response exactly 24 KB
	tests := []struct {
		name string
		big  int
		// want are the attributes the response keeps.
		want []string
	}{
		{name: "exactly 24 KB keeps every attribute", big: fill, want: []string{"big", "count", "medium", "small"}},
		{name: "one byte over drops only the largest", big: fill + 1, want: []string{"count", "medium", "small"}},
		{name: "far over drops only the largest", big: 10 * limit, want: []string{"count", "medium", "small"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reply := build(tc.big)
			b := alexa.Encode(reply)
			if len(b) > limit {
				t.Fatalf("response is %d bytes, over %d", len(b), limit)
			}
			var d struct {
				SessionAttributes map[string]any `json:"sessionAttributes"`
			}
			if err := json.Unmarshal(b, &d); err != nil {
				t.Fatal(err)
			}
			got := slices.Sorted(maps.Keys(d.SessionAttributes))
			if !slices.Equal(got, tc.want) {
				t.Errorf("attributes %v, want %v", got, tc.want)
			}
			if len(reply.Session) != 4 {
				t.Errorf("the reply's own session map was changed: %d entries", len(reply.Session))
			}
		})
	}
	t.Run("two large attributes: largest first, then the next", func(t *testing.T) {
		reply := &gateway.Reply{Speech: gateway.Speech{Text: "Hi."}, Session: map[string]any{
			"a": strings.Repeat("a", 15000), "b": strings.Repeat("b", 14000), "c": strings.Repeat("c", 9000), "d": 1,
		}}
		var d struct {
			SessionAttributes map[string]any `json:"sessionAttributes"`
		}
		b := alexa.Encode(reply)
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatal(err)
		}
		// 38 KB of attributes: dropping a (15,000) leaves 23 KB, which fits.
		if got := slices.Sorted(maps.Keys(d.SessionAttributes)); !slices.Equal(got, []string{"b", "c", "d"}) {
			t.Errorf("attributes %v, want b, c and d (%d bytes)", got, len(b))
		}
	})
}
