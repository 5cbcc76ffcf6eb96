package engine_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/inmem"
)

const escapingConfig = `version: 1
alexa: { verify: false }
services:
  api: { base_url: UPSTREAM/base, timeout: 2s }
skills:
  s:
    intents:
      Echo:
        samples: ["echo {X}"]
        slots: { X: { type: AMAZON.SearchQuery } }
        call:
          service: api
          method: POST
          path: "/p/{{ .slots.X }}/s/{{ .session.s }}/end"
          query: { q: "{{ .slots.X }}", sq: "{{ .session.s }}" }
          headers: { X-V: "{{ .slots.X }}", X-S: "{{ .session.s }}" }
          body: { typed: "{{ .slots.X }}", text: "<{{ .slots.X }}>", sess: "{{ .session.s }}", n: 1 }
        say: "ok"
`

type seen struct {
	path, rawQuery, header, sessionHeader string
	body                                  []byte
}

// FuzzRequestEscaping sends any slot value, and the same value as a session
// attribute, through every escaping context of a call and checks what a
// real HTTP server receives: one path segment that decodes to the value, a
// query value, a header value and JSON string leaves equal to it; a value
// with control characters aborts the call.
func FuzzRequestEscaping(f *testing.F) {
	for _, s := range []string{"AMZN", "a/../b?x=1", "..", ".", "%2e%2e", "#frag", "x\r\nX-Evil: 1", `"quoted" \ back`, "\x00", "ünï©ødé", "\xff\xfe", strings.Repeat("z", 10_000), "{{ .user.id }}", "<audio src='x'/>", " padded "} {
		f.Add(s)
	}
	var mu sync.Mutex
	var got []seen
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, seen{r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("X-V"), r.Header.Get("X-S"), b})
		mu.Unlock()
		_, _ = w.Write([]byte("{}"))
	}))
	defer up.Close()
	e := MustEngine(f, escapingConfig, up.URL, inmem.New(nil))
	f.Fuzz(func(t *testing.T, s string) {
		mu.Lock()
		got = got[:0]
		mu.Unlock()
		reply := e.Turn(context.Background(), &gateway.Turn{Skill: "s", Kind: gateway.KindIntent, Intent: "Echo",
			UserID: "amzn1.ask.account.F", Slots: map[string]gateway.Slot{"X": {Value: s}},
			Session: map[string]any{"s": s}})
		mu.Lock()
		reqs := append([]seen(nil), got...)
		mu.Unlock()
		if s == "" {
			return // an empty slot is an empty segment: nothing to escape
		}
		refused := strings.IndexFunc(s, func(r rune) bool { return (r < 0x20 && r != '\t') || r == 0x7f }) >= 0
		if dec, _ := url.PathUnescape(url.PathEscape(s)); dec == "." || dec == ".." {
			refused = true
		}
		if refused {
			if len(reqs) != 0 || reply.Speech.Text == "ok" {
				t.Fatalf("value %q reached the upstream: %+v", s, reqs)
			}
			return
		}
		if len(reqs) != 1 {
			t.Fatalf("value %q: %d upstream requests (speech %q)", s, len(reqs), reply.Speech.Text)
		}
		r := reqs[0]
		segs := strings.Split(r.path, "/")
		if len(segs) != 7 || segs[1] != "base" || segs[2] != "p" || segs[4] != "s" || segs[6] != "end" {
			t.Fatalf("value %q changed the path's shape: %q", s, r.path)
		}
		for _, i := range []int{3, 5} {
			if seg, err := url.PathUnescape(segs[i]); err != nil || seg != s {
				t.Fatalf("path segment %q decodes to %q, want %q", segs[i], seg, s)
			}
		}
		q, err := url.ParseQuery(r.rawQuery)
		if err != nil || len(q) != 2 || q.Get("q") != s || q.Get("sq") != s {
			t.Fatalf("query %q, want only q and sq = %q", r.rawQuery, s)
		}
		if want := strings.Trim(s, " \t"); r.header != want || r.sessionHeader != want {
			t.Fatalf("headers %q and %q, want %q", r.header, r.sessionHeader, want)
		}
		var body map[string]any
		if err := json.Unmarshal(r.body, &body); err != nil {
			t.Fatalf("body is not JSON: %v: %q", err, r.body)
		}
		// JSON strings carry Unicode: invalid UTF-8 bytes arrive as U+FFFD,
		// as encoding/json writes them.
		want := s
		if !utf8.ValidString(s) {
			b, _ := json.Marshal(s)
			_ = json.Unmarshal(b, &want)
		}
		if body["typed"] != want || body["text"] != "<"+want+">" || body["sess"] != want || body["n"] != 1.0 || len(body) != 4 {
			t.Fatalf("body %s for value %q", r.body, s)
		}
	})
}
