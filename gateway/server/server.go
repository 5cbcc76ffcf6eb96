// Package server is voicegw's HTTP front: Echo routes for the Alexa
// endpoints, health, readiness and metrics over framework-neutral
// handlers. The runtime behind the routes can be swapped while serving, so
// a configuration reload never drops a request.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// AlexaHandler serves one Alexa request; see alexa.Handler.
type AlexaHandler interface {
	Serve(ctx context.Context, skill string, header http.Header, body []byte) (int, []byte)
}

// Runtime is what one loaded configuration serves.
type Runtime struct {
	Alexa AlexaHandler
	// MaxBodyBytes caps Alexa request bodies (413 above).
	MaxBodyBytes int64
	// Ready reports the state of the runtime's dependencies for /readyz
	// (nil: ready, no Vault). It must not make a request: probes are
	// frequent and must not load Vault.
	Ready func() Readiness
	// Routes adds further routes (the account-linking pages) to a group
	// that always dispatches to the current runtime.
	Link http.Handler
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
	link := echo.WrapHandler(http.HandlerFunc(s.link))
	e.GET("/link", link)
	e.POST("/link", link)
	e.GET("/link/*", link)
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
	rt := s.current.Load()
	req := c.Request()
	max := rt.MaxBodyBytes
	if req.ContentLength > max {
		return jsonError(c, http.StatusRequestEntityTooLarge, "body too large")
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, max+1))
	if err != nil {
		return jsonError(c, http.StatusBadRequest, "could not read body")
	}
	if int64(len(body)) > max {
		return jsonError(c, http.StatusRequestEntityTooLarge, "body too large")
	}
	status, out := rt.Alexa.Serve(req.Context(), c.Param("skill"), req.Header, body)
	return c.JSONBlob(status, out)
}

// ready answers /readyz: 503 while no configuration is loaded, while the
// process drains, or while the runtime reports a reason (Vault never
// reached since start); 200 otherwise, with the state of Vault, which may
// be "unreachable" while turns are served from cache. It makes no request.
func (s *Server) ready(c echo.Context) error {
	unavailable := func(reason, vault string) error {
		body := map[string]string{"status": "unavailable", "reason": reason}
		if vault != "" {
			body["vault"] = vault
		}
		return c.JSON(http.StatusServiceUnavailable, body)
	}
	if s.draining.Load() {
		return unavailable("draining", "")
	}
	rt := s.current.Load()
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
	return c.JSON(http.StatusOK, map[string]string{"status": "ready", "vault": r.Vault})
}

func (s *Server) link(w http.ResponseWriter, r *http.Request) {
	rt := s.current.Load()
	if rt.Link == nil {
		http.Error(w, "account linking is not configured", http.StatusNotFound)
		return
	}
	rt.Link.ServeHTTP(w, r)
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
	_ = jsonError(c, status, msg)
}
