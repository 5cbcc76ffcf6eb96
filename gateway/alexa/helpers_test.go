package alexa_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/alexa"
	"github.com/voicegw/voicegw/gateway/auth"
	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/gateway/engine"
	"github.com/voicegw/voicegw/gateway/inmem"
	"github.com/voicegw/voicegw/gateway/upstream"
)

// upstreamEnv is the environment variable the test configs expand into
// their services' base_url.
const upstreamEnv = "VOICEGW_TEST_UPSTREAM"

// testUser is the userId of the requests the tests build.
const testUser = "amzn1.ask.account.TEST"

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// MustPipeline parses src (with ${VAR} expanded from the environment, as
// config.Load does) and wires the pipeline exactly as cmd/voicegw/wire.go
// does: engine over the shared upstream client and an auth provider over
// store, under an alexa.Handler without verification.
func MustPipeline(tb testing.TB, src string, store gateway.SecretStore) *alexa.Handler {
	tb.Helper()
	cfg, ps := config.Parse("test.yaml", []byte(src), os.LookupEnv)
	if err := ps.Err(); err != nil {
		tb.Fatalf("config: %v", err)
	}
	if store == nil {
		store = inmem.New(nil)
	}
	ttl := config.DefaultCacheTTL
	if cfg.Vault != nil {
		ttl = cfg.Vault.CacheTTL.D
	}
	client := upstream.New(upstream.DefaultOptions)
	tb.Cleanup(client.CloseIdle)
	eng := engine.New(cfg, engine.Options{
		Caller:      client,
		Credentials: auth.New(store, ttl),
		Logger:      quietLog,
	})
	return &alexa.Handler{Engine: eng, Logger: quietLog}
}

// upstreamRequest is an upstream request as the httptest server received it.
type upstreamRequest struct {
	Method      string
	EscapedPath string
	RawQuery    string
	Query       url.Values
	Header      http.Header
	Body        []byte
}

// upstreamRecorder is an upstream that records every request and answers with
// the handler it is given.
type upstreamRecorder struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []*upstreamRequest
}

// MustUpstream starts an httptest upstream that records requests and
// answers with h (which may be nil: 200 {}), and points upstreamEnv at it.
func MustUpstream(tb testing.TB, h http.HandlerFunc) *upstreamRecorder {
	tb.Helper()
	rec := &upstreamRecorder{}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, &upstreamRequest{
			Method:      r.Method,
			EscapedPath: r.URL.EscapedPath(),
			RawQuery:    r.URL.RawQuery,
			Query:       r.URL.Query(),
			Header:      r.Header.Clone(),
			Body:        body,
		})
		rec.mu.Unlock()
		if h == nil {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, "{}")
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		h(w, r)
	}))
	tb.Cleanup(rec.Close)
	tb.Setenv(upstreamEnv, rec.URL)
	return rec
}

// Requests returns the requests received so far.
func (r *upstreamRecorder) Requests() []*upstreamRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*upstreamRequest(nil), r.reqs...)
}

// Hits returns how many requests the upstream received.
func (r *upstreamRecorder) Hits() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

// jsonHandler answers every request with status and body.
func jsonHandler(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// MustDecodeResponse decodes an Alexa response body, failing the test when
// status is not 200 or the body is not a response.
func MustDecodeResponse(tb testing.TB, status int, body []byte) *alexa.Response {
	tb.Helper()
	if status != http.StatusOK {
		tb.Fatalf("status %d, want 200: %s", status, body)
	}
	var resp alexa.Response
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&resp); err != nil {
		tb.Fatalf("response is not JSON: %v: %s", err, body)
	}
	return &resp
}

// intentRequest builds an IntentRequest for the test user.
func buildIntent(envAppID, intent string, slots map[string]string) []byte {
	return alexa.BuildRequest(alexa.RequestSpec{
		ApplicationID: envAppID,
		UserID:        testUser,
		Type:          "IntentRequest",
		Intent:        intent,
		Slots:         slots,
	})
}

// normalizeJSON re-encodes JSON with sorted keys and indentation, so two
// documents compare equal exactly when they hold the same values.
func normalizeJSON(data []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", err
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", errors.New("data after the JSON value")
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return b.String(), nil
}

// txtar is a minimal reader and writer of the txtar format
// (golang.org/x/tools/txtar): a comment, then files introduced by
// "-- NAME --" lines.
type txtar struct {
	Comment []byte
	Files   []txtarFile
}

type txtarFile struct {
	Name string
	Data []byte
}

func parseTxtar(data []byte) *txtar {
	a := &txtar{}
	var cur *txtarFile
	for len(data) > 0 {
		line := data
		next := []byte(nil)
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, next = data[:i+1], data[i+1:]
		} else {
			next = nil
		}
		data = next
		trimmed := strings.TrimRight(string(line), "\r\n")
		if strings.HasPrefix(trimmed, "-- ") && strings.HasSuffix(trimmed, " --") && len(trimmed) > 6 {
			a.Files = append(a.Files, txtarFile{Name: strings.TrimSpace(trimmed[3 : len(trimmed)-3])})
			cur = &a.Files[len(a.Files)-1]
			continue
		}
		if cur == nil {
			a.Comment = append(a.Comment, line...)
		} else {
			cur.Data = append(cur.Data, line...)
		}
	}
	return a
}

func (a *txtar) file(name string) ([]byte, bool) {
	for _, f := range a.Files {
		if f.Name == name {
			return f.Data, true
		}
	}
	return nil, false
}

func (a *txtar) set(name string, data []byte) {
	for i := range a.Files {
		if a.Files[i].Name == name {
			a.Files[i].Data = data
			return
		}
	}
	a.Files = append(a.Files, txtarFile{Name: name, Data: data})
}

func (a *txtar) format() []byte {
	var b bytes.Buffer
	b.Write(a.Comment)
	for _, f := range a.Files {
		b.WriteString("-- " + f.Name + " --\n")
		b.Write(f.Data)
		if len(f.Data) > 0 && f.Data[len(f.Data)-1] != '\n' {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}
