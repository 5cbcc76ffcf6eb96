// Package server is voicegw's HTTP front: Echo routes for the Alexa
// endpoints, health, readiness and metrics over framework-neutral
// handlers. The runtime behind the routes can be swapped while serving, so
// a configuration reload never drops a request.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/voicegw/voicegw/templates"
)

// AlexaHandler serves one Alexa request; see alexa.Handler.
type AlexaHandler interface {
	// Serve answers a request whose body has been read; ctx carries the
	// request's deadline, counted from its arrival.
	Serve(ctx context.Context, skill string, header http.Header, body []byte) (int, []byte)
	// Reject logs and counts a request refused before its body could be
	// handed to Serve (413 for a body over MaxBodyBytes, 400 for one that
	// could not be read in time) and returns the JSON error body.
	Reject(ctx context.Context, status int, err error) []byte
}

// Runtime is what one loaded configuration serves.
type Runtime struct {
	Alexa AlexaHandler
	// MaxBodyBytes caps Alexa request bodies (413 above).
	MaxBodyBytes int64
	// Deadline is server.deadline: the budget of an Alexa request from
	// the moment it arrives, body reading and verification included, to
	// its answer. Zero leaves the budget to the engine alone.
	Deadline time.Duration
	// Ready reports the state of the runtime's dependencies for /readyz
	// (nil: ready, no Vault). It must not make a request: probes are
	// frequent and must not load Vault.
	Ready func() Readiness
	// Status adds entries to the /readyz JSON, e.g. that secrets are
	// served from memory (serve --secrets).
	Status map[string]string
	// Link serves every method and path under /link (the account-linking
	// pages); nil: linking is off and /link answers 404.
	Link http.Handler
	// MCP serves /mcp, the OAuth metadata under /.well-known/ and /oauth/
	// (SPEC 13); nil: MCP is off and they answer 404.
	MCP http.Handler
	// ClientIP returns the client's address for rate limits and logs,
	// believing X-Forwarded-For only from trusted proxies (nil: the peer).
	ClientIP func(*http.Request) string
}

// ClientIPFunc returns the Runtime.ClientIP of server.trusted_proxies:
// when the peer is in trusted, the client is the rightmost
// X-Forwarded-For address that is not (SPEC 10); loopback and private
// peers are trusted only when listed.
func ClientIPFunc(trusted []*net.IPNet) func(*http.Request) string {
	if len(trusted) == 0 {
		return nil
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, n := range trusted {
		opts = append(opts, echo.TrustIPRange(n))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// Readiness is what /readyz reports of a runtime's dependencies.
type Readiness struct {
	// Vault is the secret store's state: "ok", "unreachable", "token
	// invalid", or "none" without a store.
	Vault string
	// Reason, when set, makes /readyz answer 503 with it. It is a short
	// phrase from a fixed vocabulary ("vault unreachable", "vault token
	// invalid"), never an internal error text.
	Reason string
}

// Server serves the current runtime.
type Server struct {
	echo    *echo.Echo
	current atomic.Pointer[Runtime]
	// draining is set when graceful shutdown starts: /readyz answers 503
	// so that load balancers stop sending new requests.
	draining atomic.Bool
	log      *slog.Logger
	// ShutdownTimeout bounds how long in-flight requests may finish.
	ShutdownTimeout time.Duration
}

// New returns a server for rt; metrics may be nil.
func New(rt *Runtime, metrics http.Handler, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	s := &Server{echo: e, log: log, ShutdownTimeout: 10 * time.Second}
	s.current.Store(rt)
	e.HTTPErrorHandler = s.errorHandler
	e.Pre(s.clientAddr)
	// A panic outside a turn (the alexa package recovers its own) becomes
	// a logged 500, not a dropped connection.
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			log.Error("request panicked", "path", c.Path(), "error", err.Error(), "stack", string(stack))
			return err
		},
	}))
	e.POST("/alexa", s.alexa)
	e.POST("/alexa/:skill", s.alexa)
	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok\n") })
	e.GET("/readyz", s.ready)
	if metrics != nil {
		e.GET("/metrics", echo.WrapHandler(metrics))
	}
	// Every method and path under /link goes to the linking pages, so
	// that even a 404 or 405 there is a page with the security headers.
	link := echo.WrapHandler(http.HandlerFunc(s.link))
	e.Any("/link", link)
	e.Any("/link/*", link)
	mcp := echo.WrapHandler(http.HandlerFunc(s.mcp))
	for _, p := range []string{"/mcp", "/oauth/*", "/.well-known/oauth-protected-resource",
		"/.well-known/oauth-protected-resource/*", "/.well-known/oauth-authorization-server",
		"/.well-known/oauth-authorization-server/*"} {
		e.Any(p, mcp)
	}
	return s
}

// Swap replaces the runtime; requests already running finish on the old one.
func (s *Server) Swap(rt *Runtime) { s.current.Store(rt) }

// Handler returns the server's http.Handler, for tests.
func (s *Server) Handler() http.Handler { return s.echo }

// Serve serves on ln until ctx is done, then shuts down gracefully:
// in-flight requests finish, new ones are refused.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.echo,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.draining.Store(true)
	sctx, cancel := context.WithTimeout(context.Background(), s.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (s *Server) alexa(c echo.Context) error {
	arrival := time.Now()
	rt := s.current.Load()
	req := c.Request()
	ctx := req.Context()
	var rc *http.ResponseController
	if rt.Deadline > 0 {
		deadline := arrival.Add(rt.Deadline)
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
		// A body that trickles in must not hold the request past its
		// deadline: the read gives up then, and the request is refused.
		rc = http.NewResponseController(c.Response())
		if err := rc.SetReadDeadline(deadline); err != nil {
			rc = nil
		}
	}
	max := rt.MaxBodyBytes
	if req.ContentLength > max {
		return c.JSONBlob(http.StatusRequestEntityTooLarge, rt.Alexa.Reject(ctx, http.StatusRequestEntityTooLarge,
			fmt.Errorf("Content-Length %d is over max_body_bytes %d", req.ContentLength, max)))
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, max+1))
	if err != nil {
		// The rest of the body is not waited for: the connection closes
		// after the answer.
		c.Response().Header().Set(echo.HeaderConnection, "close")
		return c.JSONBlob(http.StatusBadRequest, rt.Alexa.Reject(ctx, http.StatusBadRequest,
			fmt.Errorf("could not read body: %w", err)))
	}
	if int64(len(body)) > max {
		return c.JSONBlob(http.StatusRequestEntityTooLarge, rt.Alexa.Reject(ctx, http.StatusRequestEntityTooLarge,
			fmt.Errorf("body is over max_body_bytes %d", max)))
	}
	if rc != nil {
		// The body is in: the connection's own timeouts apply again.
		_ = rc.SetReadDeadline(time.Time{})
	}
	status, out := rt.Alexa.Serve(ctx, c.Param("skill"), req.Header, body)
	return c.JSONBlob(status, out)
}

// ready answers /readyz: 503 while no configuration is loaded, while the
// process drains, or while the runtime reports a reason (Vault never
// reached since start); 200 otherwise, with the state of Vault, which may
// be "unreachable" while turns are served from cache. It makes no request.
func (s *Server) ready(c echo.Context) error {
	rt := s.current.Load()
	unavailable := func(reason, vault string) error {
		body := map[string]string{"status": "unavailable", "reason": reason}
		if vault != "" {
			body["vault"] = vault
		}
		if rt != nil {
			body = withStatus(body, rt.Status)
		}
		return c.JSON(http.StatusServiceUnavailable, body)
	}
	if s.draining.Load() {
		return unavailable("draining", "")
	}
	if rt == nil {
		return unavailable("configuration not loaded", "")
	}
	r := Readiness{Vault: "none"}
	if rt.Ready != nil {
		r = rt.Ready()
	}
	if r.Reason != "" {
		return unavailable(r.Reason, r.Vault)
	}
	return c.JSON(http.StatusOK, withStatus(map[string]string{"status": "ready", "vault": r.Vault}, rt.Status))
}

// withStatus adds a runtime's status entries to a /readyz body.
func withStatus(body, status map[string]string) map[string]string {
	for k, v := range status {
		if _, ok := body[k]; !ok {
			body[k] = v
		}
	}
	return body
}

// clientAddr replaces the request's RemoteAddr by the client's address
// when the peer is a trusted proxy, so that the linking flow's limits and
// every log line see the client, not the load balancer.
func (s *Server) clientAddr(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if rt := s.current.Load(); rt != nil && rt.ClientIP != nil {
			req := c.Request()
			req.RemoteAddr = net.JoinHostPort(rt.ClientIP(req), "0")
		}
		return next(c)
	}
}

func (s *Server) link(w http.ResponseWriter, r *http.Request) {
	rt := s.current.Load()
	if rt.Link == nil {
		templates.SecurityHeaders(w.Header(), templates.StrictCSP)
		http.Error(w, "account linking is not configured", http.StatusNotFound)
		return
	}
	rt.Link.ServeHTTP(w, r)
}

func (s *Server) mcp(w http.ResponseWriter, r *http.Request) {
	rt := s.current.Load()
	if rt.MCP == nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error":"MCP is not enabled"}`))
		return
	}
	rt.MCP.ServeHTTP(w, r)
}

func jsonError(c echo.Context, status int, msg string) error {
	b, _ := json.Marshal(map[string]string{"error": msg})
	return c.JSONBlob(status, b)
}

// errorHandler answers Echo's own errors (unknown route, wrong method) as
// JSON and never leaks internal detail.
func (s *Server) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status := http.StatusInternalServerError
	msg := "internal error"
	var he *echo.HTTPError
	if errors.As(err, &he) {
		status = he.Code
		msg = http.StatusText(status)
	} else {
		s.log.Error("request failed", "path", c.Path(), "error", err.Error())
	}
	if p := c.Request().URL.Path; p == "/link" || strings.HasPrefix(p, "/link/") {
		templates.SecurityHeaders(c.Response().Header(), templates.StrictCSP)
	}
	_ = jsonError(c, status, msg)
}
