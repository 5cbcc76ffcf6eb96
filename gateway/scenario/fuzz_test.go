package scenario_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/voicegw/voicegw/gateway/scenario"
)

// FuzzParse checks that no scenario file makes Parse panic, and that its
// errors are positioned (FILE:LINE:COL) and name no Go type.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "examples", "*.yaml"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(string(b))
		}
	}
	f.Add("skill: a\nturns:\n  - intent: X\n    slots: { S: { value: v, id: i } }\n    expect: { say_contain: x }\n")
	f.Add("skill: a\nturns:\n  - intent: X\n\t  expect: {}\n")
	f.Fuzz(func(t *testing.T, src string) {
		_, err := scenario.Parse("f.yaml", []byte(src))
		if err == nil {
			return
		}
		for _, line := range strings.Split(err.Error(), "\n") {
			if !strings.HasPrefix(line, "f.yaml:") {
				t.Errorf("error line without the file: %q", line)
			}
			if strings.Contains(line, "scenario.") {
				t.Errorf("error names a Go type: %q", line)
			}
		}
	})
}
