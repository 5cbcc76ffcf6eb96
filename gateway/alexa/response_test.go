package alexa_test

import (
	"encoding/json"
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
				if c := d.Response.Card; c == nil || c.Type != "Simple" || c.Content != strings.Repeat(sentence, 200) {
					t.Errorf("card does not hold the whole text: %+v", c != nil)
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
