package vault_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/gateway/vault"
	"github.com/voicegw/voicegw/gateway/vault/vaulttest"
)

func vaultConfig(addr string) *config.Vault {
	return &config.Vault{Address: addr, KVMount: "secret", Prefix: "voicegw",
		Auth: config.VaultAuth{Method: "token"}, CacheTTL: config.Duration{D: 30 * time.Second}}
}

// MustStore returns a store on srv with token tok.
func MustStore(tb testing.TB, srv *vaulttest.Server, tok string, opts vault.Options) *vault.Store {
	tb.Helper()
	opts.Token = tok
	s, err := vault.New(vaultConfig(srv.Addr), opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return s
}

func TestStoreKV(t *testing.T) {
	srv := vaulttest.Start(t)
	s := MustStore(t, srv, srv.Token, vault.Options{})
	ctx := context.Background()

	if _, err := s.Read(ctx, "users/amzn1.ask.account.A/github"); !errors.Is(err, gateway.ErrNotFound) {
		t.Fatalf("read missing: got %v, want ErrNotFound", err)
	}
	v, err := s.Write(ctx, "users/amzn1.ask.account.A/github", gateway.SecretData{"access_token": "t1"}, 0)
	if err != nil || v != 1 {
		t.Fatalf("create with cas 0: v=%d err=%v", v, err)
	}
	if _, err := s.Write(ctx, "users/amzn1.ask.account.A/github", gateway.SecretData{"access_token": "t2"}, 0); !errors.Is(err, gateway.ErrConflict) {
		t.Fatalf("second create with cas 0: got %v, want ErrConflict", err)
	}
	if v, err = s.Write(ctx, "users/amzn1.ask.account.A/github", gateway.SecretData{"access_token": "t2"}, 1); err != nil || v != 2 {
		t.Fatalf("update with cas 1: v=%d err=%v", v, err)
	}
	e, err := s.Read(ctx, "users/amzn1.ask.account.A/github")
	if err != nil || e.Version != 2 || e.Data["access_token"].Reveal() != "t2" {
		t.Fatalf("read: %+v %v", e, err)
	}
	// The layout of SPEC 4: <mount>/data/<prefix>/<path>.
	raw, err := srv.Client().Logical().Read("secret/data/voicegw/users/amzn1.ask.account.A/github")
	if err != nil || raw == nil {
		t.Fatalf("raw read: %v", err)
	}
	if got := raw.Data["data"].(map[string]any)["access_token"]; got != "t2" {
		t.Fatalf("raw access_token = %v", got)
	}
	if err := s.Delete(ctx, "users/amzn1.ask.account.A/github"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(ctx, "users/amzn1.ask.account.A/github"); !errors.Is(err, gateway.ErrNotFound) {
		t.Fatalf("read after delete: got %v", err)
	}
	for _, bad := range []string{"users/../services/x", "users//x", "./x", "users/a/.."} {
		if _, err := s.Read(ctx, bad); err == nil || errors.Is(err, gateway.ErrNotFound) {
			t.Errorf("Read(%q) = %v, want a refusal", bad, err)
		}
	}
	if h := s.Health(); h != (vault.Health{Connected: true, Status: vault.StatusOK}) {
		t.Fatalf("Health: %+v", h)
	}
}

func TestStoreUnreachable(t *testing.T) {
	srv := vaulttest.Start(t)
	s := MustStore(t, srv, srv.Token, vault.Options{})
	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_, err := s.Read(ctx, "services/x")
	if err == nil || errors.Is(err, gateway.ErrNotFound) {
		t.Fatalf("read with Vault down: %v", err)
	}
	if time.Since(start) > time.Second {
		t.Fatalf("read with Vault down took %s, want a fast failure", time.Since(start))
	}
	if h := s.Health(); h.Status != vault.StatusUnreachable || h.Connected {
		t.Fatalf("Health with Vault down from the start: %+v", h)
	}
}

// TestPolicy runs the store with a token of exactly scripts/voicegw-policy.hcl.
func TestPolicy(t *testing.T) {
	srv := vaulttest.Start(t)
	root := srv.Client()
	hcl, err := os.ReadFile(filepath.Join("..", "..", "scripts", "voicegw-policy.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().PutPolicy("voicegw", string(hcl)); err != nil {
		t.Fatal(err)
	}
	tok, err := root.Auth().Token().Create(&apiTokenRequest{Policies: []string{"voicegw"}, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	srv.Put(t, "voicegw/services/weather", map[string]any{"api_key": "k1"})
	srv.Put(t, "other/secret", map[string]any{"x": "y"})
	s := MustStore(t, srv, tok.Auth.ClientToken, vault.Options{})
	ctx := context.Background()

	if e, err := s.Read(ctx, "services/weather"); err != nil || e.Data["api_key"].Reveal() != "k1" {
		t.Fatalf("read service secret: %v", err)
	}
	if _, err := s.Write(ctx, "services/weather", gateway.SecretData{"api_key": "evil"}, -1); err == nil {
		t.Fatal("policy lets the gateway write service secrets")
	}
	if _, err := s.Write(ctx, "users/amzn1.ask.account.P/github", gateway.SecretData{"access_token": "t"}, 0); err != nil {
		t.Fatalf("write user token: %v", err)
	}
	if _, err := s.Write(ctx, "link-codes/123456", gateway.SecretData{"user_id": "amzn1.ask.account.P"}, 0); err != nil {
		t.Fatalf("write link code: %v", err)
	}
	if err := s.Delete(ctx, "link-codes/123456"); err != nil {
		t.Fatalf("burn link code: %v", err)
	}
	// A user who disables the skill: the token goes with every version.
	if _, err := s.Write(ctx, "users/amzn1.ask.account.P/github", gateway.SecretData{"access_token": "t2"}, -1); err != nil {
		t.Fatalf("write user token again: %v", err)
	}
	if err := s.Delete(ctx, "users/amzn1.ask.account.P/github"); err != nil {
		t.Fatalf("delete user token: %v", err)
	}
	if sec, err := root.Logical().Read("secret/metadata/voicegw/users/amzn1.ask.account.P/github"); err != nil || sec != nil {
		t.Fatalf("metadata after the delete: %v, %v; want nothing", sec, err)
	}
	if sec, err := root.Logical().ReadWithData("secret/data/voicegw/users/amzn1.ask.account.P/github",
		map[string][]string{"version": {"1"}}); err != nil || sec != nil {
		t.Fatalf("version 1 after the delete: %v, %v; want nothing", sec, err)
	}
	other, _ := vault.New(&config.Vault{Address: srv.Addr, KVMount: "secret", Prefix: "other", Auth: config.VaultAuth{Method: "token"}},
		vault.Options{Token: tok.Auth.ClientToken})
	if _, err := other.Read(ctx, "secret"); err == nil {
		t.Fatal("policy lets the gateway read outside its prefix")
	}
	if h := s.Health(); h != (vault.Health{Connected: true, Status: vault.StatusOK}) {
		t.Fatalf("Health with the policy token: %+v", h)
	}
}

func TestAppRole(t *testing.T) {
	srv := vaulttest.Start(t)
	root := srv.Client()
	if err := root.Sys().EnableAuthWithOptions("approle", &apiMountInput{Type: "approle"}); err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().PutPolicy("voicegw", `path "secret/data/voicegw/*" { capabilities = ["read","create","update"] }`); err != nil {
		t.Fatal(err)
	}
	// Short token TTLs force renewal and re-login during the test.
	if _, err := root.Logical().Write("auth/approle/role/voicegw", map[string]any{
		"token_policies": "voicegw", "token_ttl": "3s", "token_max_ttl": "4s", "secret_id_num_uses": 0,
	}); err != nil {
		t.Fatal(err)
	}
	rid, err := root.Logical().Read("auth/approle/role/voicegw/role-id")
	if err != nil {
		t.Fatal(err)
	}
	newSecretID := func() string {
		sec, err := root.Logical().Write("auth/approle/role/voicegw/secret-id", nil)
		if err != nil {
			t.Fatal(err)
		}
		return sec.Data["secret_id"].(string)
	}
	file := filepath.Join(t.TempDir(), "secret-id")
	if err := os.WriteFile(file, []byte(newSecretID()), 0o600); err != nil {
		t.Fatal(err)
	}
	srv.Put(t, "voicegw/services/weather", map[string]any{"api_key": "k1"})
	var requests atomic.Int64
	hc := &http.Client{Transport: countingTransport{&requests, http.DefaultTransport}}
	s, err := vault.New(&config.Vault{Address: srv.Addr, KVMount: "secret", Prefix: "voicegw",
		Auth: config.VaultAuth{Method: "approle", RoleID: rid.Data["role_id"].(string), SecretIDFile: file}},
		vault.Options{HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.Read(ctx, "services/weather"); err != nil {
		t.Fatalf("read after approle login: %v", err)
	}
	// Rotate the secret_id file: the next login must read the new one.
	if err := os.WriteFile(file, []byte(newSecretID()), 0o600); err != nil {
		t.Fatal(err)
	}
	// Past the token's max TTL every read still works: the store logs in
	// again (watcher re-login or 403 retry).
	deadline := time.Now().Add(6 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := s.Read(ctx, "services/weather"); err != nil {
			t.Fatalf("read at %s: %v", time.Until(deadline), err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if requests.Load() == 0 {
		t.Fatal("custom HTTP client not used")
	}
	if h := s.Health(); h != (vault.Health{Connected: true, Status: vault.StatusOK}) {
		t.Fatalf("Health: %+v", h)
	}
}

type countingTransport struct {
	n    *atomic.Int64
	base http.RoundTripper
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.base.RoundTrip(r)
}

type (
	apiTokenRequest = api.TokenCreateRequest
	apiMountInput   = api.EnableAuthOptions
)
