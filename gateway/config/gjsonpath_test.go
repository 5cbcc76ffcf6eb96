package config

import (
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// gjsonFacts are paths copied from gjson v1.20's README.md and SYNTAX.md:
// gjson documents them as valid, so the validator must accept each.
var gjsonFacts = []string{
	// README, Path Syntax
	"name.last", "age", "children", "children.#", "children.1", "child*.2",
	"c?ildren.0", `fav\.movie`, "friends.#.first", "friends.1.last",
	`friends.#(last=="Murphy").first`, `friends.#(last=="Murphy")#.first`,
	`friends.#(age>45)#.last`, `friends.#(first%"D*").last`,
	`friends.#(first!%"D*").last`, `friends.#(nets.#(=="fb"))#.first`,
	// README, Modifiers and path chaining
	"children|@reverse", "children|@reverse|0", `@pretty:{"sortKeys":true}`,
	// README, JSON Lines
	"..#", "..1", "..3", "..#.name", `..#(name="May").age`,
	// SYNTAX.md, Basic, Arrays and Queries
	"name.first", "children.0", "friends.1", "friends.1.first", "friends.#",
	"friends.#.age", `children.#(!%"*a*")`, `children.#(%"*a*")#`,
	"vals.#(b==~true)#.a", "vals.#(b==~false)#.a", "vals.#(b==~null)#.a",
	"vals.#(b==~*)#.a", "vals.#(b!=~*)#.a",
	// SYNTAX.md, Dot vs Pipe
	"friends.0.first", "friends|0.first", "friends.0|first", "friends|0|first",
	"friends|#", `friends.#(last="Murphy")#`, `friends.#(last="Murphy")#.first`,
	`friends.#(last="Murphy")#|first`, `friends.#(last="Murphy")#.0`,
	`friends.#(last="Murphy")#|0`, `friends.#(last="Murphy")#.#`,
	`friends.#(last="Murphy")#|#`,
	// SYNTAX.md, Modifiers
	"children.@reverse", "children.@reverse.0", "@this", "@valid", "@ugly",
	"@flatten", "@join", "@keys", "@values", "@tostr", "@fromstr", "@group",
	"@dig:name",
	// SYNTAX.md, Multipaths and Literals
	`{name.first,age,"the_murphys":friends.#(last="Murphy")#.first}`,
	`{name.first,age,"company":!"Happysoft","employed":!true}`,
	"[name.first,age]",
	// the paths of config.example.yaml and the README
	"#", "#.subject.title", "0.subject.title", "0.repository.full_name",
	"results.0.name", "current.temperature_2m", "data.price",
}

// customFacts use the README's custom modifier "case", accepted once it is
// registered with gjson.AddModifier.
var customFacts = []string{
	"children|@case:upper", "children|@case:lower|@reverse",
	"children.@case:upper", "children.@case:lower.@reverse",
}

func TestGJSONPathFacts(t *testing.T) {
	for _, p := range gjsonFacts {
		if msg := checkGJSONPath(p); msg != "" {
			t.Errorf("%s: rejected: %s", p, msg)
		}
	}
	for _, p := range customFacts {
		if checkGJSONPath(p) == "" {
			t.Errorf("%s: accepted before @case is registered", p)
		}
	}
	gjson.AddModifier("case", func(json, arg string) string { return json })
	for _, p := range customFacts {
		if msg := checkGJSONPath(p); msg != "" {
			t.Errorf("%s: rejected: %s", p, msg)
		}
	}
}

func TestGJSONPathErrors(t *testing.T) {
	for _, tc := range []struct {
		path string
		want []string // substrings of the message
	}{
		{"$.results[0].id", []string{`"$" is JSONPath`, "write results.0.id"}},
		{"$", []string{`"$" is JSONPath`}},
		{"results[0].id", []string{`"[0]" is JSONPath`, "write results.0.id"}},
		{"departures[*].minutes", []string{`"[*]" is JSONPath`, "write departures.#.minutes"}},
		{"results..id", []string{"recursive descent", "write results.#.id"}},
		{"$..id", []string{"write @dig:id"}},
		{"$['store'].name", []string{"JSONPath", "write store.name"}},
		{"a[?(@.id=='x')].name", []string{"JSONPath filter", `write a.#(id=="x")#.name`}},
		{`results.#(id=="r1"`, []string{"unbalanced ( in #(id==\"r1\"", "add the closing )"}},
		{`results.#(id=="r1)`, []string{"unbalanced quote", `add the closing "`}},
		{`results.#(id==r1)`, []string{`must be quoted as "r1"`}},
		{`results.#(id=='r1').x`, []string{"double quotes", `write results.#(id=="r1").x`}},
		{`results.#(id=~"r1")`, []string{"unknown query operator"}},
		{`results.#()`, []string{"empty query"}},
		{`results.#(id==)`, []string{"no value after =="}},
		{"a|@nosuchmodifier", []string{"unknown gjson modifier @nosuchmodifier", "@reverse"}},
		{"a.@revers", []string{"did you mean @reverse?"}},
		{"a.", []string{"ends with ."}},
		{".a", []string{"no leading dot", "write a"}},
		{"a..", []string{"recursive descent"}},
		{"a||b", []string{"empty path component"}},
		{`a\`, []string{`lone \`}},
		{"a(b)", []string{"unexpected ("}},
		{"[a,]", []string{"empty path in the multipath"}},
		{"{a,b", []string{"unbalanced {"}},
		{"!nope", []string{"invalid JSON literal"}},
		{"@", []string{"needs a modifier name"}},
		{"", []string{"empty gjson path"}},
		{"  ", []string{"empty gjson path"}},
	} {
		t.Run(tc.path, func(t *testing.T) {
			msg := checkGJSONPath(tc.path)
			if msg == "" {
				t.Fatalf("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q lacks %q", msg, w)
				}
			}
		})
	}
}

// FuzzGJSONPath checks that a path the validator accepts never makes gjson
// panic, on objects, arrays and JSON Lines.
func FuzzGJSONPath(f *testing.F) {
	for _, p := range gjsonFacts {
		f.Add(p)
	}
	for _, p := range []string{`a.#(b=="c"`, "a[0]", "$..x", `{"a":b.#(c>1)#,d}`, `@dig:x|0`, `!-1.5e3`, `#[a==1]`} {
		f.Add(p)
	}
	docs := []string{
		`{"name":{"first":"Tom","last":"Anderson"},"age":37,"children":["Sara","Alex","Jack"],"fav.movie":"Deer Hunter","friends":[{"first":"Dale","last":"Murphy","age":44,"nets":["ig","fb","tw"]},{"first":"Roger","last":"Craig","age":68,"nets":["fb","tw"]}]}`,
		`[1,"a",{"b":[{"c":null}]},[[]]]`,
		"{\"name\": \"Gilbert\", \"age\": 61}\n{\"name\": \"May\", \"age\": 57}\n",
		``,
	}
	f.Fuzz(func(t *testing.T, path string) {
		if checkGJSONPath(path) != "" {
			return
		}
		for _, d := range docs {
			_ = gjson.Get(d, path)
			_ = gjson.GetBytes([]byte(d), path)
		}
	})
}

// TestGJSONPathEscapedAt: the escape the unknown-modifier message offers
// for keys that start with @ (JSON-LD's @type, @id) is valid and reads
// the key.
func TestGJSONPathEscapedAt(t *testing.T) {
	doc := `{"@type":"Place","items":[{"@id":"a"},{"@id":"b"}]}`
	for path, want := range map[string]string{`\@type`: "Place", `items.#.\@id`: `["a","b"]`} {
		if msg := checkGJSONPath(path); msg != "" {
			t.Errorf("%s: rejected: %s", path, msg)
		}
		if got := gjson.Get(doc, path).String(); got != want {
			t.Errorf("gjson.Get(%s) = %q, want %q", path, got, want)
		}
	}
	if checkGJSONPath("@type") == "" {
		t.Error("@type (no such modifier) accepted")
	}
}
