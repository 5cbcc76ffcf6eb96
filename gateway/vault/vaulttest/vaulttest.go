// Package vaulttest starts a real Vault dev server for tests: the pinned
// release that scripts/vault-build.sh builds into the cache, on a loopback
// port with a random root token, stopped when the test ends.
package vaulttest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// Server is a running Vault dev server.
type Server struct {
	Addr  string // http://127.0.0.1:PORT
	Token string // root token
	bin   string
	port  string
	home  string
	cmd   *exec.Cmd
	log   *os.File
}

// Binary finds the Vault binary: $VOICEGW_VAULT_BIN, else the newest
// build in the cache directory scripts/vault-build.sh uses.
func Binary() (string, error) {
	if b := os.Getenv("VOICEGW_VAULT_BIN"); b != "" {
		return b, nil
	}
	cache := os.Getenv("VOICEGW_CACHE")
	if cache == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home, _ := os.UserHomeDir()
			base = filepath.Join(home, ".cache")
		}
		cache = filepath.Join(base, "voicegw")
	}
	found, _ := filepath.Glob(filepath.Join(cache, "vault-*", "vault"))
	if len(found) == 0 {
		return "", fmt.Errorf("no Vault binary in %s: run scripts/vault-build.sh (make test does)", cache)
	}
	sort.Strings(found)
	return found[len(found)-1], nil
}

// Start starts a dev server and stops it when tb ends. A missing binary
// fails the test: the suite needs the real Vault.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin, err := Binary()
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	var b [12]byte
	_, _ = rand.Read(b[:])
	s := &Server{
		Addr:  "http://127.0.0.1:" + port,
		Token: "root-" + hex.EncodeToString(b[:]),
		bin:   bin,
		port:  port,
		home:  tb.TempDir(),
	}
	if err := s.start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Stop)
	return s
}

func (s *Server) start() error {
	log, err := os.OpenFile(filepath.Join(s.home, "vault.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, "server", "-dev",
		"-dev-root-token-id="+s.Token,
		"-dev-listen-address=127.0.0.1:"+s.port,
		"-dev-no-store-token")
	cmd.Env = []string{"HOME=" + s.home, "PATH=" + os.Getenv("PATH"), "VAULT_LOG_LEVEL=warn"}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start vault: %w", err)
	}
	s.cmd, s.log = cmd, log
	return s.wait()
}

func (s *Server) wait() error {
	c := s.Client()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if h, err := c.Sys().Health(); err == nil && h.Initialized && !h.Sealed {
			// The dev server mounts KV v2 at secret/ just after unsealing.
			if _, err := c.Logical().Read("secret/config"); err == nil {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, _ := os.ReadFile(filepath.Join(s.home, "vault.log"))
	return fmt.Errorf("vault dev server not healthy after 30s: %s", tail(string(out), 2000))
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return strings.TrimSpace(s)
}

// Client returns a root client with retries off.
func (s *Server) Client() *api.Client {
	cfg := api.DefaultConfig()
	cfg.Address = s.Addr
	cfg.MaxRetries = 0
	cfg.Timeout = 5 * time.Second
	c, _ := api.NewClient(cfg)
	c.SetToken(s.Token)
	return c
}

// Stop stops the server (idempotent).
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	_, _ = s.cmd.Process.Wait()
	s.cmd = nil
	s.log.Close()
}

// Restart starts a stopped server again on the same address with the same
// root token. Dev storage is in memory: the caller re-seeds it.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		tb.Fatal(err)
	}
}

// Put writes fields at a KV v2 path below secret/ (e.g. "voicegw/services/x").
func (s *Server) Put(tb testing.TB, path string, fields map[string]any) {
	tb.Helper()
	if _, err := s.Client().Logical().Write("secret/data/"+path, map[string]any{"data": fields}); err != nil {
		tb.Fatalf("vault put %s: %v", path, err)
	}
}

// AppRole enables the AppRole auth method (once per server), writes
// policy as the policy of the same name as role, and creates role with
// that policy and the extra role options (e.g. "token_ttl": "1h"). It
// returns the role's role_id, as an operator reads it.
func (s *Server) AppRole(tb testing.TB, role, policy string, opts map[string]any) string {
	tb.Helper()
	c := s.Client()
	auths, err := c.Sys().ListAuth()
	if err != nil {
		tb.Fatal(err)
	}
	if _, ok := auths["approle/"]; !ok {
		if err := c.Sys().EnableAuthWithOptions("approle", &api.EnableAuthOptions{Type: "approle"}); err != nil {
			tb.Fatal(err)
		}
	}
	if err := c.Sys().PutPolicy(role, policy); err != nil {
		tb.Fatal(err)
	}
	body := map[string]any{"token_policies": role}
	for k, v := range opts {
		body[k] = v
	}
	if _, err := c.Logical().Write("auth/approle/role/"+role, body); err != nil {
		tb.Fatal(err)
	}
	sec, err := c.Logical().Read("auth/approle/role/" + role + "/role-id")
	if err != nil || sec == nil {
		tb.Fatalf("read role id: %v", err)
	}
	return sec.Data["role_id"].(string)
}

// SecretID issues a new secret_id for role.
func (s *Server) SecretID(tb testing.TB, role string) string {
	tb.Helper()
	sec, err := s.Client().Logical().Write("auth/approle/role/"+role+"/secret-id", nil)
	if err != nil || sec == nil {
		tb.Fatalf("issue secret id: %v", err)
	}
	return sec.Data["secret_id"].(string)
}

// RoleTokens returns how many live tokens AppRole logins of role hold.
func (s *Server) RoleTokens(tb testing.TB, role string) int {
	tb.Helper()
	c := s.Client()
	list, err := c.Logical().List("auth/token/accessors")
	if err != nil || list == nil {
		tb.Fatalf("list token accessors: %v", err)
	}
	keys, _ := list.Data["keys"].([]any)
	n := 0
	for _, k := range keys {
		sec, err := c.Auth().Token().LookupAccessor(k.(string))
		if err != nil || sec == nil {
			continue // revoked meanwhile
		}
		meta, _ := sec.Data["meta"].(map[string]any)
		if sec.Data["path"] == "auth/approle/login" && meta["role_name"] == role {
			n++
		}
	}
	return n
}

// RevokeRoleTokens revokes every token AppRole logins of role hold, as an
// operator revoking a leaked token would.
func (s *Server) RevokeRoleTokens(tb testing.TB, role string) {
	tb.Helper()
	c := s.Client()
	list, err := c.Logical().List("auth/token/accessors")
	if err != nil || list == nil {
		tb.Fatalf("list token accessors: %v", err)
	}
	keys, _ := list.Data["keys"].([]any)
	for _, k := range keys {
		sec, err := c.Auth().Token().LookupAccessor(k.(string))
		if err != nil || sec == nil {
			continue
		}
		meta, _ := sec.Data["meta"].(map[string]any)
		if sec.Data["path"] == "auth/approle/login" && meta["role_name"] == role {
			if err := c.Auth().Token().RevokeAccessor(k.(string)); err != nil {
				tb.Fatal(err)
			}
		}
	}
}

// PolicyToken writes the policy file at policyFile (the repository's
// scripts/voicegw-policy.hcl, by a path relative to the test's package) as
// the policy "voicegw" and returns a one-hour token with exactly that
// policy: the gateway's own rights, no more.
func (s *Server) PolicyToken(tb testing.TB, policyFile string) string {
	tb.Helper()
	hcl, err := os.ReadFile(policyFile)
	if err != nil {
		tb.Fatal(err)
	}
	root := s.Client()
	if err := root.Sys().PutPolicy("voicegw", string(hcl)); err != nil {
		tb.Fatal(err)
	}
	sec, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"voicegw"}, TTL: "1h"})
	if err != nil {
		tb.Fatal(err)
	}
	return sec.Auth.ClientToken
}
