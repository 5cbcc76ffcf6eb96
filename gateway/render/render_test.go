package render_test

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/voicegw/voicegw/gateway/render"
)

// MustCompile compiles src or fails the test.
func MustCompile(tb testing.TB, src string, ctx render.Context) *render.Template {
	tb.Helper()
	t, err := render.Compile("t", src, ctx)
	if err != nil {
		tb.Fatalf("Compile(%q): %v", src, err)
	}
	return t
}

// MustExecute compiles and runs src with data or fails the test.
func MustExecute(tb testing.TB, src string, ctx render.Context, data map[string]any) string {
	tb.Helper()
	out, err := MustCompile(tb, src, ctx).Execute(data)
	if err != nil {
		tb.Fatalf("Execute(%q): %v", src, err)
	}
	return out
}

func TestFuncs(t *testing.T) {
	fm := render.Funcs()
	for _, name := range []string{"env", "expandenv"} {
		if _, ok := fm[name]; ok {
			t.Errorf("Funcs() has %q", name)
		}
	}
	for _, name := range []string{"json", "spell", "sayList", "get", "upper", "default", "trim", "join", "dict", "list", "printf"} {
		if name == "printf" {
			continue // a text/template builtin, not in the map
		}
		if _, ok := fm[name]; !ok {
			t.Errorf("Funcs() lacks %q", name)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string // substring of the error
	}{
		{"env", `{{ env "HOME" }}`, `function "env" not defined`},
		{"expandenv", `{{ expandenv "$HOME" }}`, `function "expandenv" not defined`},
		{"env in pipeline", `{{ "HOME" | env }}`, `function "env" not defined`},
		{"env inside if", `{{ if true }}{{ env "PATH" }}{{ end }}`, `function "env" not defined`},
		{"unknown function", `{{ nosuchfunc 1 }}`, `function "nosuchfunc" not defined`},
		{"define", `{{ define "x" }}hi{{ end }}{{ .a }}`, "not supported"},
		{"define only", `{{ define "x" }}hi{{ end }}`, "not supported"},
		{"define with the template's own name", `{{ define "t" }}hi{{ end }}`, "not supported"},
		{"define with the own name and whitespace", "  {{- define \"t\" }}hi{{ end }}\n", "not supported"},
		{"template", `{{ template "x" }}`, "not supported"},
		{"template inside range", `{{ range .l }}{{ template "x" . }}{{ end }}`, "not supported"},
		{"template inside with else", `{{ with .l }}a{{ else }}{{ template "x" }}{{ end }}`, "not supported"},
		{"block", `{{ block "x" . }}hi{{ end }}`, "not supported"},
		{"unclosed action", `{{ .a `, "unclosed action"},
		{"unclosed if", `{{ if .a }}x`, "unexpected EOF"},
		{"stray end", `x{{ end }}`, "unexpected {{end}}"},
		{"bad field syntax", `{{ .a..b }}`, ""},
		{"undefined variable", `{{ $x }}`, "undefined variable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, ctx := range []render.Context{render.Text, render.PathSegment, render.SSML} {
				_, err := render.Compile("t", tc.src, ctx)
				if err == nil {
					t.Fatalf("Compile(%q, %d) succeeded", tc.src, ctx)
				}
				if !strings.Contains(err.Error(), tc.want) {
					t.Errorf("Compile(%q, %d) = %q, want it to contain %q", tc.src, ctx, err, tc.want)
				}
				if strings.HasPrefix(err.Error(), "template: t:") {
					t.Errorf("error %q keeps text/template's name prefix", err)
				}
			}
		})
	}
}

func TestMustCompilePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("MustCompile of a bad template did not panic")
		}
	}()
	render.MustCompile("t", "{{ env \"X\" }}", render.Text)
}

func TestExecuteText(t *testing.T) {
	data := map[string]any{
		"slots":   map[string]string{"Symbol": "AMZN", "City": "new york"},
		"session": map[string]any{"n": 3},
		"name":    "Amazon",
		"price":   123.45,
		"count":   int64(4729),
		"list":    []any{"a", "b", "c"},
		"empty":   []any{},
		"yes":     true,
		"html":    `<b>&"'</b>`,
	}
	tests := []struct {
		name string
		src  string
		want string
	}{
		{"literal", "Hello.", "Hello."},
		{"fields", "{{ .name }} is trading at {{ .price }} dollars.", "Amazon is trading at 123.45 dollars."},
		{"slot", "quote for {{ .slots.Symbol }}", "quote for AMZN"},
		{"absent slot is empty", "[{{ .slots.Nope }}]", "[]"},
		{"sprig upper", "{{ .slots.Symbol | lower }} {{ upper .slots.City }}", "amzn NEW YORK"},
		{"sprig default", `{{ .slots.Nope | default "none" }}`, "none"},
		{"sprig title", `{{ title .slots.City }}`, "New York"},
		{"printf", `{{ printf "%.1f" .price }}`, "123.5"},
		{"spell", "code {{ spell .count }}", "code 4 7 2 9"},
		{"spell string", `{{ spell "4729" }}`, "4 7 2 9"},
		{"sayList", "you have {{ sayList .list }}", "you have a, b and c"},
		{"sayList empty", "[{{ sayList .empty }}]", "[]"},
		{"json string", "{{ json .name }}", `"Amazon"`},
		{"json list", "{{ json .list }}", `["a","b","c"]`},
		{"json keeps html", "{{ json .html }}", `"<b>&\"'</b>"`},
		{"json map", `{{ json .session }}`, `{"n":3}`},
		{"text is not escaped", "{{ .html }}", `<b>&"'</b>`},
		{"if else", "{{ if .yes }}y{{ else }}n{{ end }}", "y"},
		{"range", "{{ range $i, $v := .list }}{{ if $i }},{{ end }}{{ $v }}{{ end }}", "a,b,c"},
		{"range over dot", "{{ range .list }}<{{ . }}>{{ end }}", "<a><b><c>"},
		{"with", "{{ with .slots }}{{ .Symbol }}{{ end }}", "AMZN"},
		{"variable", "{{ $s := .slots.Symbol }}{{ $s }}{{ $s }}", "AMZNAMZN"},
		{"root variable in range", "{{ range .list }}{{ $.name }}{{ end }}", "AmazonAmazonAmazon"},
		{"session", "{{ .session.n }}", "3"},
		{"trim markers", "a {{- .name -}} b", "aAmazonb"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tmpl := MustCompile(t, tc.src, render.Text)
			if tmpl.Source() != tc.src {
				t.Errorf("Source() = %q, want %q", tmpl.Source(), tc.src)
			}
			got, err := tmpl.Execute(data)
			if err != nil {
				t.Fatalf("Execute: %v", err)
			}
			if got != tc.want {
				t.Errorf("Execute(%q) = %q, want %q", tc.src, got, tc.want)
			}
		})
	}
}

func TestExecuteError(t *testing.T) {
	tests := []struct {
		name string
		src  string
		data map[string]any
	}{
		{"index out of range", `{{ index .list 5 }}`, map[string]any{"list": []string{"secret-value"}}},
		{"fail", `{{ fail "boom" }}`, nil},
		{"field of a string", `{{ .s.x }}`, map[string]any{"s": "secret-value"}},
		{"get without a path", `{{ get }}`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tmpl := MustCompile(t, tc.src, render.Text)
			_, err := tmpl.Execute(tc.data)
			if err == nil {
				t.Fatalf("Execute(%q) succeeded", tc.src)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q spans lines", err)
			}
			if strings.Contains(err.Error(), "secret-value") {
				t.Errorf("error %q contains a data value", err)
			}
			if _, err := tmpl.JSON(tc.data); err == nil {
				t.Errorf("JSON(%q) succeeded", tc.src)
			}
		})
	}
}

func TestSpell(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"digits", "4729", "4 7 2 9"},
		{"int", 4729, "4 7 2 9"},
		{"int64", int64(472913), "4 7 2 9 1 3"},
		{"letters", "AMZN", "A M Z N"},
		{"spaces are dropped", " 47 29\t\n", "4 7 2 9"},
		{"unicode", "日本", "日 本"},
		{"one", "7", "7"},
		{"empty", "", ""},
		{"nil", nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := render.Spell(tc.in); got != tc.want {
				t.Errorf("Spell(%#v) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestSayList(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"three", []string{"a", "b", "c"}, "a, b and c"},
		{"four", []any{"red", "green", "blue", "black"}, "red, green, blue and black"},
		{"two", []string{"a", "b"}, "a and b"},
		{"one", []string{"a"}, "a"},
		{"empty", []string{}, ""},
		{"nil slice", []any(nil), ""},
		{"nil", nil, ""},
		{"array", [3]int{1, 2, 3}, "1, 2 and 3"},
		{"numbers from gjson", []any{int64(1), 2.5}, "1 and 2.5"},
		{"empty items are skipped", []any{"a", "", "b", nil}, "a and b"},
		{"plain string", "solo", "solo"},
		{"empty string", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := render.SayList(tc.in); got != tc.want {
				t.Errorf("SayList(%#v) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestGet(t *testing.T) {
	body := []byte(`{"data":{"name":"Amazon","price":123.45,"volume":1000,"open":true,
		"tags":["a","b","c"],"none":null,"empty":[]},"items":[{"n":"x"},{"n":"y"}]}`)
	data := map[string]any{render.BodyKey: body, "list": []any{1, 2}, "name": "local"}
	tests := []struct {
		name string
		src  string
		data map[string]any
		want string
	}{
		{"string", `{{ get "data.name" }}`, data, "Amazon"},
		{"float", `{{ get "data.price" }}`, data, "123.45"},
		{"int", `{{ get "data.volume" }}`, data, "1000"},
		{"bool", `{{ if get "data.open" }}open{{ else }}closed{{ end }}`, data, "open"},
		{"list", `{{ sayList (get "data.tags") }}`, data, "a, b and c"},
		{"gjson query", `{{ get "items.#.n" | sayList }}`, data, "x and y"},
		{"count", `{{ get "data.tags.#" }}`, data, "3"},
		{"piped path", `{{ "data.name" | get }}`, data, "Amazon"},
		{"absent", `[{{ get "data.nope" }}]`, data, "[]"},
		{"null", `[{{ get "data.none" }}]`, data, "[]"},
		{"no body", `[{{ get "data.name" }}]`, map[string]any{}, "[]"},
		{"nil data", `[{{ get "data.name" }}]`, nil, "[]"},
		{"inside range reads the root body", `{{ range .list }}{{ get "data.name" }};{{ end }}`, data, "Amazon;Amazon;"},
		{"inside with", `{{ with .name }}{{ . }}={{ get "data.name" }}{{ end }}`, data, "local=Amazon"},
		{"in an if condition", `{{ if eq (get "data.name") "Amazon" }}yes{{ end }}`, data, "yes"},
		{"as a function argument", `{{ printf "%s!" (get "data.name") }}`, data, "Amazon!"},
		{"in a variable", `{{ $n := get "data.volume" }}{{ add $n 1 }}`, data, "1001"},
		{"json of a list", `{{ json (get "data.tags") }}`, data, `["a","b","c"]`},
		{"json of an empty list", `{{ json (get "data.empty") }}`, data, `[]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := MustExecute(t, tc.src, render.Text, tc.data); got != tc.want {
				t.Errorf("Execute(%q) = %q, want %q", tc.src, got, tc.want)
			}
		})
	}
}

// TestBodyKeyIsNotNameable checks that a template cannot read the raw
// response body through the data key get uses.
func TestBodyKeyIsNotNameable(t *testing.T) {
	for _, src := range []string{"{{ ." + render.BodyKey + " }}", "{{ index . \"\\x00body\" }}"} {
		tmpl, err := render.Compile("t", src, render.Text)
		if err != nil {
			continue // not even parseable: fine
		}
		for _, r := range tmpl.Refs() {
			if len(r) > 0 && r[0] == render.BodyKey {
				t.Errorf("Refs(%q) names the body key", src)
			}
		}
	}
}

func TestJSON(t *testing.T) {
	data := map[string]any{
		"n":            int64(42),
		"f":            1.5,
		"yes":          true,
		"s":            `he said "hi" <&>`,
		"list":         []any{"a", int64(1), false},
		"map":          map[string]any{"b": int64(2), "a": "x"},
		"slots":        map[string]string{"Count": "3"},
		"nl":           "a\nb",
		render.BodyKey: []byte(`{"n":7,"l":[1,2],"o":{"k":"v"},"big":1234567890123456789,"e":[]}`),
	}
	tests := []struct {
		name  string
		src   string
		typed bool
		want  string
	}{
		{"int", "{{ .n }}", true, `42`},
		{"float", "{{ .f }}", true, `1.5`},
		{"bool", "{{ .yes }}", true, `true`},
		{"string", "{{ .s }}", true, `"he said \"hi\" <&>"`},
		{"list", "{{ .list }}", true, `["a",1,false]`},
		{"map", "{{ .map }}", true, `{"a":"x","b":2}`},
		{"slot stays a string", "{{ .slots.Count }}", true, `"3"`},
		{"function result", "{{ add .n 1 }}", true, `43`},
		{"pipeline", "{{ .n | add 1 }}", true, `43`},
		{"sprig list", "{{ list 1 2 }}", true, `[1,2]`},
		{"trimmed action", "{{- .n -}}", true, `42`},
		{"get int", `{{ get "n" }}`, true, `7`},
		{"get list", `{{ get "l" }}`, true, `[1,2]`},
		{"get object", `{{ get "o" }}`, true, `{"k":"v"}`},
		{"get empty list", `{{ get "e" }}`, true, `[]`},
		{"get big int keeps its digits", `{{ get "big" }}`, true, `1234567890123456789`},
		{"text around the action", "id-{{ .n }}", false, `"id-42"`},
		{"space around the action", " {{ .n }}", false, `" 42"`},
		{"two actions", "{{ .n }}{{ .n }}", false, `"4242"`},
		{"literal", "plain", false, `"plain"`},
		{"if", "{{ if .yes }}{{ .n }}{{ end }}", false, `"42"`},
		{"declaration", "{{ $x := .n }}", false, `""`},
		{"quotes cannot break out", `x{{ .s }}`, false, `"xhe said \"hi\" <&>"`},
		{"newline", `x{{ .nl }}`, false, `"xa\nb"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tmpl := MustCompile(t, tc.src, render.Text)
			if tmpl.Typed() != tc.typed {
				t.Errorf("Typed() = %v, want %v", tmpl.Typed(), tc.typed)
			}
			got, err := tmpl.JSON(data)
			if err != nil {
				t.Fatalf("JSON: %v", err)
			}
			if string(got) != tc.want {
				t.Errorf("JSON(%q) = %s, want %s", tc.src, got, tc.want)
			}
			if !json.Valid(got) {
				t.Errorf("JSON(%q) = %s is not valid JSON", tc.src, got)
			}
		})
	}
}

// TestTypedOnlyInText checks that path and SSML templates never render
// typed JSON: their actions are always escaped text.
func TestTypedOnlyInText(t *testing.T) {
	for _, ctx := range []render.Context{render.PathSegment, render.SSML} {
		tmpl := MustCompile(t, "{{ .n }}", ctx)
		if tmpl.Typed() {
			t.Errorf("context %d: Typed() = true", ctx)
		}
		got, err := tmpl.JSON(map[string]any{"n": "a/b&"})
		if err != nil {
			t.Fatal(err)
		}
		var s string
		if err := json.Unmarshal(got, &s); err != nil {
			t.Errorf("context %d: JSON = %s, not a JSON string", ctx, got)
		}
	}
}

func TestRefs(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want [][]string
	}{
		{"none", "Hello.", nil},
		{"one", "{{ .name }}", [][]string{{"name"}}},
		{"nested", "{{ .slots.Symbol }}", [][]string{{"slots", "Symbol"}}},
		{"several", "{{ .a }} {{ .b.c }}", [][]string{{"a"}, {"b", "c"}}},
		{"function arguments", `{{ printf "%s %s" .a .slots.B }}`, [][]string{{"a"}, {"slots", "B"}}},
		{"pipeline", `{{ .a | default .b }}`, [][]string{{"a"}, {"b"}}},
		{"parenthesised", `{{ upper (printf "%s" .slots.X) }}`, [][]string{{"slots", "X"}}},
		{"if condition and branches", "{{ if .a }}{{ .b }}{{ else }}{{ .c }}{{ end }}", [][]string{{"a"}, {"b"}, {"c"}}},
		{"else if", "{{ if .a }}x{{ else if .b }}{{ .c }}{{ end }}", [][]string{{"a"}, {"b"}, {"c"}}},
		{"range pipe counts, its dot does not", "{{ range .items }}{{ .name }}{{ end }}", [][]string{{"items"}}},
		{"range else sees the root", "{{ range .items }}{{ .x }}{{ else }}{{ .none }}{{ end }}", [][]string{{"items"}, {"none"}}},
		{"with", "{{ with .slots }}{{ .X }}{{ end }}", [][]string{{"slots"}}},
		{"with else sees the root", "{{ with .a }}{{ .x }}{{ else }}{{ .b }}{{ end }}", [][]string{{"a"}, {"b"}}},
		{"dollar rooted in range", "{{ range .items }}{{ $.slots.S }}{{ end }}", [][]string{{"items"}, {"slots", "S"}}},
		{"dollar rooted in with", "{{ with .a }}{{ $.nmae }}{{ end }}", [][]string{{"a"}, {"nmae"}}},
		{"dollar at top", "{{ $.user.id }}", [][]string{{"user", "id"}}},
		{"if inside range", "{{ range .l }}{{ if .x }}{{ $.y }}{{ end }}{{ end }}", [][]string{{"l"}, {"y"}}},
		{"declaration", "{{ $s := .slots.S }}{{ $s }}", [][]string{{"slots", "S"}}},
		{"range declaration", "{{ range $i, $v := .items }}{{ $v.x }}{{ end }}", [][]string{{"items"}}},
		{"variable field is not a ref", "{{ $x := .a }}{{ $x.b }}", [][]string{{"a"}}},
		{"bare dollar is not a ref", "{{ json $ }}", nil},
		{"get adds no ref", `{{ get "data.x" }}`, nil},
		{"field in a path", "/v1/{{ .slots.A }}/{{ .slots.B }}", [][]string{{"slots", "A"}, {"slots", "B"}}},
		{"typo", "{{ .nmae }}", [][]string{{"nmae"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, ctx := range []render.Context{render.Text, render.PathSegment, render.SSML} {
				got := MustCompile(t, tc.src, ctx).Refs()
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("context %d: Refs(%q) = %q, want %q", ctx, tc.src, got, tc.want)
				}
			}
		})
	}
}

func TestValue(t *testing.T) {
	const doc = `{"i":42,"neg":-7,"zero":0,"f":1.5,"whole":2.0,"exp":1e3,"big":1234567890123456789,
		"huge":1e300,"max":9007199254740993,"s":"x","t":true,"fa":false,"n":null,
		"a":[1,"b",[true],{"k":null}],"e":[],"o":{"k":"v","n":{"d":1}},"eo":{}}`
	tests := []struct {
		path string
		want any
	}{
		{"i", int64(42)},
		{"neg", int64(-7)},
		{"zero", int64(0)},
		{"f", 1.5},
		{"whole", int64(2)},
		{"exp", int64(1000)},
		{"big", int64(1234567890123456789)},
		{"max", int64(9007199254740993)},
		{"huge", 1e300},
		{"s", "x"},
		{"t", true},
		{"fa", false},
		{"n", ""},
		{"missing", ""},
		{"a", []any{int64(1), "b", []any{true}, map[string]any{"k": ""}}},
		{"e", []any{}},
		{"o", map[string]any{"k": "v", "n": map[string]any{"d": int64(1)}}},
		{"eo", map[string]any{}},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			got := render.Value(gjson.Get(doc, tc.path))
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Value(%s) = %#v, want %#v", tc.path, got, tc.want)
			}
		})
	}
}

func TestEscapeSegment(t *testing.T) {
	long := strings.Repeat("a/b", 3500) // 10.5 KB
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"traversal and query", "a/../b?x=1", "a%2F..%2Fb%3Fx=1"},
		{"dot dot", "..", "%2E%2E"},
		{"dot", ".", "%2E"},
		{"three dots", "...", "..."},
		{"slash", "/", "%2F"},
		{"dot dot slash", "../", "..%2F"},
		{"question mark", "?", "%3F"},
		{"hash", "#", "%23"},
		{"fragment", "a#b", "a%23b"},
		{"percent", "%", "%25"},
		{"encoded slash stays text", "%2F", "%252F"},
		{"encoded dot dot", "%2E%2E", "%252E%252E"},
		{"CR LF", "a\r\nHost: evil", "a%0D%0AHost:%20evil"},
		{"NUL", "a\x00b", "a%00b"},
		{"double quote", `"`, "%22"},
		{"single quote", "'", "%27"},
		{"backslash", `..\..`, "..%5C.."},
		{"space", "new york", "new%20york"},
		{"plus", "a+b", "a+b"},
		{"semicolon and comma", "a;b,c", "a%3Bb%2Cc"},
		{"unicode", "café 日本", "caf%C3%A9%20%E6%97%A5%E6%9C%AC"},
		{"at and colon", "user@host:80", "user@host:80"},
		{"scheme", "http://evil.example", "http:%2F%2Fevil.example"},
		{"invalid UTF-8", "\xff", "%FF"},
		{"empty", "", ""},
		{"nil", nil, ""},
		{"int", 42, "42"},
		{"float", 1.5, "1.5"},
		{"10 KB", long, strings.Repeat("a%2Fb", 3500)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := render.EscapeSegment(tc.in); got != tc.want {
				t.Errorf("EscapeSegment(%.40q) = %.60q, want %.60q", tc.in, got, tc.want)
			}
		})
	}
}

// TestPathSegmentContext renders hostile slot values through a path
// template, as the upstream client does.
func TestPathSegmentContext(t *testing.T) {
	long := strings.Repeat("x?", 5000)
	tests := []struct {
		name string
		src  string
		val  any
		want string
	}{
		{"traversal", "/v1/quote/{{ .slots.S }}", "a/../b?x=1", "/v1/quote/a%2F..%2Fb%3Fx=1"},
		{"dot dot", "/v1/quote/{{ .slots.S }}", "..", "/v1/quote/%2E%2E"},
		{"dot dot with suffix", "/v1/{{ .slots.S }}/info", "..", "/v1/%2E%2E/info"},
		{"question mark", "/q/{{ .slots.S }}", "?admin=1", "/q/%3Fadmin=1"},
		{"hash", "/q/{{ .slots.S }}", "#top", "/q/%23top"},
		{"percent", "/q/{{ .slots.S }}", "100%", "/q/100%25"},
		{"CR LF", "/q/{{ .slots.S }}", "a\r\n\r\nGET /", "/q/a%0D%0A%0D%0AGET%20%2F"},
		{"NUL", "/q/{{ .slots.S }}", "\x00", "/q/%00"},
		{"quotes", "/q/{{ .slots.S }}", `"'`, "/q/%22%27"},
		{"unicode", "/q/{{ .slots.S }}", "zürich", "/q/z%C3%BCrich"},
		{"10 KB", "/q/{{ .slots.S }}", long, "/q/" + strings.Repeat("x%3F", 5000)},
		{"pipeline output is escaped", "/q/{{ .slots.S | lower }}", "A/B", "/q/a%2Fb"},
		{"printf output is escaped", `/q/{{ printf "%s/%s" .slots.S .slots.S }}`, "a", "/q/a%2Fa"},
		{"inside if", "/q{{ if .slots.S }}/{{ .slots.S }}{{ end }}", "a/b", "/q/a%2Fb"},
		{"inside range", "/q{{ range .list }}/{{ . }}{{ end }}", nil, "/q/..%2F/%3F"},
		{"inside with", "/q/{{ with .slots.S }}{{ . }}{{ end }}", "..", "/q/%2E%2E"},
		{"literal text is kept", "/a/b.json", "", "/a/b.json"},
		{"empty value", "/q/{{ .slots.S }}", "", "/q/"},
		{"number", "/q/{{ .n }}", nil, "/q/42"},
		{"get result is escaped", `/q/{{ get "id" }}`, nil, "/q/..%2Fadmin"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := tc.val.(string)
			data := map[string]any{
				"slots":        map[string]string{"S": s},
				"list":         []any{"../", "?"},
				"n":            42,
				render.BodyKey: []byte(`{"id":"../admin"}`),
			}
			if got := MustExecute(t, tc.src, render.PathSegment, data); got != tc.want {
				t.Errorf("Execute(%q) = %.80q, want %.80q", tc.src, got, tc.want)
			}
		})
	}
}

func TestEscapeXML(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"all five", `&<>"'`, "&amp;&lt;&gt;&quot;&apos;"},
		{"entity is escaped again", "&amp;", "&amp;amp;"},
		{"tag", "<break time='1s'/>", "&lt;break time=&apos;1s&apos;/&gt;"},
		{"plain", "AT&T", "AT&amp;T"},
		{"unicode", "café", "café"},
		{"nil", nil, ""},
		{"number", 3, "3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := render.EscapeXML(tc.in); got != tc.want {
				t.Errorf("EscapeXML(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestSSMLContext(t *testing.T) {
	const evil = `</speak><audio src="http://evil"/>&'`
	const escaped = `&lt;/speak&gt;&lt;audio src=&quot;http://evil&quot;/&gt;&amp;&apos;`
	data := map[string]any{
		"x":            evil,
		"yes":          true,
		"list":         []any{"a&b", "<c>"},
		"slots":        map[string]string{"S": "R&D"},
		"n":            3,
		render.BodyKey: []byte(`{"name":"<b>bold</b>"}`),
	}
	tests := []struct {
		name string
		src  string
		want string
	}{
		{"field", "<speak>{{ .x }}</speak>", "<speak>" + escaped + "</speak>"},
		{"literal markup is kept", `<speak><break time="1s"/>{{ .slots.S }}</speak>`, `<speak><break time="1s"/>R&amp;D</speak>`},
		{"pipeline", "<speak>{{ .x | upper }}</speak>", "<speak>&lt;/SPEAK&gt;&lt;AUDIO SRC=&quot;HTTP://EVIL&quot;/&gt;&amp;&apos;</speak>"},
		{"printf", `<speak>{{ printf "<%s>" .slots.S }}</speak>`, "<speak>&lt;R&amp;D&gt;</speak>"},
		{"if", "<speak>{{ if .yes }}{{ .x }}{{ end }}</speak>", "<speak>" + escaped + "</speak>"},
		{"else", "<speak>{{ if not .yes }}no{{ else }}{{ .x }}{{ end }}</speak>", "<speak>" + escaped + "</speak>"},
		{"range", "<speak>{{ range .list }}<p>{{ . }}</p>{{ end }}</speak>", "<speak><p>a&amp;b</p><p>&lt;c&gt;</p></speak>"},
		{"range else", "<speak>{{ range .none }}x{{ else }}{{ .x }}{{ end }}</speak>", "<speak>" + escaped + "</speak>"},
		{"with", "<speak>{{ with .slots }}{{ .S }}{{ end }}</speak>", "<speak>R&amp;D</speak>"},
		{"nested", "<speak>{{ range .list }}{{ if $.yes }}{{ with . }}{{ . }}{{ end }}{{ end }}{{ end }}</speak>", "<speak>a&amp;b&lt;c&gt;</speak>"},
		{"sayList", "<speak>{{ sayList .list }}</speak>", "<speak>a&amp;b and &lt;c&gt;</speak>"},
		{"json", "<speak>{{ json .slots.S }}</speak>", "<speak>&quot;R&amp;D&quot;</speak>"},
		{"get", `<speak>{{ get "name" }}</speak>`, "<speak>&lt;b&gt;bold&lt;/b&gt;</speak>"},
		{"number", "<speak>{{ .n }}</speak>", "<speak>3</speak>"},
		{"declaration prints nothing", "<speak>{{ $v := .x }}[{{ len $v }}]</speak>", "<speak>[" + strconv.Itoa(len(evil)) + "]</speak>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := MustExecute(t, tc.src, render.SSML, data); got != tc.want {
				t.Errorf("Execute(%q) =\n%q, want\n%q", tc.src, got, tc.want)
			}
		})
	}
}
