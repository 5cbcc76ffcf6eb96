package mcp

import (
	"context"
	"net/http"
	"time"

	sdkauth "github.com/modelcontextprotocol/go-sdk/auth"

	"github.com/voicegw/voicegw/gateway/config"
)

// New returns the handler of every MCP path for cfg: /mcp (behind the
// bearer-token check when mcp.auth is required) and, with auth required,
// the OAuth metadata under /.well-known/ and the endpoints under /oauth/.
// auth is nil with mcp.auth none.
func New(cfg *config.Config, eng Engine, auth *AuthServer, opts Options) http.Handler {
	mux := http.NewServeMux()
	h := NewHandler(cfg, eng, opts)
	if auth == nil || !cfg.MCP.AuthRequired() {
		mux.Handle("/mcp", h)
		return mux
	}
	mux.Handle("/mcp", auth.Protect(h))
	prm := sdkauth.ProtectedResourceMetadataHandler(auth.ResourceMetadata())
	mux.Handle("/.well-known/oauth-protected-resource", prm)
	mux.Handle("/.well-known/oauth-protected-resource/mcp", prm)
	mux.HandleFunc("/.well-known/oauth-authorization-server", auth.serveMetadata)
	// Each endpoint answers one method; any other gets the OAuth error
	// JSON with Allow (ServeMux's own 405 would be plain text).
	for _, e := range []struct {
		path, method, name string
		serve              func(context.Context, http.ResponseWriter, *http.Request)
	}{
		{"/oauth/register", http.MethodPost, "register", auth.serveRegister},
		{"/oauth/authorize", http.MethodGet, "authorize", auth.serveAuthorize},
		{"/oauth/authorize/continue", http.MethodGet, "authorize", auth.serveContinue},
		{"/oauth/authorize/consent", http.MethodPost, "consent", auth.serveConsent},
		{"/oauth/token", http.MethodPost, "token", auth.serveToken},
	} {
		mux.HandleFunc(e.path, func(w http.ResponseWriter, r *http.Request) {
			if r.Method != e.method {
				w.Header().Set("Allow", e.method)
				auth.fail(w, e.name, http.StatusMethodNotAllowed, "invalid_request", "use "+e.method, "method "+r.Method)
				return
			}
			if auth.store == nil {
				writeJSON(w, http.StatusServiceUnavailable, oauthError{Code: "temporarily_unavailable", Description: "no secret store is configured"})
				return
			}
			ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
			defer cancel()
			e.serve(ctx, w, r)
		})
	}
	return mux
}
