package render_test

import (
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/voicegw/voicegw/gateway/render"
)

func FuzzEscapeSegment(f *testing.F) {
	for _, s := range []string{"", ".", "..", "...", "a/../b?x=1", "%2E%2E", "#", "%", "\r\n\x00", `"'`, "café", "\xff", "a b+c;d,e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := render.EscapeSegment(in)
		if strings.ContainsAny(out, "/?#") {
			t.Errorf("EscapeSegment(%q) = %q contains / ? or #", in, out)
		}
		if out == "." || out == ".." {
			t.Errorf("EscapeSegment(%q) = %q", in, out)
		}
		back, err := url.PathUnescape(out)
		if err != nil {
			t.Fatalf("PathUnescape(%q): %v", out, err)
		}
		if back != in {
			t.Errorf("PathUnescape(EscapeSegment(%q)) = %q", in, back)
		}
	})
}

// entity is what may follow a '&' in escaped output.
var entity = regexp.MustCompile(`^&(amp|lt|gt|quot|apos);`)

func FuzzSSMLEscape(f *testing.F) {
	for _, s := range []string{"", "&", "&amp;", "<speak>", "</speak>", `"'`, "a & b < c > d", "&#60;", "café"} {
		f.Add(s)
	}
	tmpl := render.MustCompile("say", "<speak>{{ .x }}{{ range .l }}{{ . }}{{ end }}</speak>", render.SSML)
	f.Fuzz(func(t *testing.T, in string) {
		for _, out := range []string{render.EscapeXML(in), mustRun(t, tmpl, in)} {
			if strings.ContainsAny(out, "<>") {
				t.Errorf("escaped %q = %q contains < or >", in, out)
			}
			for i := strings.IndexByte(out, '&'); i >= 0; {
				if !entity.MatchString(out[i:]) {
					t.Errorf("escaped %q = %q has a raw & at %d", in, out, i)
					break
				}
				j := strings.IndexByte(out[i+1:], '&')
				if j < 0 {
					break
				}
				i += 1 + j
			}
		}
	})
}

// mustRun renders the SSML template with in as .x and as a list item, and
// returns what is between <speak> and </speak>.
func mustRun(t *testing.T, tmpl *render.Template, in string) string {
	t.Helper()
	out, err := tmpl.Execute(map[string]any{"x": in, "l": []string{in}})
	if err != nil {
		t.Fatalf("Execute: %v", err)
	}
	return strings.TrimSuffix(strings.TrimPrefix(out, "<speak>"), "</speak>")
}
