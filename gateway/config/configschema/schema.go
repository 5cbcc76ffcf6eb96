// Package configschema generates the JSON Schemas of voicegw's
// configuration file and scenario files from the Go types of packages
// config and scenario, so that editors
// (yaml-language-server and others) complete keys and flag typos while the
// author types. The schema is committed as config.schema.json at the
// repository root; its test fails when it is out of date with the types
// (go test ./gateway/config/configschema -update rewrites it), and so is
// scenario.schema.json.
package configschema

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/invopop/jsonschema"
	"gopkg.in/yaml.v3"

	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/gateway/scenario"
)

// ID is where the schema is published, relative to a config file at the
// repository root.
const ID = "https://github.com/voicegw/voicegw/config.schema.json"

// envPattern matches a ${VAR} or ${VAR:-default} reference, which any
// value may be before expansion.
const envPattern = `\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}`

// Generate returns the schema of configuration files, indented, with the
// doc comments of the config types read from configDir (the source of
// package config) as descriptions.
func Generate(configDir string) ([]byte, error) {
	return generate(&config.Config{}, ID, "voicegw configuration",
		"A voicegw configuration file: services, and Alexa skills whose intents call them (SPEC section 3).",
		map[string]string{configDir: reflect.TypeOf(config.Config{}).PkgPath()})
}

// ScenarioID is where the scenario schema is published.
const ScenarioID = "https://github.com/voicegw/voicegw/scenario.schema.json"

// GenerateScenario returns the schema of scenario files (voicegw test),
// with the doc comments read from scenarioDir (package scenario).
func GenerateScenario(scenarioDir string) ([]byte, error) {
	return generate(&scenario.Scenario{}, ScenarioID, "voicegw scenario",
		"A conversation scenario for voicegw test: stub upstreams, in-memory secrets and turns with expectations (SPEC section 9).",
		map[string]string{scenarioDir: reflect.TypeOf(scenario.Scenario{}).PkgPath()})
}

func generate(v any, id, title, description string, dirs map[string]string) ([]byte, error) {
	comments := map[string]string{}
	for dir, pkg := range dirs {
		m, err := goComments(dir, pkg)
		if err != nil {
			return nil, err
		}
		for k, c := range m {
			comments[k] = c
		}
	}
	r := &jsonschema.Reflector{
		FieldNameTag:               "yaml",
		RequiredFromJSONSchemaTags: true,
		Mapper:                     mapper,
		CommentMap:                 comments,
	}
	s := r.Reflect(v)
	allowNull(s, reflect.TypeOf(v), map[reflect.Type]bool{})
	s.ID = jsonschema.ID(id)
	s.Title = title
	s.Description = description
	out, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

var (
	durationType = reflect.TypeOf(config.Duration{})
	nodeType     = reflect.TypeOf(yaml.Node{})
	extractType  = reflect.TypeOf(map[string]yaml.Node{})
	slotType     = reflect.TypeOf(scenario.Slot{})
)

// env is a string that holds a ${VAR} reference: it may stand for a value
// of any type until it is expanded.
func env() *jsonschema.Schema {
	return &jsonschema.Schema{Type: "string", Pattern: envPattern}
}

// mapper gives the types whose YAML form is not their Go form a schema.
func mapper(t reflect.Type) *jsonschema.Schema {
	switch t {
	case durationType:
		return &jsonschema.Schema{
			Type:        "string",
			Pattern:     `^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+|.*` + envPattern + `.*)$`,
			Description: "A Go duration, e.g. 500ms, 2s, 1m30s.",
			Examples:    []any{"2s"},
		}
	case slotType:
		props := jsonschema.NewProperties()
		for _, k := range []string{"value", "id", "name"} {
			props.Set(k, &jsonschema.Schema{Type: "string"})
		}
		one := []*jsonschema.Schema{
			{Type: "string"},
			{Type: "object", Properties: props, AdditionalProperties: jsonschema.FalseSchema},
		}
		return &jsonschema.Schema{
			AnyOf:       append(one, &jsonschema.Schema{Type: "array", Items: &jsonschema.Schema{AnyOf: one}}),
			Description: "A slot value, or {value, id, name} with the entity resolution Alexa sends, or a list of them for a slot with multiple: true.",
		}
	case nodeType:
		return &jsonschema.Schema{Description: "Any YAML value; its string leaves are templates."}
	case extractType:
		path := &jsonschema.Schema{Type: "string", MinLength: ptr(uint64(1)), Description: "A gjson path, e.g. data.items.0.name or items.#.id (not JSONPath: no $, [0] or [*])."}
		props := jsonschema.NewProperties()
		props.Set("path", path)
		props.Set("required", &jsonschema.Schema{AnyOf: []*jsonschema.Schema{{Type: "boolean"}, env()},
			Description: "When true, a missing value answers with the missing error speech."})
		return &jsonschema.Schema{
			Type: "object",
			AdditionalProperties: &jsonschema.Schema{AnyOf: []*jsonschema.Schema{
				path,
				{Type: "object", Properties: props, Required: []string{"path"}, AdditionalProperties: jsonschema.FalseSchema},
			}},
			Description: "Values taken from the JSON answer: name to a gjson path, or {path, required}.",
		}
	}
	if t.Kind() == reflect.Struct && strings.HasPrefix(t.Name(), "Localized[") {
		f, _ := t.FieldByName("Plain")
		plain := &jsonschema.Schema{Type: "string"}
		what := "A text"
		if f.Type.Kind() == reflect.Slice {
			plain = &jsonschema.Schema{Type: "array", Items: &jsonschema.Schema{Type: "string"}}
			what = "A list"
		}
		return &jsonschema.Schema{
			AnyOf: []*jsonschema.Schema{
				plain,
				{Type: "object", PatternProperties: map[string]*jsonschema.Schema{`^[a-z]{2}-[A-Z]{2}$`: plain},
					AdditionalProperties: jsonschema.FalseSchema},
			},
			Description: what + " for every locale, or a mapping of locales (en-US, de-DE, …) to each locale's own.",
		}
	}
	switch t.Kind() {
	case reflect.Bool:
		return &jsonschema.Schema{AnyOf: []*jsonschema.Schema{{Type: "boolean"}, env()}}
	case reflect.Int, reflect.Int64, reflect.Int32:
		return &jsonschema.Schema{AnyOf: []*jsonschema.Schema{{Type: "integer"}, env()}}
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// goComments reads the doc comments of the types and fields declared in
// dir (package pkg) in the form jsonschema.Reflector.CommentMap wants:
// "pkg.Type" and "pkg.Type.Field".
func goComments(dir, pkg string) (map[string]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		file, err := parser.ParseFile(fset, f, src, parser.ParseComments)
		if err != nil {
			return nil, fmt.Errorf("read comments: %w", err)
		}
		for _, d := range file.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, spec := range gd.Specs {
				ts := spec.(*ast.TypeSpec)
				doc := ts.Doc.Text()
				if doc == "" && len(gd.Specs) == 1 {
					doc = gd.Doc.Text()
				}
				if doc != "" {
					out[pkg+"."+ts.Name.Name] = clean(doc)
				}
				st, ok := ts.Type.(*ast.StructType)
				if !ok {
					continue
				}
				for _, field := range st.Fields.List {
					text := field.Doc.Text()
					if text == "" {
						text = field.Comment.Text()
					}
					for _, n := range field.Names {
						if text != "" {
							out[pkg+"."+ts.Name.Name+"."+n.Name] = clean(text)
						}
					}
				}
			}
		}
	}
	return out, nil
}

func clean(s string) string { return strings.Join(strings.Fields(s), " ") }

// allowNull lets optional sections written as null (e.g. "call: null"
// under a merge key, which unsets an inherited call) validate: every
// pointer field of the config types also accepts null.
func allowNull(s *jsonschema.Schema, t reflect.Type, seen map[reflect.Type]bool) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Map || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || seen[t] || t == durationType || t == nodeType || t == slotType {
		return
	}
	seen[t] = true
	nullFields(s, s.Definitions[t.Name()], t, seen)
}

// nullFields makes the pointer fields of struct t (inlined ones too)
// accept null in def, and visits the types of all its fields.
func nullFields(s, def *jsonschema.Schema, t reflect.Type, seen map[reflect.Type]bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if opts == "inline" {
			nullFields(s, def, f.Type, seen)
			continue
		}
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		allowNull(s, f.Type, seen)
		if f.Type.Kind() != reflect.Pointer || def == nil || def.Properties == nil {
			continue
		}
		prop, ok := def.Properties.Get(name)
		if !ok || len(prop.AnyOf) == 2 && prop.AnyOf[1].Type == "null" {
			continue
		}
		desc := prop.Description
		prop.Description = ""
		def.Properties.Set(name, &jsonschema.Schema{AnyOf: []*jsonschema.Schema{prop, {Type: "null"}}, Description: desc})
	}
}
