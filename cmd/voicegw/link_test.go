package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestLinkCommand drives `voicegw link put|show|rm` through run against a
// real Vault, configured as an operator would: vault.address: ${VAULT_ADDR}
// and VAULT_TOKEN in the environment.
func TestLinkCommand(t *testing.T) {
	h := newVaultHarness(t)
	t.Setenv("VAULT_ADDR", h.vault.Addr)
	t.Setenv("VAULT_TOKEN", h.vault.Token)
	t.Setenv("VGW_UPSTREAM", h.api.srv.URL)

	// link runs the command and records its output for the leak check.
	link := func(args ...string) (int, string, string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"link"}, args...), &stdout, &stderr)
		h.leaks.output(stdout.String(), stderr.String())
		return code, stdout.String(), stderr.String()
	}
	const user = "amzn1.ask.account.LINKED"
	key := "users/" + user + "/github"
	tok, rt := secretValue("gho"), secretValue("ghr")
	h.leaks.secret(tok, rt)

	code, out, errOut := link("put", "-c", testConfig, "--user", user, "--service", "github",
		"--token", tok, "--refresh-token", rt, "--expires-in", "1h")
	if code != 0 {
		t.Fatalf("link put: exit %d: %s", code, errOut)
	}
	if want := "stored " + key + " (version 1)\n"; out != want {
		t.Errorf("link put printed %q, want %q", out, want)
	}
	data := h.raw(key)
	if data["access_token"] != tok || data["refresh_token"] != rt || data["token_type"] != "Bearer" {
		t.Errorf("Vault holds fields %v, want the token, the refresh token and token_type Bearer", fieldNames(data))
	}
	exp, err := time.Parse(time.RFC3339, strings.TrimSpace(fieldString(data["expires_at"])))
	if err != nil || time.Until(exp) < 58*time.Minute || time.Until(exp) > 61*time.Minute {
		t.Errorf("expires_at = %v, want an hour from now", data["expires_at"])
	}

	// The gateway reads what the operator stored.
	h.api.set("user:"+user, tok)
	h.gateway(nil).mustSay(t, "Repos", user, sayRepos)

	code, out, errOut = link("show", "-c", testConfig, "--user", user, "--service", "github")
	if code != 0 {
		t.Fatalf("link show: exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		key + " (version 1)",
		"access_token: " + tok[:4] + "… (" + strconv.Itoa(len(tok)) + " characters)",
		"refresh_token: " + rt[:4] + "… (" + strconv.Itoa(len(rt)) + " characters)",
		"token_type: Bearer",
		"expires_at: " + fieldString(data["expires_at"]),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("link show output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, tok) || strings.Contains(out, rt) || strings.Contains(out, tok[4:12]) {
		t.Errorf("link show prints a token in full:\n%s", out)
	}

	// --token-file, overwriting: the file's trailing newline is trimmed.
	tok2 := secretValue("gho")
	h.leaks.secret(tok2)
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(tok2+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := link("put", "-c", testConfig, "--user", user, "--service", "github", "--token-file", file); code != 0 {
		t.Fatalf("link put --token-file: exit %d: %s", code, errOut)
	}
	if data := h.raw(key); data["access_token"] != tok2 {
		t.Errorf("--token-file stored a different token")
	}

	code, out, errOut = link("rm", "-c", testConfig, "--user", user, "--service", "github")
	if code != 0 || out != "removed "+key+"\n" {
		t.Fatalf("link rm: exit %d, %q %s", code, out, errOut)
	}
	if data := h.raw(key); data != nil {
		t.Errorf("after rm Vault still holds %v", fieldNames(data))
	}
	if meta, err := h.vault.Client().Logical().Read("secret/metadata/voicegw/" + key); err != nil || meta != nil {
		t.Errorf("after rm the metadata (all versions) is still there: %v", err)
	}
	code, _, errOut = link("show", "-c", testConfig, "--user", user, "--service", "github")
	if code != 1 || !strings.Contains(errOut, "not linked") {
		t.Errorf("link show after rm: exit %d, %q", code, errOut)
	}
	if code, _, errOut := link("rm", "-c", testConfig, "--user", user, "--service", "github"); code != 0 {
		t.Errorf("link rm of a missing entry: exit %d: %s", code, errOut)
	}

	t.Run("errors", func(t *testing.T) {
		tests := []struct {
			name string
			args []string
			code int
			want string
		}{
			{"secret service", []string{"put", "--user", user, "--service", "weather", "--token", tok}, 1, "not linked"},
			{"unknown service", []string{"put", "--user", user, "--service", "nope", "--token", tok}, 1, `no service "nope"`},
			{"bad userId", []string{"put", "--user", "bob", "--service", "github", "--token", tok}, 2, "userId"},
			{"userId with a path", []string{"put", "--user", "amzn1.ask.account.X/../../services/weather", "--service", "github", "--token", tok}, 2, "userId"},
			{"show with a bad userId", []string{"show", "--user", "amzn1.", "--service", "github"}, 2, "userId"},
			{"no token", []string{"put", "--user", user, "--service", "github"}, 2, "need --token"},
			{"token and file", []string{"put", "--user", user, "--service", "github", "--token", tok, "--token-file", file}, 2, "not both"},
			{"unknown operation", []string{"list", "--user", user, "--service", "github"}, 2, "unknown operation"},
			{"no operation", []string{"--user", user}, 2, "want put, show or rm"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				args := tc.args
				if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
					args = append([]string{args[0], "-c", testConfig}, args[1:]...)
				}
				code, _, errOut := link(args...)
				if code != tc.code || !strings.Contains(errOut, tc.want) {
					t.Errorf("exit %d, stderr %q; want exit %d and %q", code, errOut, tc.code, tc.want)
				}
			})
		}
		// None of them wrote anything.
		list, err := h.vault.Client().Logical().List("secret/metadata/voicegw/users")
		if err != nil {
			t.Fatal(err)
		}
		if list != nil && len(list.Data) > 0 {
			t.Errorf("failed link commands left entries in Vault: %v", list.Data["keys"])
		}
	})
}

func fieldNames(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func fieldString(v any) string {
	s, _ := v.(string)
	return s
}
