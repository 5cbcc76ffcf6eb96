package main

// The replica test of SPEC 10: three `voicegw serve` processes, built from
// this package, on one real Vault dev server behind a real HAProxy, with a
// fake OAuth provider and a fake linked API. Under load with link flows
// and token refreshes in flight one replica is killed with SIGKILL; only
// its in-flight requests may fail, no link code or token is lost, no
// refresh is done twice, and the wrong-code limiter keys on the client
// addresses HAProxy reports in X-Forwarded-For.
//
// `make test` runs the short version (a few seconds of load); `make
// replicas` sets VOICEGW_REPLICAS_LONG=1 for a longer, wider one. The test
// is skipped only when the Vault binary or haproxy is missing, and
// scripts/test.sh installs both.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/voicegw/voicegw/gateway/alexa"
	"github.com/voicegw/voicegw/gateway/linking"
	"github.com/voicegw/voicegw/gateway/linking/linkingtest"
	"github.com/voicegw/voicegw/gateway/vault/vaulttest"
)

// replicaConfig is one replica's configuration; %s are its listen address,
// the public URL (HAProxy's) and the services' URLs.
const replicaConfig = `version: 1
server:
  listen: %s
  public_url: %s
  deadline: 5s
  trusted_proxies: [127.0.0.1/32]
alexa:
  verify: false
vault:
  address: ${VAULT_ADDR}
  auth:
    method: token
  kv_mount: secret
  prefix: voicegw
  cache_ttl: 30s
services:
  github:
    base_url: %s
    timeout: 3s
    auth:
      type: linked
    oauth2:
      auth_url: %s/authorize
      token_url: %s/token
      client_id: ` + linkFlowClientID + `
      scopes: [repo]
skills:
  linkflow:
    application_id: ` + linkFlowAppID + `
    intents:
      Repos:
        samples: ["repos"]
        call:
          service: github
          path: /user/{{ .user.id }}/repos
          extract:
            n: { path: count, required: true }
        say: "You have {{ .n }} repositories."
`

// haproxyConfig balances over the replicas; %s are the frontend address
// and the server lines. A connection refused by a dead replica is retried
// on another (redispatch); a request a replica took and died with is not,
// since Alexa requests are not idempotent.
const haproxyConfig = `global
  maxconn 4096
defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  retries 3
  option redispatch
  option forwardfor
  http-reuse never
frontend alexa
  bind %s
  default_backend voicegw
backend voicegw
  balance roundrobin
  option httpchk GET /healthz
  http-response set-header X-Replica %%s
%s`

// replicaShape is how much load the replica test makes.
type replicaShape struct {
	load      time.Duration // load runs this long; the kill is at half
	workers   int           // concurrent Alexa turn loops
	flows     int           // concurrent link-flow loops
	linked    int           // users linked before the load, tokens valid
	expiring  int           // users linked before the load, tokens expiring
	afterKill time.Duration // the kill waits for no /token call in flight this long
}

func replicaShapeFor(t *testing.T) replicaShape {
	if os.Getenv("VOICEGW_REPLICAS_LONG") != "" {
		return replicaShape{load: 30 * time.Second, workers: 24, flows: 6, linked: 60, expiring: 120, afterKill: 50 * time.Millisecond}
	}
	return replicaShape{load: 4 * time.Second, workers: 8, flows: 2, linked: 10, expiring: 30, afterKill: 50 * time.Millisecond}
}

// replicaLab is the running deployment.
type replicaLab struct {
	t        *testing.T
	dir      string
	bin      string
	vault    *vaulttest.Server
	token    string // the replicas' Vault token (voicegw policy)
	provider *linkingtest.Provider
	tokenURL string // the provider's /token behind a counting front
	upstream *linkFlowUpstream
	front    string // HAProxy's URL
	replicas []*replicaProc

	// tokens in flight at the provider, and when the last one ended.
	tokenInFlight atomic.Int64
	tokenLastEnd  atomic.Int64 // unix nanoseconds

	mu sync.Mutex
	// owner maps every refresh token the provider issued or accepted to
	// the user it belongs to; refreshes counts refresh grants per user.
	owner     map[string]string
	refreshes map[string]int
}

// replicaProc is one `voicegw serve` process.
type replicaProc struct {
	name string
	addr string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func TestReplicasBehindHAProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the replica test starts Vault, HAProxy and three gateways")
	}
	if _, err := vaulttest.Binary(); err != nil {
		t.Skipf("no Vault binary (scripts/test.sh builds it): %v", err)
	}
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		if _, err := os.Stat("/usr/sbin/haproxy"); err != nil {
			t.Skip("no haproxy (scripts/install-haproxy.sh installs it)")
		}
		haproxy = "/usr/sbin/haproxy"
	}
	shape := replicaShapeFor(t)
	lab := startReplicaLab(t, haproxy, 3)

	// The users of the load: linked with a valid token, and linked with a
	// token that expires within the refresh skew, whose first turn
	// refreshes it at the provider, once, on whichever replica wins the
	// refresh lock.
	var users, expiring []string
	for i := range shape.linked {
		u := fmt.Sprintf("amzn1.ask.account.REPLICA_LINKED_%03d", i)
		lab.link(u, time.Hour)
		users = append(users, u)
	}
	for i := range shape.expiring {
		u := fmt.Sprintf("amzn1.ask.account.REPLICA_EXPIRING_%03d", i)
		lab.link(u, 30*time.Second)
		users = append(users, u)
		expiring = append(expiring, u)
	}
	baseline := lab.provider.Counts()

	// The load: Alexa turns from 127.0.0.4, link flows each from a
	// browser of its own loopback address; every request is recorded.
	var rec requestLog
	alexaClient := loopbackClient(t, "127.0.0.4", nil)
	ctx, stop := context.WithTimeout(context.Background(), shape.load)
	defer stop()
	var wg sync.WaitGroup
	var flowN atomic.Int64
	var flowsDone sync.Map // user -> true once linked
	for w := range shape.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for ctx.Err() == nil {
				u := users[r.IntN(len(users))]
				lab.alexaTurn(alexaClient, &rec, u)
			}
		}()
	}
	for range shape.flows {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				n := flowN.Add(1)
				u := fmt.Sprintf("amzn1.ask.account.REPLICA_FLOW_%04d", n)
				if lab.linkFlow(alexaClient, &rec, u, n) {
					flowsDone.Store(u, true)
				}
				// People link a few times a second, under the
				// per-process ceiling on new codes.
				time.Sleep(250 * time.Millisecond)
			}
		}()
	}

	// Halfway, kill one replica while no token exchange is in flight
	// (a process killed between the provider's answer and its Vault
	// write loses the rotated token: see the README).
	time.Sleep(shape.load / 2)
	victim := lab.replicas[1]
	var killedAt, goneAt time.Time
	for deadline := time.Now().Add(2 * time.Second); ; {
		quiet := time.Since(time.Unix(0, lab.tokenLastEnd.Load())) > shape.afterKill
		if lab.tokenInFlight.Load() == 0 && quiet || time.Now().After(deadline) {
			killedAt, goneAt = victim.kill(t)
			break
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("killed %s (%s) with SIGKILL after %v of load; gone %v later", victim.name, victim.addr, shape.load/2, goneAt.Sub(killedAt).Round(time.Microsecond))
	wg.Wait()

	// 1. Only the victim's in-flight requests failed.
	all := rec.all()
	var failed, inFlight, ok int
	for _, r := range all {
		if r.ok {
			ok++
			continue
		}
		failed++
		if r.start.Before(goneAt) && r.end.After(killedAt) {
			inFlight++
			continue
		}
		t.Errorf("%s %s failed outside the kill (started %v before it, ended %v after): %s",
			r.what, r.user, killedAt.Sub(r.start).Round(time.Millisecond), r.end.Sub(killedAt).Round(time.Millisecond), r.err)
	}
	t.Logf("%d requests: %d answered, %d failed, all of them in flight at the kill", len(all), ok, failed)
	if ok == 0 || len(all) < shape.workers*5 {
		t.Fatalf("the load made only %d requests (%d answered)", len(all), ok)
	}

	// 2. No token lost and no refresh done twice: every user still gets
	// the API's answer, each expiring token was refreshed exactly once
	// (its first turn), and the provider saw no token request beyond the
	// grants it issued.
	for _, u := range users {
		if r := lab.mustTurn(alexaClient, u); r != linkFlowRepos {
			t.Errorf("after the kill, %s hears %q: token lost", u, r)
		}
	}
	lab.mu.Lock()
	refreshed := 0
	for _, u := range expiring {
		switch n := lab.refreshes[u]; n {
		case 0:
		case 1:
			refreshed++
		default:
			t.Errorf("%s was refreshed %d times", u, n)
		}
	}
	lab.mu.Unlock()
	if refreshed != len(expiring) {
		t.Errorf("%d of %d expiring tokens were refreshed once; every one must be after its first turn", refreshed, len(expiring))
	}
	counts := lab.provider.Counts()
	grants := counts.TokenRequests - baseline.TokenRequests
	newRefreshes := counts.Refreshes - baseline.Refreshes
	if newRefreshes != len(expiring) {
		t.Errorf("the provider issued %d refreshes for %d expiring tokens", newRefreshes, len(expiring))
	}

	// 3. No link code lost: every flow that started ended linked.
	flows := 0
	flowsDone.Range(func(_, _ any) bool { flows++; return true })
	if started := int(flowN.Load()); flows != started {
		t.Errorf("%d of %d link flows ended linked", flows, started)
	}
	if grants != newRefreshes+flows {
		t.Errorf("%d token requests for %d refreshes and %d links: some were refused or repeated", grants, newRefreshes, flows)
	}
	t.Logf("provider: %d token requests = %d refreshes (each of %d expiring tokens once) + %d links", grants, newRefreshes, len(expiring), flows)

	// 4. The limiter sees the clients HAProxy reports, not HAProxy: a
	// client that enters wrong codes is refused on every live replica,
	// while another client still gets the form.
	lab.limiterSeesClients(len(lab.replicas) - 1)

	for _, p := range lab.replicas {
		if p != victim {
			if log, _ := os.ReadFile(p.log); bytes.Contains(log, []byte(`"level":"ERROR"`)) {
				t.Errorf("%s logged an error:\n%s", p.name, tailLines(string(log), 20))
			}
		}
	}
}

// startReplicaLab builds voicegw, starts Vault, the provider, the API, n
// replicas and HAProxy in front of them; all stop when t ends.
func startReplicaLab(t *testing.T, haproxy string, n int) *replicaLab {
	t.Helper()
	lab := &replicaLab{t: t, dir: t.TempDir(), owner: map[string]string{}, refreshes: map[string]int{}}
	lab.bin = buildVoicegw(t, lab.dir)
	lab.vault = vaulttest.Start(t)
	policyToken := lab.vault.PolicyToken(t, "../../scripts/voicegw-policy.hcl")
	lab.token = policyToken
	lab.vault.Put(t, "voicegw/services/github", map[string]any{"client_secret": linkFlowClientSecret})

	lab.provider = linkingtest.NewProvider(t, linkingtest.Config{
		ClientID: linkFlowClientID, ClientSecret: linkFlowClientSecret, RequirePKCE: true,
		OnIssue: func(redeemed string, tok linkingtest.Token) {
			lab.mu.Lock()
			defer lab.mu.Unlock()
			if u, ok := lab.owner[redeemed]; ok && redeemed != "" {
				lab.refreshes[u]++
				lab.owner[tok.Refresh] = u
			}
		},
	})
	// The replicas reach /token through a front that counts exchanges in
	// flight, so the kill can avoid the moment one is answered.
	target, _ := url.Parse(lab.provider.URL)
	counting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lab.tokenInFlight.Add(1)
		defer func() {
			lab.tokenLastEnd.Store(time.Now().UnixNano())
			lab.tokenInFlight.Add(-1)
		}()
		r.URL.Scheme, r.URL.Host, r.RequestURI, r.Host = target.Scheme, target.Host, "", target.Host
		resp, err := http.DefaultTransport.RoundTrip(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	t.Cleanup(counting.Close)
	lab.tokenURL = counting.URL
	lab.upstream = newLinkFlowUpstream(t, lab.provider)

	frontAddr := freeLoopbackAddr(t)
	lab.front = "http://" + frontAddr
	var servers strings.Builder
	for i := range n {
		p := &replicaProc{name: fmt.Sprintf("replica%d", i+1), addr: freeLoopbackAddr(t)}
		cfgPath := filepath.Join(lab.dir, p.name+".yaml")
		cfg := fmt.Sprintf(replicaConfig, p.addr, lab.front, lab.upstream.URL, lab.provider.URL, lab.tokenURL)
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		p.log = filepath.Join(lab.dir, p.name+".log")
		p.start(t, lab.bin, cfgPath, []string{"VAULT_ADDR=" + lab.vault.Addr, "VAULT_TOKEN=" + lab.token})
		lab.replicas = append(lab.replicas, p)
		fmt.Fprintf(&servers, "  server %s %s check inter 100ms fall 1 rise 2\n", p.name, p.addr)
	}
	for _, p := range lab.replicas {
		waitHTTP(t, "http://"+p.addr+"/readyz", p.log)
	}
	hcfg := filepath.Join(lab.dir, "haproxy.cfg")
	if err := os.WriteFile(hcfg, []byte(fmt.Sprintf(haproxyConfig, frontAddr, servers.String())), 0o600); err != nil {
		t.Fatal(err)
	}
	hp := &replicaProc{name: "haproxy", addr: frontAddr, log: filepath.Join(lab.dir, "haproxy.log")}
	hp.startCmd(t, exec.Command(haproxy, "-db", "-f", hcfg), nil)
	waitHTTP(t, lab.front+"/healthz", hp.log)
	// Every replica is up in HAProxy's eyes before the load starts.
	time.Sleep(300 * time.Millisecond)
	return lab
}

// buildVoicegw builds this package's binary into dir.
func buildVoicegw(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "voicegw")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (p *replicaProc) start(t *testing.T, bin, cfg string, env []string) {
	t.Helper()
	p.startCmd(t, exec.Command(bin, "serve", "-c", cfg), env)
}

func (p *replicaProc) startCmd(t *testing.T, cmd *exec.Cmd, env []string) {
	t.Helper()
	f, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", p.name, err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	})
}

// kill sends SIGKILL to the replica and returns when it was sent and
// when the process was gone: a request HAProxy passed it in between was
// in flight on it too.
func (p *replicaProc) kill(t *testing.T) (sent, gone time.Time) {
	t.Helper()
	sent = time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill %s: %v", p.name, err)
	}
	<-p.done
	return sent, time.Now()
}

// waitHTTP waits until u answers 200.
func waitHTTP(t *testing.T, u, log string) {
	t.Helper()
	c := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := c.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
	}
	out, _ := os.ReadFile(log)
	t.Fatalf("%s never answered 200:\n%s", u, tailLines(string(out), 30))
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// loopbackClient is an HTTP client whose connections come from the
// loopback address local, as a distinct client machine's would; jar may
// be nil.
func loopbackClient(t testing.TB, local string, jar http.CookieJar) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Jar: jar, Timeout: 15 * time.Second}
}

// link stores a linked token for user in Vault, as the link flow would:
// a token pair the provider issued, expiring in expiresIn.
func (lab *replicaLab) link(user string, expiresIn time.Duration) {
	t := lab.t
	seed := "seed-" + strings.ToLower(user[len(user)-12:]) + fmt.Sprint(rand.Int64())
	lab.mu.Lock()
	lab.owner[seed] = "setup"
	lab.mu.Unlock()
	lab.provider.AddRefreshToken(seed)
	resp, err := http.PostForm(lab.provider.URL+"/token", url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {seed},
		"client_id": {linkFlowClientID}, "client_secret": {linkFlowClientSecret},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		Access  string `json:"access_token"`
		Refresh string `json:"refresh_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != http.StatusOK || tok.Access == "" {
		t.Fatalf("seeding a token for %s: HTTP %d %v", user, resp.StatusCode, err)
	}
	lab.mu.Lock()
	lab.owner[tok.Refresh] = user
	lab.mu.Unlock()
	lab.vault.Put(t, "voicegw/users/"+user+"/github", map[string]any{
		"access_token": tok.Access, "refresh_token": tok.Refresh, "token_type": "Bearer",
		"expires_at": time.Now().Add(expiresIn).UTC().Format(time.RFC3339),
	})
}

// requestLog records every request of the load.
type requestLog struct {
	mu   sync.Mutex
	reqs []loggedRequest
}

type loggedRequest struct {
	what, user string
	start, end time.Time
	ok         bool
	err        string
}

func (l *requestLog) add(r loggedRequest) {
	l.mu.Lock()
	l.reqs = append(l.reqs, r)
	l.mu.Unlock()
}

func (l *requestLog) all() []loggedRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]loggedRequest(nil), l.reqs...)
}

// alexaTurn sends a Repos turn for user through HAProxy and records it;
// it returns the speech ("" when the request failed).
func (lab *replicaLab) alexaTurn(c *http.Client, rec *requestLog, user string) string {
	body := alexa.BuildRequest(alexa.RequestSpec{ApplicationID: linkFlowAppID, UserID: user, Type: "IntentRequest", Intent: "Repos"})
	r := loggedRequest{what: "turn", user: user, start: time.Now()}
	speech, err := func() (string, error) {
		resp, err := c.Post(lab.front+"/alexa/linkflow", "application/json", bytes.NewReader(body))
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		if err != nil {
			return "", err
		}
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, out)
		}
		var a alexa.Response
		if err := json.Unmarshal(out, &a); err != nil {
			return "", fmt.Errorf("not an Alexa response: %.200s", out)
		}
		return a.Speech(), nil
	}()
	r.end = time.Now()
	switch {
	case err != nil:
		r.err = err.Error()
	case speech == linkFlowRepos || strings.HasPrefix(speech, "To use github") || speech == linking.Busy:
		r.ok = true
	default:
		r.err = fmt.Sprintf("speech %q", speech)
	}
	rec.add(r)
	return speech
}

// mustTurn is a turn outside the load, which must be answered.
func (lab *replicaLab) mustTurn(c *http.Client, user string) string {
	var rec requestLog
	s := lab.alexaTurn(c, &rec, user)
	if r := rec.all()[0]; r.err != "" && s == "" {
		lab.t.Errorf("turn for %s: %s", user, r.err)
	}
	return s
}

var replicaCode = regexp.MustCompile(`enter code (\d) (\d) (\d) (\d) (\d) (\d)`)

// linkFlow links a new user as a person would: ask Alexa, open the
// public URL in a browser of its own (loopback address by n), enter the
// code, go through the provider, ask Alexa again. A step that fails is
// retried from the start in the same browser, as a person would; it
// reports whether the user ended linked.
func (lab *replicaLab) linkFlow(alexaClient *http.Client, rec *requestLog, user string, n int64) bool {
	jar, _ := cookiejar.New(nil)
	browser := loopbackClient(lab.t, fmt.Sprintf("127.0.%d.%d", 10+n/250, n%250+1), jar)
	for attempt := 0; attempt < 4; attempt++ {
		speech := lab.alexaTurn(alexaClient, rec, user)
		if speech == linkFlowRepos {
			return true
		}
		m := replicaCode.FindStringSubmatch(speech)
		if m == nil {
			time.Sleep(time.Second) // the request failed, or codes are busy
			continue
		}
		code := strings.Join(m[1:], "")
		if lab.browse(browser, rec, user, code) {
			if lab.alexaTurn(alexaClient, rec, user) == linkFlowRepos {
				return true
			}
		}
	}
	return false
}

var replicaCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// browse opens /link, submits code and follows the redirects to the
// provider and back; it records each gateway request and reports whether
// the callback said the account is linked.
func (lab *replicaLab) browse(c *http.Client, rec *requestLog, user, code string) bool {
	step := func(what string, do func() (*http.Response, error)) (string, bool) {
		r := loggedRequest{what: what, user: user, start: time.Now()}
		resp, err := do()
		var body []byte
		if err == nil {
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode >= 500 {
				err = fmt.Errorf("HTTP %d at %s: %.200s", resp.StatusCode, resp.Request.URL.Path, body)
			}
		}
		r.end = time.Now()
		r.ok = err == nil
		if err != nil {
			r.err = err.Error()
		}
		rec.add(r)
		return string(body), err == nil
	}
	form, ok := step("GET /link", func() (*http.Response, error) { return c.Get(lab.front + "/link") })
	if !ok {
		return false
	}
	m := replicaCSRF.FindStringSubmatch(form)
	if m == nil {
		rec.add(loggedRequest{what: "GET /link", user: user, start: time.Now(), end: time.Now(), err: "no CSRF field"})
		return false
	}
	page, ok := step("POST /link", func() (*http.Response, error) {
		return c.PostForm(lab.front+"/link", url.Values{"code": {code}, "csrf": {m[1]}})
	})
	return ok && strings.Contains(page, "now linked")
}

// limiterSeesClients checks the wrong-code limiter behind HAProxy: client
// 127.0.0.2 enters wrong codes until each of the live replicas (named in
// HAProxy's X-Replica header) has refused it with 429, then client
// 127.0.0.3 still gets the form with "not valid" (400) from each of them.
// A limiter keyed on the peer address (HAProxy's) would refuse both.
func (lab *replicaLab) limiterSeesClients(live int) {
	t := lab.t
	// enter opens the form and submits a wrong code; it returns the
	// status, the page and the replica that answered the submission.
	enter := func(c *http.Client) (int, string, string) {
		resp, err := c.Get(lab.front + "/link")
		if err != nil {
			t.Fatal(err)
		}
		form, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := replicaCSRF.FindStringSubmatch(string(form))
		if m == nil {
			return resp.StatusCode, string(form), resp.Header.Get("X-Replica")
		}
		resp, err = c.PostForm(lab.front+"/link", url.Values{"code": {"000000"}, "csrf": {m[1]}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), resp.Header.Get("X-Replica")
	}
	// shift sends one more request through HAProxy: with a form and a
	// submission per code, round robin over an even number of replicas
	// would send every submission to the same one.
	shift := func(c *http.Client) {
		resp, err := c.Get(lab.front + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	jarA, _ := cookiejar.New(nil)
	a := loopbackClient(t, "127.0.0.2", jarA)
	refusedBy := map[string]bool{}
	tries := 0
	for ; len(refusedBy) < live && tries < 6*linking.WrongCodes*live; tries++ {
		switch status, body, replica := enter(a); status {
		case http.StatusTooManyRequests:
			if refusedBy[replica] {
				shift(a)
			}
			refusedBy[replica] = true
		case http.StatusBadRequest:
		default:
			t.Fatalf("wrong code %d from 127.0.0.2 = %d: %.300s", tries+1, status, body)
		}
	}
	if len(refusedBy) < live {
		t.Fatalf("127.0.0.2 entered %d wrong codes and was refused only by %v of %d replicas", tries, refusedBy, live)
	}
	jarB, _ := cookiejar.New(nil)
	b := loopbackClient(t, "127.0.0.3", jarB)
	formBy := map[string]bool{}
	for i := 0; len(formBy) < live; i++ {
		if i >= 4*live {
			t.Fatalf("127.0.0.3 got the form only from %v", formBy)
		}
		status, body, replica := enter(b)
		if status != http.StatusBadRequest || !strings.Contains(body, "not valid") || !replicaCSRF.MatchString(body) {
			t.Fatalf("a wrong code from 127.0.0.3 on %s (which refuses 127.0.0.2) = %d, want 400 with the form: the limiter keyed on HAProxy, not the client: %.300s",
				replica, status, body)
		}
		if !refusedBy[replica] {
			t.Fatalf("replica %q answered, not one of %v", replica, refusedBy)
		}
		if formBy[replica] {
			shift(b)
		}
		formBy[replica] = true
	}
	t.Logf("wrong-code limiter: 127.0.0.2 refused with 429 by each of %d live replicas after %d codes; 127.0.0.3 still gets the form from each", live, tries)
}
