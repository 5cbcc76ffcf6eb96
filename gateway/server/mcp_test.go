package server_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/voicegw/voicegw/gateway/server"
)

// TestMCPRoutes: every MCP and OAuth path reaches the runtime's MCP
// handler, swapped with the runtime; without one they answer 404.
func TestMCPRoutes(t *testing.T) {
	paths := []string{"/mcp", "/oauth/register", "/oauth/authorize", "/oauth/authorize/continue", "/oauth/token",
		"/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp",
		"/.well-known/oauth-authorization-server"}
	rt := &server.Runtime{MaxBodyBytes: 1024}
	s := server.New(rt, nil, quiet)
	for _, p := range paths {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p, nil))
		if rec.Code != http.StatusNotFound {
			t.Errorf("MCP off: GET %s = %d, want 404", p, rec.Code)
		}
	}
	var seen []string
	s.Swap(&server.Runtime{MaxBodyBytes: 1024, MCP: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.Method+" "+r.URL.Path)
		w.WriteHeader(http.StatusTeapot)
	})})
	for _, p := range paths {
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, httptest.NewRequest(m, p, nil))
			if rec.Code != http.StatusTeapot {
				t.Errorf("MCP on: %s %s = %d, want the MCP handler's answer", m, p, rec.Code)
			}
		}
	}
	if len(seen) != 3*len(paths) {
		t.Errorf("MCP handler saw %d requests, want %d", len(seen), 3*len(paths))
	}
}
