package main

import (
	"log/slog"
	"testing"

	"github.com/voicegw/voicegw/gateway/config"
)

// TestReloadKeepsVerifier: a reload with the same timestamp tolerance
// keeps the request verifier and so its certificate cache; a changed
// tolerance gets a new one.
func TestReloadKeepsVerifier(t *testing.T) {
	parse := func(tol string) *config.Config {
		cfg, problems := config.Parse("w.yaml", []byte(`version: 1
alexa: { verify: true, timestamp_tolerance: `+tol+` }
skills:
  s:
    intents:
      Hi: { samples: ["hi"], say: "Hi." }
`), func(string) (string, bool) { return "", false })
		if cfg == nil {
			t.Fatal(problems.Err())
		}
		return cfg
	}
	d := newDeps(slog.New(slog.DiscardHandler))
	first := d.pipeline(parse("150s"), nil, true, nil).Verifier
	if first == nil {
		t.Fatal("no verifier")
	}
	if again := d.pipeline(parse("150s"), nil, true, nil).Verifier; again != first {
		t.Fatal("a reload with the same tolerance dropped the verifier and its certificate cache")
	}
	if other := d.pipeline(parse("60s"), nil, true, nil).Verifier; other == first {
		t.Fatal("a changed tolerance kept the old verifier")
	}
}
