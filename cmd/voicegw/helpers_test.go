package main

// Helpers the end-to-end tests of this package share: a log sink, serving
// a runtime over loopback HTTP, posting Alexa requests, reading Vault.

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/voicegw/voicegw/gateway/alexa"
	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/gateway/server"
	"github.com/voicegw/voicegw/gateway/vault/vaulttest"
)

// e2eUser is the userId of the end-to-end requests.
const e2eUser = "amzn1.ask.account.E2E"

// e2eQuote is a quote upstream's answer for AMZN.
const e2eQuote = `{"data":{"name":"Amazon","price":123.45}}`

// e2eDiscard is a logger that drops everything.
var e2eDiscard = slog.New(slog.NewTextHandler(io.Discard, nil))

// syncBuffer is a bytes.Buffer safe for concurrent writers: the sink of
// a gateway's logs while its handlers run.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// e2eUpstream is an upstream that answers every request with the same
// JSON body and counts the requests.
type e2eUpstream struct {
	*httptest.Server
	hits atomic.Int64
}

// newE2EUpstream starts an upstream that answers body; it stops when tb
// ends.
func newE2EUpstream(tb testing.TB, body string) *e2eUpstream {
	u := &e2eUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	}))
	tb.Cleanup(u.Close)
	return u
}

// mustE2EConfig parses src as cmd/voicegw would load it.
func mustE2EConfig(tb testing.TB, src string) *config.Config {
	tb.Helper()
	cfg, ps := config.Parse("e2e.yaml", []byte(src), os.LookupEnv)
	if err := ps.Err(); err != nil {
		tb.Fatalf("config: %v", err)
	}
	return cfg
}

// e2eServe serves rt as voicegw serve does, on a loopback httptest server.
func e2eServe(tb testing.TB, rt *server.Runtime) *httptest.Server {
	tb.Helper()
	srv := httptest.NewServer(server.New(rt, nil, e2eDiscard).Handler())
	tb.Cleanup(srv.Close)
	return srv
}

// e2ePost sends body with header to url and returns the status and body.
func e2ePost(tb testing.TB, client *http.Client, url string, header http.Header, body []byte) (int, []byte) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		tb.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp.StatusCode, out
}

// e2eSpeech decodes a 200 Alexa response and returns its speech.
func e2eSpeech(tb testing.TB, status int, body []byte) string {
	tb.Helper()
	if status != http.StatusOK {
		tb.Fatalf("status %d, want 200: %s", status, body)
	}
	var r alexa.Response
	if err := json.Unmarshal(body, &r); err != nil {
		tb.Fatalf("not an Alexa response: %v: %s", err, body)
	}
	return r.Speech()
}

// readVault reads path below the voicegw prefix of the KV mount secret/
// as v's root token sees it; nil when absent.
func readVault(tb testing.TB, v *vaulttest.Server, path string) map[string]any {
	tb.Helper()
	sec, err := v.Client().Logical().Read("secret/data/voicegw/" + path)
	if err != nil {
		tb.Fatalf("vault read %s: %v", path, err)
	}
	if sec == nil || sec.Data == nil {
		return nil
	}
	data, _ := sec.Data["data"].(map[string]any)
	return data
}
