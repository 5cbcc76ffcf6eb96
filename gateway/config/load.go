package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/voicegw/voicegw/gateway/render"
)

// Problem is one configuration error or warning with its position.
type Problem struct {
	File    string
	Line    int
	Col     int
	Path    string
	Msg     string
	Warning bool
}

// Error formats the problem as FILE:LINE:COL: key.path: message, or
// FILE:LINE:COL: warning: key.path: message.
func (p *Problem) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s:%d:%d: ", p.File, p.Line, p.Col)
	if p.Warning {
		b.WriteString("warning: ")
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is every error and warning found in one file, in file order.
type Problems []*Problem

// Errors returns the problems that are not warnings.
func (ps Problems) Errors() Problems { return ps.filter(false) }

// Warnings returns the warnings.
func (ps Problems) Warnings() Problems { return ps.filter(true) }

func (ps Problems) filter(warn bool) Problems {
	var out Problems
	for _, p := range ps {
		if p.Warning == warn {
			out = append(out, p)
		}
	}
	return out
}

// Err joins the errors (not the warnings) into one error, or returns nil.
func (ps Problems) Err() error {
	errs := ps.Errors()
	if len(errs) == 0 {
		return nil
	}
	list := make([]error, len(errs))
	for i, p := range errs {
		list[i] = p
	}
	return errors.Join(list...)
}

// Load reads, decodes and validates the configuration file at path. It
// returns the config (nil when there are errors) and every problem found.
func Load(path string) (*Config, Problems) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Problems{{File: path, Line: 1, Col: 1, Msg: err.Error()}}
	}
	return Parse(path, data, os.LookupEnv)
}

// Parse is Load for data already read; lookup resolves ${VAR} references.
func Parse(file string, data []byte, lookup func(string) (string, bool)) (*Config, Problems) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, Problems{{File: file, Line: 1, Col: 1, Msg: "empty configuration"}}
		}
		return nil, Problems{SyntaxProblem(file, data, err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, Problems{{File: file, Line: extra.Line, Col: extra.Column, Msg: "more than one YAML document"}}
	}
	idx := newIndex(&root, reflect.TypeOf(Config{}))
	ck := &checker{file: file, idx: idx, lines: strings.Split(string(data), "\n")}
	expandEnv(&root, lookup, ck)

	// Unknown keys: every mapping key of the tree that names no field of
	// the Go type it decodes into (what a strict decode would find, without
	// parsing the text a second time).
	ck.unknownKeys()
	// Types: the expanded tree, whose nodes keep their original positions.
	// Unknown keys alone do not stop validation, so every problem shows.
	typeErrorsFrom := len(ck.problems)
	cfg := &Config{File: file}
	if err := root.Decode(cfg); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			ck.errf("", "%v", err)
			return nil, ck.sorted()
		}
		for _, msg := range te.Errors {
			ck.decodeProblem(msg)
		}
	}
	if len(ck.problems) > typeErrorsFrom {
		return nil, ck.sorted()
	}
	cfg.File = file
	ck.validate(cfg)
	ps := ck.sorted()
	if len(ps.Errors()) > 0 {
		return nil, ps
	}
	return cfg, ps
}

var lineRe = regexp.MustCompile(`line (\d+)(?:, column (\d+))?: (.*)`)

// parserErrors are yaml.v3's parser (not scanner) errors, whose "line N"
// counts from 0 where every other message counts from 1.
var parserErrors = map[string]bool{
	"did not find expected <document start>": true,
	"did not find expected node content":     true,
	"did not find expected key":              true,
	"did not find expected '-' indicator":    true,
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found duplicate %TAG directive":         true,
	"found undefined tag handle":             true,
}

func syntaxProblem(file string, err error) *Problem {
	p := &Problem{File: file, Line: 1, Col: 1, Msg: err.Error()}
	if m := lineRe.FindStringSubmatch(err.Error()); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		if m[2] != "" {
			p.Col, _ = strconv.Atoi(m[2])
		}
		p.Msg = m[3]
		if parserErrors[p.Msg] {
			p.Line++
		}
		if strings.Contains(p.Msg, "expected ',' or '}'") || strings.Contains(p.Msg, "expected ',' or ']'") {
			p.Msg += ` (in a { } or [ ] list, quote text that contains ": ", " #" or "${", or ends with "?")`
		}
	} else {
		p.Msg = strings.TrimPrefix(p.Msg, "yaml: ")
	}
	return p
}

var (
	unknownFieldRe = regexp.MustCompile(`^field (.+) not found in type (\S+)$`)
	duplicateRe    = regexp.MustCompile(`^mapping key ("(?:[^"\\]|\\.)*") already defined at line \d+$`)
	cannotRe       = regexp.MustCompile("^cannot unmarshal (!\\S*) (?:`(.*)` )?into (.+)$")
)

// decodeProblem turns one yaml.v3 decode error ("line 12: field x not
// found in type config.Service") into a problem with column and key path.
func (ck *checker) decodeProblem(msg string) {
	m := lineRe.FindStringSubmatch(msg)
	if m == nil {
		ck.errf("", "%s", msg)
		return
	}
	line, _ := strconv.Atoi(m[1])
	text := m[3]
	if f := unknownFieldRe.FindStringSubmatch(text); f != nil {
		if e := ck.idx.keyAt(line, f[1], f[2]); e != nil {
			ck.add(&Problem{Line: e.key.Line, Col: e.key.Column, Path: e.path, Msg: unknownKey(f[1], e.parent)})
			return
		}
		ck.add(&Problem{Line: line, Col: 1, Msg: fmt.Sprintf("unknown key %q", f[1])})
		return
	}
	if d := duplicateRe.FindStringSubmatch(text); d != nil {
		if name, err := strconv.Unquote(d[1]); err == nil {
			if e := ck.idx.duplicateAt(line, name); e != nil {
				ck.add(&Problem{Line: e.key.Line, Col: e.key.Column, Path: e.path, Msg: text})
				return
			}
		}
	}
	var kind yaml.Kind
	var value, goType string
	if c := cannotRe.FindStringSubmatch(text); c != nil {
		switch c[1] {
		case "!!seq":
			kind = yaml.SequenceNode
		case "!!map":
			kind = yaml.MappingNode
		default:
			kind = yaml.ScalarNode
		}
		value, goType = c[2], c[3]
		text = fmt.Sprintf("expected %s, got %s", goTypeName(c[3]), yamlKind(c[1]))
		if c[2] != "" {
			text += fmt.Sprintf(" %q", c[2])
		}
	}
	if e := ck.idx.valueAt(line, kind, value, goType); e != nil {
		ck.add(&Problem{Line: e.value.Line, Col: e.value.Column, Path: e.path, Msg: text})
		return
	}
	ck.add(&Problem{Line: line, Col: 1, Msg: text})
}

func yamlKind(tag string) string {
	switch tag {
	case "!!seq":
		return "a list"
	case "!!map":
		return "a mapping"
	case "!!str":
		return "string"
	case "!!int":
		return "integer"
	case "!!bool":
		return "boolean"
	}
	if !strings.HasPrefix(tag, "!!") {
		return "a value tagged " + tag
	}
	return strings.TrimPrefix(tag, "!!")
}

func goTypeName(t string) string {
	switch {
	case strings.HasPrefix(t, "map["):
		return "a mapping"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "int"):
		return "an integer"
	case t == "bool":
		return "true or false"
	case t == "string":
		return "a string"
	case strings.Contains(t, ".") && !strings.ContainsAny(t, "[]*"):
		return "a mapping"
	}
	return t
}

// entry is one key of the YAML tree with its dotted key path.
type entry struct {
	path  string
	key   *yaml.Node
	value *yaml.Node
	// typ is the Go type the value decodes into and parent that of the
	// mapping or list holding it, pointers removed; nil where unknown.
	typ, parent reflect.Type
	// reported is set once a decode error has been placed here.
	reported bool
}

// index maps key paths to their YAML nodes, to give every problem a
// position.
type index struct {
	byPath map[string]*entry
	all    []*entry
	root   *yaml.Node
}

func newIndex(doc *yaml.Node, typ reflect.Type) *index {
	idx := &index{byPath: map[string]*entry{}, root: doc}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		idx.root = doc.Content[0]
	}
	idx.walk("", nil, idx.root, typ, nil)
	return idx
}

func (idx *index) walk(path string, key, n *yaml.Node, typ, parent reflect.Type) {
	typ = deref(typ)
	e := &entry{path: path, key: key, value: n, typ: typ, parent: parent}
	idx.byPath[path] = e
	idx.all = append(idx.all, e)
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			idx.walk(join(path, k.Value), k, n.Content[i+1], childType(typ, k.Value), typ)
		}
	case yaml.SequenceNode:
		var elem reflect.Type
		if typ != nil && (typ.Kind() == reflect.Slice || typ.Kind() == reflect.Array) {
			elem = typ.Elem()
		}
		for i, c := range n.Content {
			idx.walk(fmt.Sprintf("%s[%d]", path, i), nil, c, elem, typ)
		}
	}
}

var (
	nodeType        = reflect.TypeOf(yaml.Node{})
	unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
)

// unknownKeys reports each key of a mapping decoded into a struct that
// has no field of that name, with the key names it may have meant.
func (ck *checker) unknownKeys() {
	for _, e := range ck.idx.all {
		p := e.parent
		if e.key == nil || e.typ != nil || p == nil || p.Kind() != reflect.Struct || e.key.ShortTag() == "!!merge" ||
			p == nodeType || reflect.PointerTo(p).Implements(unmarshalerType) {
			continue
		}
		ck.add(&Problem{Line: e.key.Line, Col: e.key.Column, Path: e.path, Msg: unknownKey(e.key.Value, p)})
	}
}

func deref(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// childType is the Go type of key in a mapping decoded into t.
func childType(t reflect.Type, key string) reflect.Type {
	switch {
	case t == nil || t == nodeType:
		return nil
	case t.Kind() == reflect.Map:
		return t.Elem()
	case t.Kind() == reflect.Struct:
		return fieldType(t, key)
	}
	return nil
}

func fieldType(t reflect.Type, key string) reflect.Type {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch {
		case name == "-" || !f.IsExported():
			continue
		case opts == "inline":
			if ft := fieldType(deref(f.Type), key); ft != nil {
				return ft
			}
		case name == key:
			return f.Type
		case name == "" && strings.ToLower(f.Name) == key:
			return f.Type
		}
	}
	return nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// keyAt returns the first key name on line, in a mapping of Go type
// parent, that no decode error was placed at yet (yaml.v3 reports in
// document order).
func (idx *index) keyAt(line int, name, parent string) *entry {
	var loose *entry
	for _, e := range idx.all {
		if e.key == nil || e.key.Line != line || e.key.Value != name || e.reported {
			continue
		}
		if e.parent != nil && e.parent.String() == parent {
			e.reported = true
			return e
		}
		if loose == nil {
			loose = e
		}
	}
	if loose != nil {
		loose.reported = true
	}
	return loose
}

// duplicateAt returns the repeated key name on line: one whose path an
// earlier key has already.
func (idx *index) duplicateAt(line int, name string) *entry {
	seen := map[string]bool{}
	for _, e := range idx.all {
		if e.key != nil && e.key.Line == line && e.key.Value == name && seen[e.path] && !e.reported {
			e.reported = true
			return e
		}
		seen[e.path] = true
	}
	return nil
}

// valueAt returns the entry whose value starts on line, is of kind (when
// not 0) and decodes into goType from the text value (as yaml.v3 quotes
// it, cut to 7 characters and "..."). Without such an entry it falls back
// to the deepest one on line of kind.
func (idx *index) valueAt(line int, kind yaml.Kind, value, goType string) *entry {
	var found *entry
	for _, e := range idx.all {
		if e.value.Line != line || e.path == "" || kind != 0 && e.value.Kind != kind {
			continue
		}
		if !e.reported && goType != "" && decodesInto(e.typ, goType) && sameText(e.value, value) {
			e.reported = true
			return e
		}
		found = e
	}
	return found
}

// decodesInto reports whether a value of Go type t decodes into goType:
// t itself, or the plain value of a Localized.
func decodesInto(t reflect.Type, goType string) bool {
	if t == nil {
		return false
	}
	if t.String() == goType {
		return true
	}
	if t.Kind() == reflect.Struct && strings.HasPrefix(t.Name(), "Localized[") {
		if f, ok := t.FieldByName("Plain"); ok {
			return f.Type.String() == goType
		}
	}
	return false
}

func sameText(n *yaml.Node, quoted string) bool {
	if n.Kind != yaml.ScalarNode || quoted == "" {
		return true
	}
	if len(quoted) == 10 && strings.HasSuffix(quoted, "...") {
		return strings.HasPrefix(n.Value, quoted[:7])
	}
	return n.Value == quoted
}

// pos returns the position of path's value, or of the nearest ancestor
// that exists.
func (idx *index) pos(path string) (int, int) {
	for {
		if e, ok := idx.byPath[path]; ok {
			return e.value.Line, e.value.Column
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			if e, ok := idx.byPath[""]; ok {
				return e.value.Line, e.value.Column
			}
			return 1, 1
		}
		path = path[:i]
	}
}

// keyPos is pos for the key of path, so a problem with a whole section
// points at its name.
func (idx *index) keyPos(path string) (int, int) {
	if e, ok := idx.byPath[path]; ok && e.key != nil {
		return e.key.Line, e.key.Column
	}
	return idx.pos(path)
}

var envRe = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}`)

// expandEnv replaces ${VAR} and ${VAR:-default} in every scalar value. A
// plain scalar is re-resolved afterwards, so "${PORT}" can be a number.
func expandEnv(n *yaml.Node, lookup func(string) (string, bool), ck *checker) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			expandEnv(c, lookup, ck)
		}
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			expandEnv(n.Content[i], lookup, ck)
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "${") {
			return
		}
		n.Value = envRe.ReplaceAllStringFunc(n.Value, func(ref string) string {
			m := envRe.FindStringSubmatch(ref)
			if v, ok := lookup(m[1]); ok && v != "" {
				return v
			}
			if strings.Contains(ref, ":-") {
				return m[2]
			}
			return ""
		})
		if n.Style == 0 || n.Style == yaml.TaggedStyle {
			n.Tag = ""
		}
	}
}

type checker struct {
	file     string
	idx      *index
	problems Problems
	// lines is the file's text, to place problems inside a value.
	lines []string
	// seenSamples maps each sample utterance of the current skill (see
	// sampleKey) to where it first appears.
	seenSamples map[string]string
	// sessionRefs collects the session attributes templates read.
	sessionRefs []string
	// templates compiles every template of the file with one function
	// table.
	templates *render.Set
	// skillName and skillLocales are the skill being checked; nil
	// locales outside skills.
	skillName    string
	skillLocales []string
}

func (ck *checker) add(p *Problem) {
	p.File = ck.file
	ck.problems = append(ck.problems, p)
}

// errf records an error at path's value.
func (ck *checker) errf(path, format string, args ...any) {
	l, c := ck.idx.pos(path)
	ck.add(&Problem{Line: l, Col: c, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// warnf records a warning at path's key.
func (ck *checker) warnf(path, format string, args ...any) {
	l, c := ck.idx.keyPos(path)
	ck.add(&Problem{Line: l, Col: c, Path: path, Msg: fmt.Sprintf(format, args...), Warning: true})
}

// has reports whether path is present in the file.
func (ck *checker) has(path string) bool {
	_, ok := ck.idx.byPath[path]
	return ok
}

func (ck *checker) sorted() Problems {
	sort.SliceStable(ck.problems, func(i, j int) bool {
		a, b := ck.problems[i], ck.problems[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	// Two causes can land on the same line, place and message (yaml.v3
	// reports some mistakes twice): say each once.
	out := ck.problems[:0]
	seen := map[string]bool{}
	for _, p := range ck.problems {
		if key := p.Error(); !seen[key] {
			seen[key] = true
			out = append(out, p)
		}
	}
	ck.problems = out
	return out
}

// unknownKey says that key is not a key of the mapping type t, and names
// the likely one.
func unknownKey(key string, t reflect.Type) string {
	keys := yamlKeys(t)
	if len(keys) == 0 {
		return "unknown key"
	}
	if near := closest(key, keys); near != "" {
		return fmt.Sprintf("unknown key (did you mean %s?)", near)
	}
	return "unknown key: check its spelling and indentation, or remove it"
}

// yamlKeys lists the YAML keys of struct type t, inlined fields included.
func yamlKeys(t reflect.Type) []string {
	t = deref(t)
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch {
		case name == "-":
		case opts == "inline":
			out = append(out, yamlKeys(f.Type)...)
		case name != "":
			out = append(out, name)
		default:
			out = append(out, strings.ToLower(f.Name))
		}
	}
	return out
}

// DecodeStrict decodes data, one YAML document, into v (a pointer to a
// struct) with unknown keys as errors, and reports every problem as
// configuration files do: FILE:LINE:COL, the key path and a plain message
// (no Go type names). It returns no problems when v was decoded.
func DecodeStrict(file string, data []byte, v any) Problems {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return Problems{{File: file, Line: 1, Col: 1, Msg: "empty file"}}
		}
		return Problems{SyntaxProblem(file, data, err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return Problems{{File: file, Line: extra.Line, Col: extra.Column, Msg: "more than one YAML document"}}
	}
	ck := &checker{file: file, idx: newIndex(&root, reflect.TypeOf(v)), lines: strings.Split(string(data), "\n")}
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(v); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			ck.errf("", "%v", err)
			return ck.sorted()
		}
		for _, msg := range te.Errors {
			ck.decodeProblem(msg)
		}
	}
	return ck.sorted()
}
