package config_test

import (
	"strings"
	"testing"

	"github.com/voicegw/voicegw/gateway/config"
)

func TestServerAddresses(t *testing.T) {
	const skills = `
skills:
  s:
    intents:
      Hi: { samples: ["hi"], say: "Hi." }
`
	for _, tc := range []struct {
		name, server string
		want         []string // problem lines, as printed
	}{
		{name: "trusted proxies", server: `{ trusted_proxies: [10.0.0.0/8, "fd00::/8"] }`},
		{name: "an address, not a CIDR", server: `{ trusted_proxies: [10.0.0.0/8, 10.1.2.3] }`,
			want: []string{`test.yaml:2:41: server.trusted_proxies[1]: "10.1.2.3" is an address, not a CIDR: write 10.1.2.3/32`}},
		{name: "garbage", server: `{ trusted_proxies: [lb.internal] }`,
			want: []string{`test.yaml:2:29: server.trusted_proxies[0]: "lb.internal" is not a CIDR such as 10.0.0.0/8 or fd00::/8`}},
		{name: "metrics and debug listeners", server: `{ metrics_listen: "127.0.0.1:9090", debug_listen: "localhost:6060" }`},
		{name: "metrics on the main address", server: `{ listen: "127.0.0.1:8080", metrics_listen: "127.0.0.1:8080" }`,
			want: []string{`test.yaml:2:53: server.metrics_listen: must differ from server.listen`}},
		{name: "public profiles", server: `{ debug_listen: "0.0.0.0:6060" }`,
			want: []string{`test.yaml:2:11: warning: server.debug_listen: profiles are served on "0.0.0.0:6060", not only on loopback: anyone who reaches it can read memory contents`}},
		{name: "no port", server: `{ debug_listen: "127.0.0.1" }`,
			want: []string{`test.yaml:2:25: server.debug_listen: "127.0.0.1" is not a host:port address`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := "version: 1\nserver: " + tc.server + "\nalexa: { verify: true }" + skills
			_, problems := config.Parse("test.yaml", []byte(src), envLookup(nil))
			var got []string
			for _, p := range problems {
				got = append(got, p.Error())
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}
