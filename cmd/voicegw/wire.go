package main

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"golang.org/x/time/rate"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/alexa"
	"github.com/voicegw/voicegw/gateway/auth"
	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/gateway/engine"
	"github.com/voicegw/voicegw/gateway/inmem"
	"github.com/voicegw/voicegw/gateway/linking"
	"github.com/voicegw/voicegw/gateway/mcp"
	"github.com/voicegw/voicegw/gateway/metrics"
	"github.com/voicegw/voicegw/gateway/ratelimit"
	"github.com/voicegw/voicegw/gateway/server"
	"github.com/voicegw/voicegw/gateway/upstream"
	"github.com/voicegw/voicegw/gateway/vault"
)

// deps are the process-wide parts a runtime is built from; they outlive
// configuration reloads.
type deps struct {
	log     *slog.Logger
	client  *upstream.Client
	metrics *metrics.Metrics
	// links are the account-linking limits (codes entered per client, new
	// codes per minute): per process, kept across reloads so that a
	// SIGHUP frees no blocked client.
	links *linking.Limits
	// verify holds the roots and certificate fetcher of request
	// verification; zero means the system roots and HTTPS downloads.
	// Tests inject a test CA here; nothing else can skip a check.
	verify alexa.VerifierConfig
	// verifierKept is the verifier of the last pipeline and its tolerance,
	// kept across reloads with its certificate cache.
	verifierKept      *alexa.Verifier
	verifierTolerance time.Duration
	// progress sends progressive responses; tests widen its Allow.
	progress alexa.Progressive
	// vault is the open Vault store and the section it was opened for, so a
	// reload that leaves the section alone keeps its login and cache.
	vault    *vault.Store
	vaultCfg config.Vault
	// creds is the credential cache of the last pipeline, kept across a
	// reload with the same store and ttl: a SIGHUP while Vault is down
	// must not throw away the secrets that still answer.
	creds        *auth.Provider
	credsStore   gateway.SecretStore
	credsTTL     time.Duration
	credsTimeout time.Duration
	// retireAfter is how long a Vault store replaced by a reload lives on
	// for the turns still running on it before its token is revoked.
	retireAfter time.Duration
	// secrets, when set (--secrets), is the in-memory store used in place
	// of Vault whatever the config's vault section says; secretsFile is
	// where it was loaded from.
	secrets     *inmem.Store
	secretsFile string
	// observe, when set, is told about every turn (invoke's exit status),
	// and passes the reports on to the metrics.
	observe *outcomeRecorder
	// mcpRegister and mcpAuthorize bound dynamic MCP client
	// registrations and authorizations per process, across reloads.
	mcpRegister, mcpAuthorize *rate.Limiter
	mcpClients                *ratelimit.Window
}

// useSecrets makes store the secret store of every runtime, in place of
// Vault (SPEC 11).
func (d *deps) useSecrets(store *inmem.Store, file string) {
	d.secrets, d.secretsFile = store, file
}

// defaultRetireAfter outlasts every turn: server.deadline is at most a
// few seconds above Alexa's 8.
const defaultRetireAfter = 30 * time.Second

func newDeps(log *slog.Logger) *deps {
	return &deps{log: log, client: upstream.New(upstream.DefaultOptions), metrics: metrics.New(),
		links: linking.NewLimits(0), mcpRegister: rate.NewLimiter(1, 20), mcpAuthorize: rate.NewLimiter(5, 50),
		mcpClients:  ratelimit.New(mcp.ClientAttempts, mcp.ClientWindow, 0),
		retireAfter: defaultRetireAfter}
}

// handler wires the pipeline for cfg over store (nil: no Vault). verify is
// false for invoke and scenarios, which run without signatures.
func (d *deps) handler(cfg *config.Config, store gateway.SecretStore, verify bool) *alexa.Handler {
	return d.pipeline(cfg, store, verify, d.linker(cfg, store))
}

// pipeline wires the Alexa handler with the given account-linking flow
// (nil: none).
func (d *deps) pipeline(cfg *config.Config, store gateway.SecretStore, verify bool, l *linking.Linker) *alexa.Handler {
	ttl, timeout := config.DefaultCacheTTL, config.DefaultVaultTimeout
	if cfg.Vault != nil {
		ttl, timeout = cfg.Vault.CacheTTL.D, cfg.Vault.Timeout.D
	}
	creds := d.credentials(store, ttl, timeout)
	opts := engine.Options{
		Caller:      d.client,
		Credentials: creds,
		Progress:    &d.progress,
		Logger:      d.log,
	}
	if l != nil {
		opts.Linker = l
		opts.Forgetter = forgetter{links: l, creds: creds}
	}
	if d.metrics != nil {
		opts.Observer = d.metrics
	}
	if d.observe != nil {
		if d.metrics != nil {
			d.observe.next = d.metrics
		}
		opts.Observer = d.observe
	}
	eng := engine.New(cfg, opts)
	h := &alexa.Handler{Engine: eng, Logger: d.log}
	if d.metrics != nil {
		h.Observer = d.metrics
	}
	if verify {
		h.Verifier = d.verifier(cfg.Alexa.TimestampTolerance.Or(config.DefaultTimestampTolerance))
	}
	return h
}

// verifier returns the request verifier for tolerance, the previous one
// when it is unchanged: a reload must not drop the certificate cache, or
// every reload costs the next request a download from Amazon.
func (d *deps) verifier(tolerance time.Duration) *alexa.Verifier {
	if d.verifierKept == nil || d.verifierTolerance != tolerance {
		vc := d.verify
		vc.Tolerance = tolerance
		d.verifierKept, d.verifierTolerance = alexa.NewVerifier(vc), tolerance
	}
	return d.verifierKept
}

// forgetter forgets a user who removed the skill: their entries in the
// secret store (linking), then what the credential cache holds of them.
type forgetter struct {
	links *linking.Linker
	creds *auth.Provider
}

func (f forgetter) Forget(ctx context.Context, userID string) error {
	err := f.links.Forget(ctx, userID)
	f.creds.Forget(userID)
	return err
}

// credentials returns the credential provider for store, ttl and
// timeout, the previous one when all are unchanged. A replaced provider
// stops its background reads (turns still running on it read in the
// foreground).
func (d *deps) credentials(store gateway.SecretStore, ttl, timeout time.Duration) *auth.Provider {
	if d.creds == nil || d.credsStore != store || d.credsTTL != ttl || d.credsTimeout != timeout {
		if d.creds != nil {
			d.creds.Close()
		}
		d.creds = auth.New(store, ttl).WithLogger(d.log).WithTimeout(timeout)
		if d.metrics != nil {
			d.creds.WithObserver(d.metrics)
		}
		d.credsStore, d.credsTTL, d.credsTimeout = store, ttl, timeout
	}
	return d.creds
}

// linker returns the account-linking flow, or nil without a secret store
// to keep its codes and tokens in.
func (d *deps) linker(cfg *config.Config, store gateway.SecretStore) *linking.Linker {
	if store == nil {
		return nil
	}
	opts := linking.Options{Logger: d.log, Limits: d.links}
	if d.metrics != nil {
		opts.Observer = d.metrics
	}
	l, err := linking.New(cfg, store, opts)
	if err != nil {
		d.log.Error("account linking disabled", "error", err.Error())
		return nil
	}
	return l
}

// runtime wires a server runtime for cfg.
func (d *deps) runtime(cfg *config.Config, store gateway.SecretStore) *server.Runtime {
	l := d.linker(cfg, store)
	h := d.pipeline(cfg, store, cfg.Alexa.Verifying(), l)
	rt := &server.Runtime{
		Alexa:        h,
		MaxBodyBytes: cfg.Server.MaxBodyBytes,
		Deadline:     cfg.Server.Deadline.Or(config.DefaultDeadline),
		ClientIP:     server.ClientIPFunc(cfg.Server.TrustedNets),
		Ready:        readiness(store),
	}
	if l != nil {
		rt.Link = l
	}
	if d.secrets != nil && store == gateway.SecretStore(d.secrets) {
		rt.Status = map[string]string{"secrets": "in memory from " + d.secretsFile + ", not Vault (local development)"}
	}
	if cfg.MCP.On() {
		rt.MCP = d.mcp(cfg, store, h.Engine, l)
	}
	return rt
}

// mcp wires the MCP platform (SPEC 13) over the same engine as Alexa: the
// tools, and with auth required the authorization server whose accounts
// are linked through l.
func (d *deps) mcp(cfg *config.Config, store gateway.SecretStore, eng mcp.Engine, l *linking.Linker) http.Handler {
	var as *mcp.AuthServer
	if cfg.MCP.AuthRequired() {
		var linker mcp.Linker
		if l != nil {
			linker = l
		}
		as = mcp.NewAuthServer(cfg, store, linker, mcp.AuthOptions{Logger: d.log, Register: d.mcpRegister, Authorize: d.mcpAuthorize,
			Clients: d.mcpClients})
	}
	return mcp.New(cfg, eng, as, mcp.Options{Logger: d.log, Version: version})
}

// readiness derives /readyz from the Vault store's recent requests,
// with no request of its own (SPEC 10): not ready only while Vault was
// never reached since start; during a later outage ready, saying so.
func readiness(store gateway.SecretStore) func() server.Readiness {
	vs, ok := store.(*vault.Store)
	if !ok {
		return func() server.Readiness { return server.Readiness{Vault: "none"} }
	}
	return func() server.Readiness {
		h := vs.Health()
		r := server.Readiness{Vault: h.Status}
		if !h.Connected {
			r.Reason = "vault unreachable"
			if h.Status == vault.StatusTokenInvalid {
				r.Reason = "vault token invalid"
			}
		}
		return r
	}
}

// store returns the secret store cfg names: nil without a vault section.
// The same section gets the same store; a changed one a new store, and the
// old one stops renewing its token and, once the turns still running on it
// have had time to finish, revokes it.
func (d *deps) store(cfg *config.Config) (gateway.SecretStore, error) {
	if d.secrets != nil {
		return d.secrets, nil
	}
	if cfg.Vault == nil {
		return nil, nil
	}
	if d.vault != nil && d.vaultCfg == *cfg.Vault {
		return d.vault, nil
	}
	s, err := vault.New(cfg.Vault, vault.Options{Logger: d.log})
	if err != nil {
		return nil, err
	}
	if old := d.vault; old != nil {
		time.AfterFunc(d.retireAfter, func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = old.Revoke(ctx) // logs its outcome
		})
	}
	d.vault, d.vaultCfg = s, *cfg.Vault
	return s, nil
}

// closeVault revokes the token of the open Vault store, if any: the CLI
// commands call it before they exit.
func (d *deps) closeVault() {
	if d.vault == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = d.vault.Revoke(ctx) // logs its outcome
}

// serveRuntime wires the runtime serve uses for cfg. A new Vault store
// logs in in the background at once, so /readyz tells when Vault is
// reached.
func (d *deps) serveRuntime(cfg *config.Config) (*server.Runtime, error) {
	store, err := d.store(cfg)
	if err != nil {
		return nil, err
	}
	if vs, ok := store.(*vault.Store); ok {
		vs.Start()
	}
	return d.runtime(cfg, store), nil
}

// server returns the HTTP server for rt; /metrics is on it unless the
// configuration gives metrics a listener of their own.
func (d *deps) server(rt *server.Runtime, cfg *config.Config) *server.Server {
	if cfg.Server.MetricsListen != "" {
		return server.New(rt, nil, d.log)
	}
	return server.New(rt, d.metrics.Handler(), d.log)
}
