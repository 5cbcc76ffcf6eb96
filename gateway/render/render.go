// Package render compiles and executes the operator's templates: Go
// text/template with Sprig (minus env and expandenv) and voicegw's own
// functions, with the escaping of SPEC 3.2 applied automatically to every
// action according to where its output goes.
package render

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"text/template/parse"

	"github.com/Masterminds/sprig/v3"
	"github.com/tidwall/gjson"
)

// Context says where a template's output goes and so how each action's
// output is escaped.
type Context int

// Escaping contexts.
const (
	// Text output is used as is (speech, cards, query values, headers,
	// JSON string leaves that are encoded afterwards).
	Text Context = iota
	// PathSegment escapes each action's output as one URL path segment.
	PathSegment
	// SSML XML-escapes each action's output.
	SSML
)

// BodyKey is the data key under which the engine stores the last response
// body ([]byte) for the get function. It cannot be named in a template.
const BodyKey = "\x00body"

const (
	escPath = "_voicegw_path"
	escXML  = "_voicegw_xml"
)

var (
	funcsOnce sync.Once
	funcs     template.FuncMap
)

// Funcs returns the template function set: Sprig without env and
// expandenv, plus json, spell, sayList, get and the internal escapers.
func Funcs() template.FuncMap {
	funcsOnce.Do(func() {
		funcs = sprig.TxtFuncMap()
		delete(funcs, "env")
		delete(funcs, "expandenv")
		funcs["json"] = jsonString
		funcs["spell"] = Spell
		funcs["sayList"] = SayList
		funcs["get"] = get
		funcs[escPath] = EscapeSegment
		funcs[escXML] = EscapeXML
	})
	return funcs
}

// Template is a compiled operator template.
type Template struct {
	src  string
	tmpl *template.Template
	// typed is set for a template that is exactly one action: it renders
	// the action's value as JSON, keeping its type (for JSON bodies).
	typed *template.Template
	refs  [][]string
	gets  []string
}

// Set compiles templates that share one function table. text/template
// copies and reflect-checks its functions into every template made with
// Funcs; a set pays that once, for all the templates of a configuration,
// and each template is parsed once.
type Set struct {
	mu   sync.Mutex
	root *template.Template
	n    int
}

// NewSet returns an empty set.
func NewSet() *Set {
	return &Set{root: template.New("\x00root").Funcs(Funcs()).Option("missingkey=zero")}
}

// Compile parses src as a template for the given output context, with a
// set of its own. Field references can be listed with Refs for static
// checks. Use a Set to compile many templates.
func Compile(name, src string, ctx Context) (*Template, error) {
	return NewSet().Compile(name, src, ctx)
}

// Compile parses src as a template of the set for the given output
// context.
func (s *Set) Compile(name, src string, ctx Context) (*Template, error) {
	tree, err := parseChecked(name, src)
	if err != nil {
		return nil, err
	}
	out := &Template{src: src}
	out.refs = collectRefs(tree.Root, true, nil)
	out.gets = collectGets(tree.Root)
	var typed *parse.Tree
	switch {
	case ctx == PathSegment:
		rewrite(tree.Root, escPath)
	case ctx == SSML:
		rewrite(tree.Root, escXML)
	case singleAction(tree.Root):
		typed = tree.Copy()
		rewrite(typed.Root, "json")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Names in the set must be unique; the template's own name is only
	// for messages.
	s.n++
	if out.tmpl, err = s.root.AddParseTree(fmt.Sprintf("%s\x00%d", name, s.n), tree); err != nil {
		return nil, err
	}
	if typed != nil {
		if out.typed, err = s.root.AddParseTree(fmt.Sprintf("%s\x00%d json", name, s.n), typed); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// MustCompile is Compile for templates known to be valid; it panics otherwise.
func MustCompile(name, src string, ctx Context) *Template {
	t, err := Compile(name, src, ctx)
	if err != nil {
		panic(err)
	}
	return t
}

var (
	namesOnce sync.Once
	names     map[string]any
)

// funcNames is what the parser needs to know of the functions: their
// names (Funcs and text/template's builtins), with no copy per template.
func funcNames() map[string]any {
	namesOnce.Do(func() {
		names = map[string]any{}
		for k, v := range Funcs() {
			names[k] = v
		}
		for _, b := range []string{"and", "call", "html", "index", "slice", "js", "len", "not", "or",
			"print", "printf", "println", "urlquery", "eq", "ge", "gt", "le", "lt", "ne"} {
			names[b] = true
		}
	})
	return names
}

// parseChecked parses src into one tree, refusing define, block and
// template actions, which would let output escape its context.
func parseChecked(name, src string) (*parse.Tree, error) {
	trees, err := parse.Parse(name, src, "", "", funcNames())
	if err != nil {
		return nil, cleanParseError(err)
	}
	t := trees[name]
	if len(trees) > 1 || t == nil {
		return nil, errors.New("define, block and template actions are not supported")
	}
	if t.Root == nil {
		return nil, errors.New("empty template")
	}
	if hasTemplateNode(t.Root) {
		return nil, errors.New("define, block and template actions are not supported")
	}
	// A lone define named like the template replaces its (empty) body
	// without adding a second tree; under another name it cannot.
	if strings.Contains(src, "define") {
		if other, err := parse.Parse(name+"\x00", src, "", "", funcNames()); err != nil || len(other) > 1 {
			return nil, errors.New("define, block and template actions are not supported")
		}
	}
	bindGet(t.Root)
	return t, nil
}

// cleanParseError drops text/template's "template: NAME:" prefix, since
// config errors carry their own position and key path.
func cleanParseError(err error) error {
	msg := err.Error()
	if strings.HasPrefix(msg, "template: ") {
		if i := strings.Index(msg[len("template: "):], ": "); i >= 0 {
			msg = msg[len("template: ")+i+2:]
		}
	}
	return errors.New(msg)
}

// Source returns the template text as written.
func (t *Template) Source() string { return t.src }

// Refs lists the data fields the template references from the root data,
// e.g. ["slots" "Symbol"] for {{ .slots.Symbol }}.
func (t *Template) Refs() [][]string { return t.refs }

// GetPaths lists the gjson paths the template passes to get as literal
// strings, e.g. "data.items.#" for {{ get "data.items.#" }}, for static
// checks.
func (t *Template) GetPaths() []string { return t.gets }

// collectGets lists the literal path arguments of get calls (bound by
// bindGet as get $ PATH).
func collectGets(n parse.Node) []string {
	var out []string
	walkPipes(n, func(p *parse.PipeNode) {
		for _, cmd := range p.Cmds {
			if len(cmd.Args) < 3 {
				continue
			}
			if id, ok := cmd.Args[0].(*parse.IdentifierNode); ok && id.Ident == "get" {
				if s, ok := cmd.Args[2].(*parse.StringNode); ok {
					out = append(out, s.Text)
				}
			}
		}
	})
	return out
}

// Typed reports whether the template is exactly one action, whose value
// keeps its type in a JSON body.
func (t *Template) Typed() bool { return t.typed != nil }

// Execute renders the template with data.
func (t *Template) Execute(data map[string]any) (string, error) {
	var b strings.Builder
	if err := t.tmpl.Execute(&b, data); err != nil {
		return "", scrub(err)
	}
	return b.String(), nil
}

// JSON renders a typed template's value as JSON text; for other templates
// it renders the text and encodes it as a JSON string.
func (t *Template) JSON(data map[string]any) (json.RawMessage, error) {
	if t.typed == nil {
		s, err := t.Execute(data)
		if err != nil {
			return nil, err
		}
		return marshal(s)
	}
	var b bytes.Buffer
	if err := t.typed.Execute(&b, data); err != nil {
		return nil, scrub(err)
	}
	return json.RawMessage(b.Bytes()), nil
}

// scrub removes the data values text/template puts into execution errors
// ("error calling X: ..." is kept, the template name and position too), so
// no slot value or secret reaches a log line through an error.
func scrub(err error) error {
	var ee template.ExecError
	if errors.As(err, &ee) {
		return fmt.Errorf("template %s: execution failed: %s", ee.Name, firstLine(ee.Err.Error(), 200))
	}
	return fmt.Errorf("template: %s", firstLine(err.Error(), 200))
}

func firstLine(s string, max int) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}

func singleAction(root *parse.ListNode) bool {
	if len(root.Nodes) != 1 {
		return false
	}
	a, ok := root.Nodes[0].(*parse.ActionNode)
	return ok && len(a.Pipe.Decl) == 0
}

// rewrite appends fn to the pipeline of every output action, the way
// html/template inserts its escapers.
func rewrite(n parse.Node, fn string) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			rewrite(c, fn)
		}
	case *parse.ActionNode:
		if len(n.Pipe.Decl) > 0 {
			return
		}
		n.Pipe.Cmds = append(n.Pipe.Cmds, &parse.CommandNode{
			NodeType: parse.NodeCommand,
			Args:     []parse.Node{parse.NewIdentifier(fn)},
		})
	case *parse.IfNode:
		rewrite(n.List, fn)
		rewrite(n.ElseList, fn)
	case *parse.RangeNode:
		rewrite(n.List, fn)
		rewrite(n.ElseList, fn)
	case *parse.WithNode:
		rewrite(n.List, fn)
		rewrite(n.ElseList, fn)
	}
}

// bindGet turns every call of get PATH into get $ PATH so that the function
// reads the last response body from the root data.
func bindGet(n parse.Node) {
	walkPipes(n, func(p *parse.PipeNode) {
		for _, cmd := range p.Cmds {
			if len(cmd.Args) == 0 {
				continue
			}
			if id, ok := cmd.Args[0].(*parse.IdentifierNode); ok && id.Ident == "get" {
				root := &parse.VariableNode{NodeType: parse.NodeVariable, Ident: []string{"$"}}
				cmd.Args = append([]parse.Node{id, root}, cmd.Args[1:]...)
			}
		}
	})
}

func walkPipes(n parse.Node, f func(*parse.PipeNode)) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			walkPipes(c, f)
		}
	case *parse.ActionNode:
		walkPipe(n.Pipe, f)
	case *parse.IfNode:
		walkBranch(&n.BranchNode, f)
	case *parse.RangeNode:
		walkBranch(&n.BranchNode, f)
	case *parse.WithNode:
		walkBranch(&n.BranchNode, f)
	}
}

func walkBranch(b *parse.BranchNode, f func(*parse.PipeNode)) {
	walkPipe(b.Pipe, f)
	walkPipes(b.List, f)
	walkPipes(b.ElseList, f)
}

func walkPipe(p *parse.PipeNode, f func(*parse.PipeNode)) {
	if p == nil {
		return
	}
	f(p)
	for _, cmd := range p.Cmds {
		for _, a := range cmd.Args {
			if sub, ok := a.(*parse.PipeNode); ok {
				walkPipe(sub, f)
			}
		}
	}
}

func hasTemplateNode(n parse.Node) bool {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return false
		}
		for _, c := range n.Nodes {
			if hasTemplateNode(c) {
				return true
			}
		}
	case *parse.TemplateNode:
		return true
	case *parse.IfNode:
		return hasTemplateNode(n.List) || hasTemplateNode(n.ElseList)
	case *parse.RangeNode:
		return hasTemplateNode(n.List) || hasTemplateNode(n.ElseList)
	case *parse.WithNode:
		return hasTemplateNode(n.List) || hasTemplateNode(n.ElseList)
	}
	return false
}

// collectRefs lists field chains read from the root data. Inside range and
// with the dot is something else, so only $-rooted fields count there.
func collectRefs(n parse.Node, rootDot bool, acc [][]string) [][]string {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return acc
		}
		for _, c := range n.Nodes {
			acc = collectRefs(c, rootDot, acc)
		}
	case *parse.ActionNode:
		acc = pipeRefs(n.Pipe, rootDot, acc)
	case *parse.IfNode:
		acc = pipeRefs(n.Pipe, rootDot, acc)
		acc = collectRefs(n.List, rootDot, acc)
		acc = collectRefs(n.ElseList, rootDot, acc)
	case *parse.RangeNode:
		acc = pipeRefs(n.Pipe, rootDot, acc)
		acc = collectRefs(n.List, false, acc)
		acc = collectRefs(n.ElseList, rootDot, acc)
	case *parse.WithNode:
		acc = pipeRefs(n.Pipe, rootDot, acc)
		acc = collectRefs(n.List, false, acc)
		acc = collectRefs(n.ElseList, rootDot, acc)
	}
	return acc
}

func pipeRefs(p *parse.PipeNode, rootDot bool, acc [][]string) [][]string {
	if p == nil {
		return acc
	}
	for _, cmd := range p.Cmds {
		for _, a := range cmd.Args {
			switch a := a.(type) {
			case *parse.FieldNode:
				if rootDot {
					acc = append(acc, a.Ident)
				}
			case *parse.VariableNode:
				if len(a.Ident) > 1 && a.Ident[0] == "$" {
					acc = append(acc, a.Ident[1:])
				}
			case *parse.PipeNode:
				acc = pipeRefs(a, rootDot, acc)
			}
		}
	}
	return acc
}

// EscapeSegment escapes s as exactly one URL path segment: "/", "?", "#"
// and everything else outside the unreserved set are percent-encoded, and a
// value of "." or ".." becomes %2E or %2E%2E so it cannot climb a level.
func EscapeSegment(v any) string {
	s := toString(v)
	switch s {
	case ".":
		return "%2E"
	case "..":
		return "%2E%2E"
	}
	return url.PathEscape(s)
}

var xmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;")

// EscapeXML escapes v for SSML text and attribute values, and drops the
// characters XML cannot carry at all (control characters but tab, CR, LF).
func EscapeXML(v any) string {
	s := toString(v)
	if strings.IndexFunc(s, xmlIllegal) >= 0 {
		s = strings.Map(func(r rune) rune {
			if xmlIllegal(r) {
				return -1
			}
			return r
		}, s)
	}
	return xmlEscaper.Replace(s)
}

func xmlIllegal(r rune) bool {
	return (r < 0x20 && r != '\t' && r != '\n' && r != '\r') || r == 0xFFFE || r == 0xFFFF
}

func toString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case nil:
		return ""
	case fmt.Stringer:
		return v.String()
	}
	return fmt.Sprint(v)
}

func jsonString(v any) (string, error) {
	b, err := marshal(v)
	return string(b), err
}

func marshal(v any) (json.RawMessage, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// Spell says characters one by one: "4729" becomes "4 7 2 9".
func Spell(v any) string {
	s := toString(v)
	var b strings.Builder
	for _, r := range s {
		if r == ' ' || r == '\t' || r == '\n' {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// SayList joins a list for speech: [a b c] becomes "a, b and c".
func SayList(v any) string {
	var items []string
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Slice || rv.Kind() == reflect.Array {
		for i := 0; i < rv.Len(); i++ {
			if s := toString(rv.Index(i).Interface()); s != "" {
				items = append(items, s)
			}
		}
	} else if s := toString(v); s != "" {
		items = []string{s}
	}
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

func get(root any, path string) any {
	data, _ := root.(map[string]any)
	body, _ := data[BodyKey].([]byte)
	r := gjson.GetBytes(body, path)
	if !r.Exists() {
		return ""
	}
	return Value(r)
}

// Value converts a gjson result to a template value: integers become
// int64, other numbers float64, objects map[string]any, arrays []any,
// null "".
func Value(r gjson.Result) any {
	switch r.Type {
	case gjson.String:
		return r.Str
	case gjson.Number:
		// An integer literal keeps all its digits (ids beyond 2^53).
		if i, err := strconv.ParseInt(r.Raw, 10, 64); err == nil {
			return i
		}
		if i := r.Int(); float64(i) == r.Num && i > -1<<53 && i < 1<<53 {
			return i
		}
		return r.Num
	case gjson.True:
		return true
	case gjson.False:
		return false
	case gjson.JSON:
		if r.IsArray() {
			list := []any{} // an empty array stays [] in a JSON body
			r.ForEach(func(_, v gjson.Result) bool {
				list = append(list, Value(v))
				return true
			})
			return list
		}
		m := map[string]any{}
		r.ForEach(func(k, v gjson.Result) bool {
			m[k.String()] = Value(v)
			return true
		})
		return m
	}
	return ""
}
