package configschema_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/voicegw/voicegw/gateway/config/configschema"
)

var update = flag.Bool("update", false, "rewrite config.schema.json at the repository root")

var root = filepath.Join("..", "..", "..")

// TestSchemaUpToDate: the committed config.schema.json is what the config
// types generate. Run with -update after changing them.
func TestSchemaUpToDate(t *testing.T) {
	got, err := configschema.Generate(filepath.Join(root, "gateway", "config"))
	if err != nil {
		t.Fatal(err)
	}
	compare(t, got, "config.schema.json")
	got, err = configschema.GenerateScenario(filepath.Join(root, "gateway", "scenario"))
	if err != nil {
		t.Fatal(err)
	}
	compare(t, got, "scenario.schema.json")
}

func compare(t *testing.T, got []byte, name string) {
	t.Helper()
	file := filepath.Join(root, name)
	if *update {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is out of date with the Go types: run go test ./gateway/config/configschema -update", name)
	}
}

func TestScenariosValidate(t *testing.T) {
	schema, err := jsonschema.NewCompiler().Compile(filepath.Join(root, "scenario.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, pattern := range []string{"examples/*.yaml", "examples/*/scenarios/*.yaml", "../shared/acceptance/scenarios/*.yaml"} {
		m, _ := filepath.Glob(filepath.Join(root, pattern))
		files = append(files, m...)
	}
	if len(files) < 2 {
		t.Fatalf("only %d scenarios found", len(files))
	}
	for _, f := range files {
		if strings.HasSuffix(f, ".config.yaml") {
			continue
		}
		if err := schema.Validate(mustYAMLValue(t, f)); err != nil {
			t.Errorf("%s does not validate:\n%v", f, err)
		}
	}
	var v any
	if err := yaml.Unmarshal([]byte("skill: a\nturns:\n  - intent: X\n    expect: { say_contain: x }\n"), &v); err != nil {
		t.Fatal(err)
	}
	if schema.Validate(jsonValue(t, v)) == nil {
		t.Error("a misspelt expectation validates")
	}
}

// validConfigs are the example and the valid test configurations: each
// must validate against the schema.
func validConfigs(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, pattern := range []string{
		"config.example.yaml",
		"examples/*.config.yaml",
		"examples/*/config.yaml",
		"testdata/config/valid-*.yaml",
		"testdata/config/warn-*.yaml",
		"cmd/voicegw/testdata/*.yaml",
		"../shared/acceptance/config.yaml",
	} {
		m, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 5 {
		t.Fatalf("only %d configs found", len(files))
	}
	return files
}

func TestConfigsValidate(t *testing.T) {
	c := jsonschema.NewCompiler()
	schema, err := c.Compile(filepath.Join(root, "config.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range validConfigs(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			v := mustYAMLValue(t, f)
			if err := schema.Validate(v); err != nil {
				t.Errorf("%s does not validate:\n%v", f, err)
			}
		})
	}
	// And the schema catches what editors should flag.
	for _, tc := range []struct{ name, src string }{
		{"misspelt key", "version: 1\nskills:\n  a:\n    intents:\n      X: { samples: [x], say: x, end_sesion: true }\n"},
		{"wrong type", "version: 1\nserver: { max_body_bytes: lots }\nskills: { a: {} }\n"},
		{"bad duration", "version: 1\nserver: { deadline: 5 seconds }\nskills: { a: {} }\n"},
		{"no skills", "version: 1\n"},
	} {
		var v any
		if err := yaml.Unmarshal([]byte(tc.src), &v); err != nil {
			t.Fatal(err)
		}
		if err := schema.Validate(jsonValue(t, v)); err == nil {
			t.Errorf("%s: validates", tc.name)
		}
	}
}

// mustYAMLValue reads a YAML file (a golden file up to its separator) as
// the JSON value a schema validator sees.
func mustYAMLValue(t *testing.T, file string) any {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	src := string(raw)
	if i := strings.Index(src, "\n----------\n"); i >= 0 {
		src = src[:i+1]
	}
	var v any
	if err := yaml.Unmarshal([]byte(src), &v); err != nil {
		t.Fatal(err)
	}
	return jsonValue(t, v)
}

func jsonValue(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return out
}
