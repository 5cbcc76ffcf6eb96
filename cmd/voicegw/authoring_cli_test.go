package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestHelp: every command and flag has a one-line description in -h,
// --help and `voicegw help COMMAND`, which exit 0.
func TestHelp(t *testing.T) {
	for _, c := range commands {
		for _, args := range [][]string{{c.name, "-h"}, {c.name, "--help"}, {"help", c.name}} {
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				code, out, errOut := runCLI(args...)
				if code != 0 {
					t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
				}
				want := "usage: voicegw " + c.name
				if c.name == "help" {
					want = "usage: voicegw COMMAND"
				}
				if !strings.Contains(out, want) || !strings.Contains(out, c.summary) {
					t.Errorf("help lacks the usage line or summary:\n%s", out)
				}
				lines := strings.Split(out, "\n")
				for i, l := range lines {
					if strings.HasPrefix(l, "  -") && !strings.Contains(l, "\t") {
						if i+1 >= len(lines) || strings.TrimSpace(lines[i+1]) == "" || !strings.HasPrefix(lines[i+1], "    \t") {
							t.Errorf("flag %q has no description:\n%s", strings.TrimSpace(l), out)
						}
					}
				}
			})
		}
	}
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}, {"link", "put", "-h"}} {
		if code, out, _ := runCLI(args...); code != 0 || !strings.Contains(out, "usage: voicegw") {
			t.Errorf("%v: exit %d:\n%s", args, code, out)
		}
	}
	if code, out, _ := runCLI("help"); code != 0 {
		t.Errorf("help: exit %d", code)
	} else {
		for _, c := range commands {
			if !strings.Contains(out, c.summary) {
				t.Errorf("usage lacks %s: %s", c.name, c.summary)
			}
		}
	}
	if code, _, errOut := runCLI("invoke", "--nope"); code != 2 || !strings.Contains(errOut, "voicegw invoke -h") {
		t.Errorf("bad flag: exit %d, stderr %q", code, errOut)
	}
	if code, _, _ := runCLI("help", "nope"); code != 2 {
		t.Errorf("help nope: exit %d, want 2", code)
	}
}

const authoringConfig = `version: 1
alexa: { verify: false }
vault:
  address: http://127.0.0.1:1   # never asked: --secrets replaces Vault
services:
  menu:
    base_url: %s
    timeout: 2s
    auth: { type: secret, field: api_key, header: X-Api-Key, format: "{{ .token }}" }
skills:
  food:
    invocation: food buddy
    types:
      DISH:
        - { value: pad thai, id: PT, synonyms: [noodles] }
        - { value: curry, id: CU }
    intents:
      Order:
        samples: ["order {Dish}"]
        slots: { Dish: { type: DISH, required: true, prompt: "Which dish?" } }
        confirm: "Order {{ .slots.Dish }}?"
        call: { service: menu, method: POST, path: "/order/{{ .slot_ids.Dish }}", extract: { eta: { path: eta, required: true } } }
        say: "Your {{ .slots.Dish }} comes in {{ .eta }} minutes."
`

const authoringSecrets = `# services/<name> of SPEC 4, as a scenario's secrets:
services/menu: { api_key: k-123 }
users/amzn1.ask.account.INVOKE/menu: { access_token: unused }
`

// menuUpstream answers POST /order/PT with an ETA when the API key is
// right, 401 otherwise, and 500 for anything else.
func menuUpstream(t *testing.T) (*httptest.Server, func() []string) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path+" key="+r.Header.Get("X-Api-Key"))
		mu.Unlock()
		switch {
		case r.Header.Get("X-Api-Key") != "k-123":
			w.WriteHeader(http.StatusUnauthorized)
		case r.URL.Path == "/order/PT":
			_, _ = io.WriteString(w, `{"eta": 20}`)
		default:
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestInvokeAuthoring: --secrets, --confirm, entity resolution with
// synonyms, and exit statuses (2 for usage, 1 for a failed turn).
func TestInvokeAuthoring(t *testing.T) {
	up, seen := menuUpstream(t)
	dir := t.TempDir()
	cfg := writeFile(t, dir, "config.yaml", fmt.Sprintf(authoringConfig, up.URL))
	secrets := writeFile(t, dir, "secrets.yaml", authoringSecrets)
	mcpSecrets := writeFile(t, dir, "mcp-secrets.yaml", "services/mcp-clients/alexa-plus: { client_secret: s }\nusers/mcp.abcdefghij0123456789/menu: { access_token: t }\n")
	badSecrets := writeFile(t, dir, "bad-secrets.yaml", "services/menu: { api_key: k-123 }\nusers/bob/menu: { access_token: x }\nservices/menu/x: {}\n")
	typoSecrets := writeFile(t, dir, "typo-secrets.yaml", "services/menu:\n\tapi_key: k-123\n")
	base := []string{"invoke", "-c", cfg, "--skill", "food"}
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr []string
	}{
		{"confirmation asked", []string{"--intent", "Order", "--slot", "Dish=noodles", "--secrets", secrets}, 0, "Order pad thai?\n", nil},
		{"confirmed, with the secret and the synonym's id", []string{"--intent", "Order", "--slot", "Dish=noodles", "--confirm", "yes", "--secrets", secrets}, 0, "Your pad thai comes in 20 minutes.\n", nil},
		{"denied", []string{"--intent", "Order", "--slot", "Dish=curry", "--confirm", "no", "--secrets", secrets}, 0, "Okay.\n", nil},
		{"failed turn exits 1", []string{"--intent", "Order", "--slot", "Dish=curry", "--confirm", "yes", "--secrets", secrets, "--locale", "en-GB"}, 1, "", []string{"ended in error speech"}},
		{"unknown intent", []string{"--intent", "Ordr"}, 2, "", []string{`skill food has no intent "Ordr" (did you mean Order?)`}},
		{"unknown slot", []string{"--intent", "Order", "--slot", "Dsh=curry"}, 2, "", []string{`intent Order has no slot "Dsh" (did you mean Dish?)`}},
		{"slot of no intent on a built-in", []string{"--intent", "AMAZON.HelpIntent", "--slot", "Nope=x"}, 2, "", []string{`no intent of skill food has a slot "Nope"`}},
		{"bad --confirm", []string{"--intent", "Order", "--confirm", "maybe"}, 2, "", []string{"--confirm is yes or no"}},
		{"bad --locale", []string{"--launch", "--locale", "english"}, 2, "", []string{"invalid locale"}},
		{"bad secrets file", []string{"--launch", "--secrets", badSecrets}, 1, "", []string{
			`bad-secrets.yaml:2:1: users/bob/menu: "bob" is not an Alexa userId`,
			`bad-secrets.yaml:3:1: services/menu/x: a secret path is users/<userId>/<service>, services/<service>, services/mcp-clients/<id> or link-codes/<code>`}},
		{"MCP paths in a secrets file", []string{"--launch", "--secrets", mcpSecrets}, 0, "", nil},
		{"secrets file with a tab", []string{"--launch", "--secrets", typoSecrets}, 1, "", []string{"typo-secrets.yaml:2:1: services/menu.api_key: a tab indents this line"}},
		{"missing secrets file", []string{"--launch", "--secrets", filepath.Join(dir, "nope.yaml")}, 1, "", []string{"nope.yaml:1:1:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(append(append([]string{}, base...), tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errOut)
			}
			if tc.stdout != "" && out != tc.stdout {
				t.Errorf("stdout %q, want %q", out, tc.stdout)
			}
			for _, s := range tc.stderr {
				if !strings.Contains(errOut, s) {
					t.Errorf("stderr lacks %q:\n%s", s, errOut)
				}
			}
		})
	}
	got := strings.Join(seen(), "\n")
	if !strings.Contains(got, "POST /order/PT key=k-123") {
		t.Errorf("upstream requests:\n%s", got)
	}
}

// TestServeSecrets: serve --secrets answers from the in-memory store in
// place of Vault, logs a warning and says so on /readyz.
func TestServeSecrets(t *testing.T) {
	up, _ := menuUpstream(t)
	dir := t.TempDir()
	addr := freePort(t)
	cfg := writeFile(t, dir, "config.yaml", strings.Replace(fmt.Sprintf(authoringConfig, up.URL),
		"alexa: { verify: false }", fmt.Sprintf("server: { listen: %q }\nalexa: { verify: false }", addr), 1))
	secrets := writeFile(t, dir, "secrets.yaml", authoringSecrets)
	logs := &syncBuffer{}
	cmd := exec.Command(MustBinary(t), "serve", "-c", cfg, "--secrets", secrets)
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	var ready map[string]string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&ready)
			resp.Body.Close()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ready["status"] != "ready" || !strings.Contains(ready["secrets"], "in memory") || !strings.Contains(ready["secrets"], "secrets.yaml") {
		t.Fatalf("/readyz = %v; logs:\n%s", ready, logs.String())
	}
	if !strings.Contains(logs.String(), "secrets are not in Vault") {
		t.Errorf("no warning in the logs:\n%s", logs.String())
	}
	code, out, errOut := runCLI("invoke", "-c", cfg, "--skill", "food", "--intent", "Order", "--slot", "Dish=noodles", "--confirm", "yes", "--secrets", secrets)
	if code != 0 || out != "Your pad thai comes in 20 minutes.\n" {
		t.Fatalf("invoke: exit %d %q %s", code, out, errOut)
	}
}

// TestTestOnlyTheConfigsScenarios: without file arguments, test runs the
// scenarios next to the config whose skill is one of its skills.
func TestTestOnlyTheConfigsScenarios(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "a.yaml", "version: 1\nskills:\n  a:\n    intents:\n      Hi: { samples: [hi], say: Hi. }\n")
	writeFile(t, dir, "examples/a.yaml", "skill: a\nturns:\n  - intent: Hi\n    expect: { say: Hi. }\n")
	writeFile(t, dir, "examples/b.yaml", "skill: b\nturns:\n  - intent: Hi\n    expect: { say: Hi. }\n")
	code, out, errOut := runCLI("test", "-c", cfg)
	if code != 0 || !strings.Contains(out, "examples/a.yaml") || strings.Contains(out, "examples/b.yaml") || !strings.Contains(out, "1 passed, 0 failed") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
}

// TestInvokePlatform: invoke on the shop example, in both locales, with
// a multi-value slot given as a repeated --slot.
func TestInvokePlatform(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
		_, _ = io.WriteString(w, `{"count": 4}`)
	}))
	t.Cleanup(up.Close)
	t.Setenv("SHOP_LIST_API", up.URL)
	cfg := filepath.Join("..", "..", "examples", "shop", "config.yaml")
	base := []string{"invoke", "-c", cfg, "--skill", "shop", "--intent", "AddItems"}
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string
		body   string
	}{
		{"en-US", []string{"--slot", "Items=cheddar", "--slot", "Items=tomato", "--slot", "Items=bread"}, 0,
			"Added cheese, tomatoes and bread. Your list has 4 items.\n", `{"items":["cheese","tomatoes","bread"],"ids":["CHEESE","TOMATO",""]}`},
		{"de-DE", []string{"--locale", "de-DE", "--slot", "Items=Bergkäse", "--slot", "Items=Schinken"}, 0,
			"Käse, Schinken hinzugefügt. Deine Liste hat 4 Einträge.\n", `{"items":["Käse","Schinken"],"ids":["CHEESE","HAM"]}`},
		{"one value is a list of one", []string{"--slot", "Items=ham"}, 0,
			"Added ham. Your list has 4 items.\n", `{"items":["ham"],"ids":["HAM"]}`},
		{"no value: elicited", nil, 0, "What should I add?\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			bodies = nil
			mu.Unlock()
			code, out, errOut := runCLI(append(append([]string{}, base...), tc.args...)...)
			if code != tc.code || out != tc.stdout {
				t.Fatalf("exit %d, stdout %q, want %d %q\nstderr: %s", code, out, tc.code, tc.stdout, errOut)
			}
			mu.Lock()
			defer mu.Unlock()
			if tc.body != "" && (len(bodies) != 1 || bodies[0] != tc.body) {
				t.Errorf("upstream bodies %q, want %s", bodies, tc.body)
			}
		})
	}
	code, _, errOut := runCLI("invoke", "-c", filepath.Join("..", "..", "config.example.yaml"), "--skill", "weather",
		"--intent", "GetWeather", "--slot", "City=Berlin", "--slot", "City=Paris")
	if code != 2 || !strings.Contains(errOut, "slot City takes one value") {
		t.Errorf("two values for a single-value slot: exit %d, %s", code, errOut)
	}
}
