package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/voicegw/voicegw/gateway/alexa"
	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/gateway/inmem"
)

// MustBinary builds voicegw once per test binary.
var (
	binOnce sync.Once
	binPath string
	binErr  error
)

func MustBinary(tb testing.TB) string {
	tb.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "voicegw-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "voicegw")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		tb.Fatal(binErr)
	}
	return binPath
}

func freePort(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

const serveConfig = `version: 1
server: { listen: "%s", deadline: 3s }
alexa: { verify: false }
services:
  api: { base_url: "%s", timeout: 2s }
skills:
  s:
    application_id: amzn1.ask.skill.serve
    intents:
      Hello:
        samples: ["hello"]
        say: "%s"
      Slow:
        samples: ["slow"]
        call: { service: api, path: /slow }
        say: "Slow done."
`

// servedProcess is a running `voicegw serve`.
type servedProcess struct {
	cmd  *exec.Cmd
	addr string
	logs *syncBuffer
	done chan error
}

func startServe(t *testing.T, cfgFile, addr string, flags ...string) *servedProcess {
	t.Helper()
	p := &servedProcess{addr: addr, logs: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(MustBinary(t), append([]string{"serve", "-c", cfgFile}, flags...)...)
	p.cmd.Stderr = p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			return p
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("serve did not come up; logs:\n%s", p.logs.String())
	return nil
}

func (p *servedProcess) say(t *testing.T, intent string) (int, string) {
	t.Helper()
	body := alexa.BuildRequest(alexa.RequestSpec{ApplicationID: "amzn1.ask.skill.serve",
		UserID: "amzn1.ask.account.SERVE", Type: "IntentRequest", Intent: intent})
	resp, err := http.Post("http://"+p.addr+"/alexa", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST /alexa: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r alexa.Response
	_ = json.Unmarshal(b, &r)
	return resp.StatusCode, r.Speech()
}

// waitLog waits until the logs contain s.
func (p *servedProcess) waitLog(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(p.logs.String(), s) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("logs never said %q:\n%s", s, p.logs.String())
}

func TestServeReloadAndShutdown(t *testing.T) {
	slow := make(chan struct{})
	arrived := make(chan struct{}, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-slow
		_, _ = io.WriteString(w, "{}")
	}))
	defer up.Close()
	addr := freePort(t)
	cfgFile := filepath.Join(t.TempDir(), "config.yaml")
	write := func(content string) {
		if err := os.WriteFile(cfgFile, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(fmt.Sprintf(serveConfig, addr, up.URL, "Hello one."))
	p := startServe(t, cfgFile, addr)

	if status, speech := p.say(t, "Hello"); status != 200 || speech != "Hello one." {
		t.Fatalf("first answer: %d %q", status, speech)
	}

	// SIGHUP with a valid change: the new config answers.
	write(fmt.Sprintf(serveConfig, addr, up.URL, "Hello two."))
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.waitLog(t, "configuration reloaded")
	if _, speech := p.say(t, "Hello"); speech != "Hello two." {
		t.Fatalf("after reload: %q", speech)
	}

	// SIGHUP with a broken config: logged with file:line:col, old one kept.
	write(strings.Replace(fmt.Sprintf(serveConfig, addr, up.URL, "Hello three."), "service: api", "service: nope", 1))
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.waitLog(t, "keeping the running configuration")
	if !strings.Contains(p.logs.String(), `config.yaml:15:26: skills.s.intents.Slow.call.service`) || !strings.Contains(p.logs.String(), `no service \"nope\"`) {
		t.Fatalf("reload error lacks position or reason:\n%s", p.logs.String())
	}
	if _, speech := p.say(t, "Hello"); speech != "Hello two." {
		t.Fatalf("after a failed reload: %q, want the running config's answer", speech)
	}

	// SIGTERM while a turn is in flight: the turn finishes, then the
	// process exits 0 and refuses new connections.
	result := make(chan string, 1)
	go func() {
		_, speech := p.say(t, "Slow")
		result <- speech
	}()
	<-arrived // the turn is in flight, waiting on the upstream
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	close(slow)
	if speech := <-result; speech != "Slow done." {
		t.Fatalf("in-flight turn during shutdown answered %q", speech)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("serve exited with %v; logs:\n%s", err, p.logs.String())
		}
		p.done <- nil
	case <-time.After(5 * time.Second):
		t.Fatal("serve did not exit after SIGTERM")
	}
	if _, err := http.Get("http://" + addr + "/healthz"); err == nil {
		t.Fatal("still serving after shutdown")
	}
	sc := bufio.NewScanner(strings.NewReader(p.logs.String()))
	for sc.Scan() {
		if !json.Valid(sc.Bytes()) {
			t.Fatalf("log line is not JSON: %s", sc.Text())
		}
	}
}

// TestServeExampleConfig is the README's first command: the example
// config serves with no Vault and no keys, answers a no-auth intent and
// asks an unlinked user to link.
func TestServeExampleConfig(t *testing.T) {
	addr := freePort(t)
	t.Setenv("VOICEGW_LISTEN", addr)
	t.Setenv("VAULT_ADDR", "")
	p := startServe(t, filepath.Join("..", "..", "config.example.yaml"), addr)
	post := func(skill, appID, intent string) string {
		body := alexa.BuildRequest(alexa.RequestSpec{ApplicationID: appID,
			UserID: "amzn1.ask.account.README", Type: "IntentRequest", Intent: intent})
		resp, err := http.Post("http://"+p.addr+"/alexa/"+skill, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var r alexa.Response
		if resp.StatusCode != 200 || json.Unmarshal(b, &r) != nil {
			t.Fatalf("%s %s: HTTP %d %s", skill, intent, resp.StatusCode, b)
		}
		return r.Speech()
	}
	if got := post("weather", "amzn1.ask.skill.weather-example", "AboutIntent"); !strings.Contains(got, "Open-Meteo") {
		t.Fatalf("no-auth intent: %q", got)
	}
	if got := post("github", "amzn1.ask.skill.github-example", "CountNotifications"); !strings.Contains(got, "link your account") {
		t.Fatalf("linked intent without Vault: %q", got)
	}
	resp, err := http.Get("http://" + p.addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/readyz without Vault = %d", resp.StatusCode)
	}
}

// TestReloadKeepsVaultStore: a reload with the same vault section keeps the
// store (its login, renewal and cache); a changed section gets a new one.
func TestReloadKeepsVaultStore(t *testing.T) {
	t.Setenv("VAULT_TOKEN", "t")
	d := newDeps(slog.New(slog.DiscardHandler))
	a := &config.Config{Vault: &config.Vault{Address: "http://127.0.0.1:1", KVMount: "secret", Prefix: "voicegw"}}
	b := &config.Config{Vault: &config.Vault{Address: "http://127.0.0.1:1", KVMount: "secret", Prefix: "voicegw"}}
	c := &config.Config{Vault: &config.Vault{Address: "http://127.0.0.1:2", KVMount: "secret", Prefix: "voicegw"}}
	s1, err := d.store(a)
	if err != nil {
		t.Fatal(err)
	}
	if s2, _ := d.store(b); s2 != s1 {
		t.Fatal("an unchanged vault section opened a new store")
	}
	if s3, _ := d.store(c); s3 == s1 {
		t.Fatal("a changed vault section kept the old store")
	}
	if s4, _ := d.store(&config.Config{}); s4 != nil {
		t.Fatal("no vault section, yet a store")
	}
}

// TestReloadKeepsCredentialCache: a reload over the same store and ttl
// keeps the credential cache (and with it the stale secrets that answer
// while Vault is down); another store or ttl gets a fresh one.
func TestReloadKeepsCredentialCache(t *testing.T) {
	d := newDeps(slog.New(slog.DiscardHandler))
	a, b := inmem.New(nil), inmem.New(nil)
	p1 := d.credentials(a, time.Second, time.Second)
	if d.credentials(a, time.Second, time.Second) != p1 {
		t.Fatal("same store and ttl: a new cache")
	}
	if d.credentials(a, 2*time.Second, time.Second) == p1 {
		t.Fatal("a new ttl kept the old cache")
	}
	p2 := d.credentials(a, 2*time.Second, time.Second)
	if d.credentials(a, 2*time.Second, 3*time.Second) == p2 {
		t.Fatal("a new vault.timeout kept the old provider")
	}
	p3 := d.credentials(a, 2*time.Second, 3*time.Second)
	if d.credentials(b, 2*time.Second, 3*time.Second) == p3 {
		t.Fatal("another store kept the old cache")
	}
}
