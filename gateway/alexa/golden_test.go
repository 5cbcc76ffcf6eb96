package alexa_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/voicegw/voicegw/gateway/inmem"
)

var updateGolden = flag.Bool("update", false, "rewrite the response.json of the golden files in testdata/golden")

// goldenDir holds the end-to-end cases, one txtar file each.
var goldenDir = filepath.Join("..", "..", "testdata", "golden")

// goldenStub is one upstream answer of a golden case; the n-th upstream
// request gets the n-th stub (the last one repeats).
type goldenStub struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	// Body is sent as JSON; Raw, when set, is sent as is.
	Body json.RawMessage `json:"body"`
	Raw  *string         `json:"raw"`
}

// goldenRequest is what the n-th upstream request must look like.
type goldenRequest struct {
	Method string `json:"method"`
	// Path is the path as sent, escaped.
	Path string `json:"path"`
	// Query, when not nil, is the whole query.
	Query map[string]string `json:"query"`
	// Headers must be present with these values; "" means absent.
	Headers map[string]string `json:"headers"`
	// Body is compared as JSON; RawBody byte for byte.
	Body    json.RawMessage `json:"body"`
	RawBody *string         `json:"raw_body"`
}

// TestGolden runs every testdata/golden/*.txtar case end to end: the
// config (its services' base_url is ${VOICEGW_TEST_UPSTREAM}) is parsed
// and wired as voicegw serve wires it, request.json goes through
// Handler.Serve against an httptest upstream that answers upstream.json,
// and the Alexa response must equal response.json as normalized JSON. The
// upstream requests must match requests.json when the case has one
// ([] asserts that no request was sent). Sections: config.yaml,
// request.json, upstream.json (a list of {status, headers, body | raw}),
// secrets.json (the in-memory secret store: path to fields), requests.json,
// response.json. Run with -update to rewrite response.json.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.txtar"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no golden files in %s", goldenDir)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".txtar")
		t.Run(name, func(t *testing.T) { runGolden(t, file) })
	}
}

func runGolden(t *testing.T, file string) {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	ar := parseTxtar(data)
	section := func(name string, required bool) []byte {
		b, ok := ar.file(name)
		if !ok && required {
			t.Fatalf("%s: no %s section", file, name)
		}
		return b
	}
	cfgText := section("config.yaml", true)
	reqJSON := section("request.json", true)

	var stubs []goldenStub
	if b := section("upstream.json", false); b != nil {
		mustUnmarshal(t, file, "upstream.json", b, &stubs)
	}
	var secrets map[string]map[string]string
	if b := section("secrets.json", false); b != nil {
		mustUnmarshal(t, file, "secrets.json", b, &secrets)
	}

	var mu sync.Mutex
	n := 0
	up := MustUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		i := n
		n++
		mu.Unlock()
		if len(stubs) == 0 {
			http.Error(w, "no stub", http.StatusNotImplemented)
			return
		}
		if i >= len(stubs) {
			i = len(stubs) - 1
		}
		s := stubs[i]
		for k, v := range s.Headers {
			w.Header().Set(k, v)
		}
		if s.Raw == nil && w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "application/json")
		}
		status := s.Status
		if status == 0 {
			status = http.StatusOK
		}
		w.WriteHeader(status)
		if s.Raw != nil {
			_, _ = io.WriteString(w, *s.Raw)
		} else {
			_, _ = w.Write(s.Body)
		}
	})
	h := MustPipeline(t, string(cfgText), inmem.New(secrets))

	status, body := h.Serve(context.Background(), "", nil, reqJSON)
	if status != http.StatusOK {
		t.Fatalf("Serve: status %d: %s", status, body)
	}
	got, err := normalizeJSON(body)
	if err != nil {
		t.Fatalf("Serve answered invalid JSON: %v: %s", err, body)
	}

	if b, ok := ar.file("requests.json"); ok {
		var want []goldenRequest
		mustUnmarshal(t, file, "requests.json", b, &want)
		checkRequests(t, want, up.Requests())
	}

	if *updateGolden {
		ar.set("response.json", []byte(got))
		if err := os.WriteFile(file, ar.format(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	wantRaw := section("response.json", true)
	want, err := normalizeJSON(wantRaw)
	if err != nil {
		t.Fatalf("%s: response.json: %v", file, err)
	}
	if got != want {
		t.Errorf("response differs from %s (run with -update to accept)\n--- got\n%s--- want\n%s", file, got, want)
	}
}

func mustUnmarshal(t *testing.T, file, section string, data []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %s: %v", file, section, err)
	}
}

func checkRequests(t *testing.T, want []goldenRequest, got []*upstreamRequest) {
	t.Helper()
	if len(got) != len(want) {
		var names []string
		for _, r := range got {
			names = append(names, r.Method+" "+r.EscapedPath+"?"+r.RawQuery)
		}
		t.Fatalf("upstream got %d requests %q, want %d", len(got), names, len(want))
	}
	for i, w := range want {
		g := got[i]
		at := fmt.Sprintf("upstream request %d", i+1)
		if w.Method != "" && w.Method != g.Method {
			t.Errorf("%s: method %s, want %s", at, g.Method, w.Method)
		}
		if w.Path != "" && w.Path != g.EscapedPath {
			t.Errorf("%s: path %q, want %q", at, g.EscapedPath, w.Path)
		}
		if w.Query != nil {
			gotQ := map[string]string{}
			for k, v := range g.Query {
				if len(v) != 1 {
					t.Errorf("%s: query %s has %d values %q", at, k, len(v), v)
				}
				gotQ[k] = v[0]
			}
			if !equalMaps(gotQ, w.Query) {
				t.Errorf("%s: query %v, want %v (raw %q)", at, gotQ, w.Query, g.RawQuery)
			}
		}
		keys := make([]string, 0, len(w.Headers))
		for k := range w.Headers {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := w.Headers[k]
			vals, present := g.Header[http.CanonicalHeaderKey(k)]
			switch {
			case v == "" && present:
				t.Errorf("%s: header %s is %q, want it absent", at, k, vals)
			case v != "" && (len(vals) != 1 || vals[0] != v):
				t.Errorf("%s: header %s is %q, want %q", at, k, vals, v)
			}
		}
		if w.Body != nil {
			gb, err := normalizeJSON(g.Body)
			if err != nil {
				t.Errorf("%s: body is not JSON: %v: %q", at, err, g.Body)
			} else if wb, _ := normalizeJSON(w.Body); gb != wb {
				t.Errorf("%s: body\n%s want\n%s", at, gb, wb)
			}
		}
		if w.RawBody != nil && *w.RawBody != string(g.Body) {
			t.Errorf("%s: body %q, want %q", at, g.Body, *w.RawBody)
		}
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
