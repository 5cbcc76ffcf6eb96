package alexa_test

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"unicode/utf8"

	"github.com/voicegw/voicegw/gateway/alexa"
)

const hostileConfig = `
version: 1
alexa:
  verify: false
services:
  api:
    base_url: ${VOICEGW_TEST_UPSTREAM}/base
    timeout: 1s
skills:
  hostile:
    application_id: amzn1.ask.skill.hostile
    intents:
      Send:
        samples: ["send {V}"]
        slots: { V: { type: AMAZON.SearchQuery } }
        call:
          service: api
          method: POST
          path: /items/{{ .slots.V }}/x
          query: { q: "{{ .slots.V }}", fixed: "1" }
          body:
            typed: "{{ .slots.V }}"
            mixed: "<{{ .slots.V }}>"
            list: ["{{ .slots.V }}"]
        say: "Sent {{ .slots.V }}."
      Header:
        samples: ["header {V}"]
        slots: { V: { type: AMAZON.SearchQuery } }
        call:
          service: api
          path: /h
          headers: { X-Value: "{{ .slots.V }}" }
        say: "Header sent."
        errors: { default: "Header refused." }
      Speak:
        samples: ["speak {V}"]
        slots: { V: { type: AMAZON.SearchQuery } }
        say: "<speak>You said {{ .slots.V }}.</speak>"
        end_session: false
`

// TestHostileSlotValues sends slot values aimed at each output context and
// checks what the upstream actually receives and what Alexa is told to say.
func TestHostileSlotValues(t *testing.T) {
	long := strings.Repeat("A", 10<<10)
	tests := []struct {
		name  string
		value string
		// seg is the path segment the upstream must see.
		seg string
		// refused: the value would be a dot segment, so the call is not
		// made and the error speech answers.
		refused bool
	}{
		{name: "path traversal", value: "../../admin", seg: "..%2F..%2Fadmin"},
		{name: "segment query and dots", value: "a/../b?x=1", seg: "a%2F..%2Fb%3Fx=1"},
		{name: "dot dot", value: "..", refused: true},
		{name: "dot", value: ".", refused: true},
		{name: "three dots", value: "...", seg: "..."},
		{name: "question mark", value: "?", seg: "%3F"},
		{name: "fragment", value: "#frag", seg: "%23frag"},
		{name: "encoded dots", value: "%2e%2e", seg: "%252e%252e"},
		{name: "percent", value: "100%", seg: "100%25"},
		{name: "CRLF header injection", value: "x\r\nX-Evil: 1", seg: "x%0D%0AX-Evil:%201"},
		{name: "quotes and backslashes", value: `he said "hi" \ back\slash`, seg: "he%20said%20%22hi%22%20%5C%20back%5Cslash"},
		{name: "JSON breakout", value: `","admin":true,"x":"`, seg: "%22%2C%22admin%22:true%2C%22x%22:%22"},
		{name: "NUL", value: "nul\x00byte", seg: "nul%00byte"},
		{name: "10 KB", value: long, seg: long},
		{name: "SSML audio tag", value: "<audio src='x'/>", seg: "%3Caudio%20src=%27x%27%2F%3E"},
		{name: "template syntax", value: "{{ .user.id }}", seg: "%7B%7B%20.user.id%20%7D%7D"},
		{name: "authority", value: "@evil.example:80", seg: "@evil.example:80"},
		{name: "double slash", value: "//evil.example/x", seg: "%2F%2Fevil.example%2Fx"},
		{name: "semicolon and comma", value: "a;b,c", seg: "a%3Bb%2Cc"},
		{name: "unicode", value: "café/ü", seg: "caf%C3%A9%2F%C3%BC"},
		{name: "empty", value: "", seg: ""},
	}
	up := MustUpstream(t, nil)
	h := MustPipeline(t, hostileConfig, nil)
	const envAppID = "amzn1.ask.skill.hostile"
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Run("path query body", func(t *testing.T) {
				before := up.Hits()
				resp := mustServe(t, h, buildIntent(envAppID, "Send", map[string]string{"V": tc.value}))
				reqs := up.Requests()[before:]
				if tc.refused {
					if len(reqs) != 0 {
						t.Fatalf("a dot segment reached the upstream: %s", reqs[0].EscapedPath)
					}
					if got, want := resp.Speech(), "Sorry, something went wrong. Please try again later."; got != want {
						t.Errorf("speech %q, want %q", got, want)
					}
					return
				}
				if len(reqs) != 1 {
					t.Fatalf("upstream got %d requests, want 1", len(reqs))
				}
				r := reqs[0]
				if want := "/base/items/" + tc.seg + "/x"; r.EscapedPath != want {
					t.Errorf("path %q, want %q", r.EscapedPath, want)
				}
				if len(r.Query) != 2 || len(r.Query["q"]) != 1 || r.Query.Get("q") != tc.value || r.Query.Get("fixed") != "1" {
					t.Errorf("query %q (raw %q), want q=%q fixed=1 and nothing else", r.Query, r.RawQuery, tc.value)
				}
				if v, ok := r.Header["X-Evil"]; ok {
					t.Errorf("header X-Evil injected: %q", v)
				}
				var body struct {
					Typed any   `json:"typed"`
					Mixed any   `json:"mixed"`
					List  []any `json:"list"`
				}
				if err := json.Unmarshal(r.Body, &body); err != nil {
					t.Fatalf("body is not JSON: %v: %q", err, r.Body)
				}
				var keys map[string]json.RawMessage
				_ = json.Unmarshal(r.Body, &keys)
				if len(keys) != 3 {
					t.Errorf("body has keys %v, want typed, mixed and list only", keys)
				}
				if body.Typed != tc.value || body.Mixed != "<"+tc.value+">" || len(body.List) != 1 || body.List[0] != tc.value {
					t.Errorf("body %q does not carry the value as strings", r.Body)
				}
				if r.Header.Get("Content-Type") != "application/json" {
					t.Errorf("Content-Type %q", r.Header.Get("Content-Type"))
				}
				want := "Sent " + tc.value + "."
				if utf8.RuneCountInString(want) <= alexa.MaxSpeech {
					if got := resp.Speech(); got != want {
						t.Errorf("speech %q, want %q", got, want)
					}
					return
				}
				// Over Alexa's limit: cut at a word boundary, as much of
				// the text as a card holds (title and text within 8,000
				// characters) on a card.
				if got := resp.Speech(); got != "Sent" {
					t.Errorf("long speech cut to %q, want %q", short(got), "Sent")
				}
				if c := resp.Response.Card; c == nil || c.Content == "" || !strings.HasPrefix(want, c.Content) || utf8.RuneCountInString(c.Title+c.Content) > 8000 {
					t.Errorf("long speech: card does not hold the text within 8,000 characters")
				}
			})
			t.Run("header", func(t *testing.T) {
				before := up.Hits()
				resp := mustServe(t, h, buildIntent(envAppID, "Header", map[string]string{"V": tc.value}))
				reqs := up.Requests()[before:]
				if strings.ContainsAny(tc.value, "\r\n\x00") {
					if len(reqs) != 0 {
						t.Fatalf("a header value with a control character reached the upstream: %q", reqs[0].Header["X-Value"])
					}
					if got := resp.Speech(); got != "Header refused." {
						t.Errorf("speech %q, want the error speech", got)
					}
					return
				}
				if len(reqs) != 1 {
					t.Fatalf("upstream got %d requests, want 1", len(reqs))
				}
				if got := reqs[0].Header["X-Value"]; len(got) != 1 || got[0] != tc.value {
					t.Errorf("X-Value %q, want %q", short(strings.Join(got, "|")), short(tc.value))
				}
				if got := resp.Speech(); got != "Header sent." {
					t.Errorf("speech %q", got)
				}
			})
			t.Run("ssml", func(t *testing.T) {
				before := up.Hits()
				resp := mustServe(t, h, buildIntent(envAppID, "Speak", map[string]string{"V": tc.value}))
				if n := up.Hits() - before; n != 0 {
					t.Fatalf("speech-only intent called the upstream %d times", n)
				}
				sp := resp.Response.OutputSpeech
				if sp == nil {
					t.Fatal("no outputSpeech")
				}
				if utf8.RuneCountInString(tc.value) > alexa.MaxSpeech {
					// Too long for SSML: spoken as plain text, on a card
					// as far as 8,000 characters go.
					if sp.Type != "PlainText" || sp.Text != "You said" {
						t.Errorf("long SSML: %s %q", sp.Type, short(sp.Text))
					}
					if c := resp.Response.Card; c == nil || c.Content == "" || !strings.HasPrefix("You said "+tc.value+".", c.Content) || utf8.RuneCountInString(c.Title+c.Content) > 8000 {
						t.Errorf("long SSML: card does not hold the text within 8,000 characters")
					}
					return
				}
				if sp.Type != "SSML" {
					t.Fatalf("speech type %q, want SSML", sp.Type)
				}
				want := "<speak>You said " + xmlEscape(tc.value) + ".</speak>"
				if sp.SSML != want {
					t.Errorf("ssml %q, want %q", sp.SSML, want)
				}
				// Alexa rejects SSML that is not well-formed XML: the
				// value must stay text inside <speak>.
				if text, err := ssmlText(sp.SSML); err != nil {
					t.Errorf("ssml %q is not well-formed: %v", sp.SSML, err)
				} else if want := strings.ReplaceAll("You said "+xmlText(tc.value)+".", "\r\n", "\n"); text != want {
					t.Errorf("ssml text %q, want the value as text", text)
				}
			})
		})
	}
}

// mustServe runs one request through h and decodes the Alexa response.
func mustServe(tb testing.TB, h *alexa.Handler, body []byte) *alexa.Response {
	tb.Helper()
	status, out := h.Serve(context.Background(), "", nil, body)
	return MustDecodeResponse(tb, status, out)
}

func short(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

var xmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;")

// xmlEscape is the escaping SPEC 3.2 asks for, minus characters XML
// cannot carry at all.
func xmlEscape(s string) string { return xmlEscaper.Replace(xmlText(s)) }

// xmlText drops the characters XML 1.0 does not allow in a document.
func xmlText(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' || (r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || r >= 0x10000 {
			return r
		}
		return -1
	}, s)
}

// ssmlText parses SSML as XML and returns the character data of <speak>,
// failing on any element but <speak>.
func ssmlText(s string) (string, error) {
	dec := xml.NewDecoder(strings.NewReader(s))
	var b strings.Builder
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return b.String(), nil
		}
		if err != nil {
			return "", err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if tok.Name.Local != "speak" {
				return "", &xml.SyntaxError{Msg: "unexpected element <" + tok.Name.Local + ">"}
			}
		case xml.CharData:
			b.Write(tok)
		}
	}
}

// TestDotSegmentTraversal checks that a slot value cannot climb out of its
// path segment on an upstream that normalizes paths as RFC 3986 asks
// (section 6.2.2: %2E is an unreserved character, so %2E%2E is ".."; then
// dot segments are removed), as nginx and Apache do before routing.
func TestDotSegmentTraversal(t *testing.T) {
	const cfg = `
version: 1
alexa:
  verify: false
services:
  api:
    base_url: ${VOICEGW_TEST_UPSTREAM}/api
skills:
  s:
    application_id: amzn1.ask.skill.traversal
    errors: { default: Refused. }
    intents:
      Item:
        samples: ["item {Id}"]
        slots: { Id: { type: AMAZON.SearchQuery } }
        call: { service: api, path: "/users/{{ .slots.Id }}/profile", extract: { who: who } }
        say: "Profile of {{ .who }}."
      Pair:
        samples: ["pair {A} {B}"]
        slots: { A: { type: AMAZON.SearchQuery }, B: { type: AMAZON.SearchQuery } }
        call: { service: api, path: "/users/{{ .slots.A }}{{ .slots.B }}/profile", extract: { who: who } }
        say: "Profile of {{ .who }}."
`
	var escaped atomic.Int32
	MustUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		p := normalizePath(r.URL.EscapedPath())
		seg := strings.Split(p, "/")
		if len(seg) != 5 || seg[1] != "api" || seg[2] != "users" || seg[4] != "profile" {
			escaped.Add(1)
			jsonHandler(200, `{"who":"ADMIN"}`)(w, r)
			return
		}
		who, _ := url.PathUnescape(seg[3])
		jsonHandler(200, `{"who":`+jsonQuote(who)+`}`)(w, r)
	})
	h := MustPipeline(t, cfg, nil)
	tests := []struct {
		name   string
		intent string
		slots  map[string]string
		want   string
	}{
		{name: "plain id", intent: "Item", slots: map[string]string{"Id": "ada"}, want: "Profile of ada."},
		{name: "dot dot", intent: "Item", slots: map[string]string{"Id": ".."}, want: "Refused."},
		{name: "dot", intent: "Item", slots: map[string]string{"Id": "."}, want: "Refused."},
		{name: "two actions making dot dot", intent: "Pair", slots: map[string]string{"A": ".", "B": "."}, want: "Refused."},
		{name: "dot and dot dot", intent: "Pair", slots: map[string]string{"A": ".", "B": ".."}, want: "Profile of ...."},
		{name: "three dots are a name", intent: "Item", slots: map[string]string{"Id": "..."}, want: "Profile of ...."},
		{name: "encoded dots stay text", intent: "Item", slots: map[string]string{"Id": "%2e%2e"}, want: "Profile of %2e%2e."},
		{name: "slashes stay in the segment", intent: "Item", slots: map[string]string{"Id": "a/../../b"}, want: "Profile of a/../../b."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			escaped.Store(0)
			resp := mustServe(t, h, buildIntent("amzn1.ask.skill.traversal", tc.intent, tc.slots))
			if got := resp.Speech(); got != tc.want {
				t.Errorf("speech %q, want %q", got, tc.want)
			}
			if n := escaped.Load(); n != 0 {
				t.Errorf("the slot value reached another path (%d requests)", n)
			}
		})
	}
}

// normalizePath decodes percent-encoded unreserved characters and removes
// dot segments (RFC 3986 sections 6.2.2.2 and 5.2.4); other escapes, like
// %2F, stay.
func normalizePath(escaped string) string {
	var b strings.Builder
	for i := 0; i < len(escaped); i++ {
		if escaped[i] == '%' && i+2 < len(escaped) {
			if v, err := strconv.ParseUint(escaped[i+1:i+3], 16, 8); err == nil {
				c := byte(v)
				if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
					b.WriteByte(c)
					i += 2
					continue
				}
			}
		}
		b.WriteByte(escaped[i])
	}
	return path.Clean(b.String())
}
