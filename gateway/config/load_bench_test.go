package config_test

import (
	"fmt"
	"testing"

	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/gateway/config/configgen"
)

// BenchmarkLoad parses, validates and compiles a configuration of N
// intents (see configgen): start-up, reload and check all pay this.
func BenchmarkLoad(b *testing.B) {
	for _, n := range []int{100, 1000, 5000} {
		src := configgen.Intents(n)
		b.Run(fmt.Sprintf("intents=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				cfg, problems := config.Parse("gen.yaml", src, envLookup(nil))
				if cfg == nil {
					b.Fatal(problems.Err())
				}
			}
		})
	}
}
