package config_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/voicegw/voicegw/gateway/config"
)

// FuzzParse checks that no input makes Parse panic and that what it
// returns always holds together (see checkInvariants).
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "config", "*.yaml"))
	for _, path := range files {
		raw, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		input, _, _ := cutSeparator(string(raw))
		f.Add(input)
	}
	f.Add("version: 1\nskills: { a: { intents: { X: { samples: [x], say: \"{{ .slots.Y }}\" } } } }\n")
	f.Fuzz(func(t *testing.T, src string) {
		cfg, problems := config.Parse("f.yaml", []byte(src), envLookup(goldenEnv))
		checkInvariants(t, cfg, problems)
	})
}
