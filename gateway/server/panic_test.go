package server_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/voicegw/voicegw/gateway/server"
)

// TestPanicInAPage: a panic in a page handler is a logged 500, and the
// server goes on serving.
func TestPanicInAPage(t *testing.T) {
	var logs bytes.Buffer
	rt := &server.Runtime{MaxBodyBytes: 1024, Link: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("link page bug")
	})}
	h := server.New(rt, nil, slog.New(slog.NewJSONHandler(&logs, nil))).Handler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/link", nil))
	if rec.Code != http.StatusInternalServerError || strings.Contains(rec.Body.String(), "link page bug") {
		t.Fatalf("GET /link = %d %s, want a 500 without detail", rec.Code, rec.Body)
	}
	if !strings.Contains(logs.String(), "request panicked") {
		t.Fatalf("panic not logged: %s", logs.String())
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("after a panic /healthz = %d", rec.Code)
	}
}
