package config_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/voicegw/voicegw/gateway/config"
)

var update = flag.Bool("update", false, "rewrite the expected output of testdata/config/*.yaml")

// separator divides a golden file's input YAML from the expected output.
const separator = "----------\n"

// goldenEnv is the environment every golden file is parsed with.
var goldenEnv = map[string]string{
	"VAULT_ADDR":      "https://vault.example.com",
	"VOICEGW_ROLE_ID": "role-1",
	"WORD":            "abc",
	"NUM":             "262144",
}

func envLookup(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

// TestGolden parses each testdata/config/NAME.yaml up to the separator line
// and compares what Parse reports (one problem a line, then whether a
// config was returned) with the text after it. Run with -update to rewrite
// the expected output, then review the diff.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "config", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no golden files")
	}
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(strings.TrimSuffix(name, ".yaml"), func(t *testing.T) {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			input, want, ok := cutSeparator(string(raw))
			if !ok && !*update {
				t.Fatalf("%s: no separator line %q", path, strings.TrimSpace(separator))
			}
			cfg, problems := config.Parse(name, []byte(input), envLookup(goldenEnv))
			checkInvariants(t, cfg, problems)
			checkKind(t, name, cfg, problems)
			got := describe(cfg, problems)
			if *update {
				if err := os.WriteFile(path, []byte(input+separator+got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != want {
				t.Errorf("%s:\n--- got\n%s--- want\n%s", path, got, want)
			}
		})
	}
}

// cutSeparator splits a golden file at its first separator line.
func cutSeparator(s string) (input, want string, ok bool) {
	if strings.HasPrefix(s, separator) {
		return "", s[len(separator):], true
	}
	i := strings.Index(s, "\n"+separator)
	if i < 0 {
		return s, "", false
	}
	return s[:i+1], s[i+1+len(separator):], true
}

func describe(cfg *config.Config, problems config.Problems) string {
	var b strings.Builder
	for _, p := range problems {
		b.WriteString(p.Error())
		b.WriteByte('\n')
	}
	if cfg != nil {
		b.WriteString("=> loaded\n")
	} else {
		b.WriteString("=> not loaded\n")
	}
	return b.String()
}

// checkInvariants holds for every Parse: a config exactly when there is no
// error, problems sorted by position, every problem with a position and a
// message, and Err reporting exactly the errors.
func checkInvariants(t *testing.T, cfg *config.Config, problems config.Problems) {
	t.Helper()
	errs := problems.Errors()
	if (cfg == nil) != (len(errs) > 0) {
		t.Errorf("config is nil: %v, with %d errors", cfg == nil, len(errs))
	}
	if (problems.Err() == nil) != (len(errs) == 0) {
		t.Errorf("Err() = %v with %d errors", problems.Err(), len(errs))
	}
	if len(errs)+len(problems.Warnings()) != len(problems) {
		t.Errorf("%d errors + %d warnings != %d problems", len(errs), len(problems.Warnings()), len(problems))
	}
	seen := map[string]bool{}
	for i, p := range problems {
		if p.Line < 1 || p.Col < 1 || p.Msg == "" || p.File == "" {
			t.Errorf("problem %q lacks a position or message", p.Error())
		}
		if i > 0 {
			q := problems[i-1]
			if p.Line < q.Line || p.Line == q.Line && p.Col < q.Col {
				t.Errorf("problems out of order: %q before %q", q.Error(), p.Error())
			}
		}
		if seen[p.Error()] {
			t.Errorf("problem reported twice: %q", p.Error())
		}
		seen[p.Error()] = true
	}
}

// checkKind checks a golden file against its name: valid-* load without a
// problem, warn-* load with warnings only, err-* do not load.
func checkKind(t *testing.T, name string, cfg *config.Config, problems config.Problems) {
	t.Helper()
	switch {
	case strings.HasPrefix(name, "valid-"):
		if cfg == nil || len(problems) > 0 {
			t.Errorf("%s: want a config and no problems", name)
		}
	case strings.HasPrefix(name, "warn-"):
		if cfg == nil || len(problems.Warnings()) == 0 || len(problems.Errors()) > 0 {
			t.Errorf("%s: want a config and warnings only", name)
		}
	case strings.HasPrefix(name, "err-"):
		if cfg != nil || len(problems.Errors()) == 0 {
			t.Errorf("%s: want errors and no config", name)
		}
	default:
		t.Errorf("%s: name a golden file valid-*, warn-* or err-*", name)
	}
}
