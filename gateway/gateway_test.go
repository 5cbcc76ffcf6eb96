package gateway_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/voicegw/voicegw/gateway"
)

// spec is SPEC 4's pattern, the reference ValidUserID must agree with.
var spec = regexp.MustCompile(`^amzn1\.[A-Za-z0-9._-]{1,512}$`)

func TestValidUserID(t *testing.T) {
	for _, id := range []string{
		"amzn1.ask.account.TEST", "amzn1.x", "amzn1." + strings.Repeat("a", 512), "amzn1." + strings.Repeat("a", 513),
		"amzn1.", "amzn1", "", "amzn2.ask", "AMZN1.ask", "amzn1.ask/../x", "amzn1.%2e%2e", "amzn1.a b", "amzn1.ü",
		"amzn1.ask.account.x\n", "xamzn1.ask", "amzn1.a-b_c.D9",
	} {
		t.Run(fmt.Sprintf("%.40q", id), func(t *testing.T) {
			if got, want := gateway.ValidUserID(id), spec.MatchString(id); got != want {
				t.Fatalf("ValidUserID(%q) = %v, want %v", id, got, want)
			}
		})
	}
}

func FuzzValidUserID(f *testing.F) {
	f.Add("amzn1.ask.account.TEST")
	f.Add("amzn1.a/../b")
	f.Fuzz(func(t *testing.T, id string) {
		if got, want := gateway.ValidUserID(id), spec.MatchString(id); got != want {
			t.Fatalf("ValidUserID(%q) = %v, pattern says %v", id, got, want)
		}
	})
}

func TestSecretRedacts(t *testing.T) {
	s := gateway.Secret("hunter2")
	for _, out := range []string{s.String(), s.GoString(), fmt.Sprint(s), fmt.Sprintf("%v %+v %#v", s, s, s)} {
		if strings.Contains(out, "hunter2") {
			t.Fatalf("secret printed: %s", out)
		}
	}
	if b, _ := s.MarshalJSON(); strings.Contains(string(b), "hunter2") {
		t.Fatal("secret in JSON")
	}
	if s.Reveal() != "hunter2" {
		t.Fatal("Reveal lost the value")
	}
}
