package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/voicegw/voicegw/gateway/alexa"
	"github.com/voicegw/voicegw/gateway/inmem"
)

// hostileMaxBody is server.max_body_bytes of the hostile-input config.
const hostileMaxBody = 4096

// hostileConfig has one skill whose intent calls a linked service, so a
// request that got through would read the user's token from the secret
// store and call the upstream; %s is the upstream.
const hostileConfig = `version: 1
server:
  max_body_bytes: 4096
  deadline: 2s
alexa:
  verify: false
services:
  api:
    base_url: %s
    timeout: 1s
    auth: { type: linked }
skills:
  echo:
    application_id: amzn1.ask.skill.hostile
    intents:
      Repeat:
        samples: ["repeat {Text}"]
        slots:
          Text: { type: AMAZON.SearchQuery }
        call:
          service: api
          path: /v1/echo/{{ .slots.Text }}
          extract:
            text: { path: text, required: true }
        say: "You said {{ .text }}."
`

// hostileEnvelope returns a valid Repeat request after mutate has changed
// its decoded form.
func hostileEnvelope(tb testing.TB, mutate func(m map[string]any)) []byte {
	tb.Helper()
	body := alexa.BuildRequest(alexa.RequestSpec{
		ApplicationID: "amzn1.ask.skill.hostile",
		UserID:        e2eUser,
		Type:          "IntentRequest",
		Intent:        "Repeat",
		Slots:         map[string]string{"Text": "hello"},
		Timestamp:     time.Now(),
	})
	if mutate == nil {
		return body
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		tb.Fatal(err)
	}
	mutate(m)
	out, err := json.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// hostileAt returns the object at the dotted path of m.
func hostileAt(m map[string]any, path string) map[string]any {
	for _, k := range strings.Split(path, ".") {
		m = m[k].(map[string]any)
	}
	return m
}

// hostileSetUser puts id in both places Alexa sends the userId.
func hostileSetUser(id any) func(m map[string]any) {
	return func(m map[string]any) {
		hostileAt(m, "session.user")["userId"] = id
		hostileAt(m, "context.System.user")["userId"] = id
	}
}

// hostileSet sets the value at the dotted path.
func hostileSet(path string, v any) func(m map[string]any) {
	return func(m map[string]any) {
		i := strings.LastIndex(path, ".")
		if i < 0 {
			m[path] = v
			return
		}
		hostileAt(m, path[:i])[path[i+1:]] = v
	}
}

// hostileDelete removes the values at the dotted paths.
func hostileDelete(paths ...string) func(m map[string]any) {
	return func(m map[string]any) {
		for _, path := range paths {
			i := strings.LastIndex(path, ".")
			if i < 0 {
				delete(m, path)
				continue
			}
			delete(hostileAt(m, path[:i]), path[i+1:])
		}
	}
}

// TestServeHostileInput sends envelopes no Alexa would send: each gets a
// 400 (413 for size) with no Alexa body, and none reaches the secret store
// or the upstream.
func TestServeHostileInput(t *testing.T) {
	upstream := newE2EUpstream(t, `{"text":"hello"}`)
	store := inmem.New(map[string]map[string]string{
		"users/" + e2eUser + "/api": {"access_token": "t0k"},
	})
	cfg := mustE2EConfig(t, fmt.Sprintf(hostileConfig, upstream.URL))
	srv := e2eServe(t, newDeps(e2eDiscard).runtime(cfg, store))
	client := srv.Client()

	valid := hostileEnvelope(t, nil)
	replaceOnce := func(old, new string) []byte {
		if !bytes.Contains(valid, []byte(old)) {
			t.Fatalf("%q is not in the envelope", old)
		}
		return bytes.Replace(valid, []byte(old), []byte(new), 1)
	}
	nested := func(depth int) any {
		var v any = "deep"
		for i := 0; i < depth; i++ {
			v = map[string]any{"a": v}
		}
		return v
	}
	userKey := `"userId":"` + e2eUser + `"`
	cases := []struct {
		name string
		body []byte
	}{
		// Wrong types.
		{"version is a number", hostileEnvelope(t, hostileSet("version", 1))},
		{"request is a string", hostileEnvelope(t, hostileSet("request", "IntentRequest"))},
		{"request.type is a number", hostileEnvelope(t, hostileSet("request.type", 7))},
		{"request.requestId is an object", hostileEnvelope(t, hostileSet("request.requestId", map[string]any{}))},
		{"request.timestamp is a bool", hostileEnvelope(t, hostileSet("request.timestamp", true))},
		{"request.timestamp is not a time", hostileEnvelope(t, hostileSet("request.timestamp", "yesterday"))},
		{"request.intent is a list", hostileEnvelope(t, hostileSet("request.intent", []any{}))},
		{"request.intent.name is a number", hostileEnvelope(t, hostileSet("request.intent.name", 5))},
		{"request.intent.slots is a string", hostileEnvelope(t, hostileSet("request.intent.slots", "Text"))},
		{"slot value is a number", hostileEnvelope(t, hostileSet("request.intent.slots.Text.value", 42))},
		{"session.attributes is a list", hostileEnvelope(t, hostileSet("session.attributes", []any{1}))},
		{"session.new is a string", hostileEnvelope(t, hostileSet("session.new", "yes"))},
		{"userId is a number", hostileEnvelope(t, hostileSetUser(123))},
		{"userId is a list", hostileEnvelope(t, hostileSetUser([]any{e2eUser}))},
		{"context.System is a string", hostileEnvelope(t, hostileSet("context.System", "x"))},
		{"body is a list", []byte(`[]`)},
		{"body is a string", []byte(`"IntentRequest"`)},
		{"body is a number", []byte(`42`)},
		{"body is null", []byte(`null`)},

		// Missing fields.
		{"empty body", nil},
		{"empty object", []byte(`{}`)},
		{"no version", hostileEnvelope(t, hostileDelete("version"))},
		{"no request", hostileEnvelope(t, hostileDelete("request"))},
		{"no request.type", hostileEnvelope(t, hostileDelete("request.type"))},
		{"no requestId", hostileEnvelope(t, hostileDelete("request.requestId"))},
		{"no timestamp", hostileEnvelope(t, hostileDelete("request.timestamp"))},
		{"no intent", hostileEnvelope(t, hostileDelete("request.intent"))},
		{"no intent name", hostileEnvelope(t, hostileDelete("request.intent.name"))},
		{"no application id", hostileEnvelope(t, hostileDelete("session.application.applicationId", "context.System.application.applicationId"))},
		{"no userId", hostileEnvelope(t, hostileDelete("session.user.userId", "context.System.user.userId"))},
		{"no session and no context", hostileEnvelope(t, hostileDelete("session", "context"))},

		// Structure.
		{"40 levels deep", hostileEnvelope(t, hostileSet("session.attributes.deep", nested(40)))},
		{"deep list in a slot", replaceOnce(`"value":"hello"`, `"value":"hello","x":`+strings.Repeat("[", 40)+strings.Repeat("]", 40))},
		{"duplicate version", replaceOnce(`"version":"1.0"`, `"version":"1.0","version":"2.0"`)},
		{"duplicate userId aimed at a path", replaceOnce(userKey, userKey+`,"userId":"amzn1.ask.account/../../x"`)},
		{"duplicate request type", replaceOnce(`"type":"IntentRequest"`, `"type":"IntentRequest","type":"LaunchRequest"`)},
		{"invalid UTF-8 in a slot", replaceOnce(`"value":"hello"`, "\"value\":\"hel\xfflo\"")},
		{"overlong UTF-8 slash in a slot", replaceOnce(`"value":"hello"`, "\"value\":\"..\xc0\xaf..\"")},
		{"invalid UTF-8 in a key", replaceOnce(`"version"`, "\"vers\xffion\"")},
		{"trailing object", append(append([]byte(nil), valid...), `{}`...)},
		{"trailing garbage", append(append([]byte(nil), valid...), ` x`...)},
		{"truncated", valid[:len(valid)/2]},

		// userIds aimed at secret store paths.
		{"userId with ../", hostileEnvelope(t, hostileSetUser("amzn1.ask.account/../../x"))},
		{"userId with %2e%2e", hostileEnvelope(t, hostileSetUser("amzn1.%2e%2e"))},
		{"userId of 600 characters", hostileEnvelope(t, hostileSetUser("amzn1."+strings.Repeat("a", 594)))},
		{"userId reaching services/", hostileEnvelope(t, hostileSetUser(e2eUser+"/../../services/api"))},
		{"userId starting with ../", hostileEnvelope(t, hostileSetUser("../../services/api"))},
		{"userId with a newline", hostileEnvelope(t, hostileSetUser(e2eUser+"\n"))},
		{"userId with NUL", hostileEnvelope(t, hostileSetUser(e2eUser+"\x00"))},
		{"userId with a backslash", hostileEnvelope(t, hostileSetUser(`amzn1.ask\..\x`))},
		{"userId without amzn1.", hostileEnvelope(t, hostileSetUser("ask.account.E2E"))},
		{"userId amzn1. only", hostileEnvelope(t, hostileSetUser("amzn1."))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, out := e2ePost(t, client, srv.URL+"/alexa", nil, tc.body)
			if status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", status, out)
			}
			checkNoAlexaBody(t, out)
		})
	}

	t.Run("body over max_body_bytes", func(t *testing.T) {
		over := append(append([]byte(nil), valid...), bytes.Repeat([]byte(" "), hostileMaxBody+1-len(valid))...)
		status, out := e2ePost(t, client, srv.URL+"/alexa", nil, over)
		if status != http.StatusRequestEntityTooLarge {
			t.Fatalf("with Content-Length: status %d, want 413: %s", status, out)
		}
		checkNoAlexaBody(t, out)
		// Chunked, so the length is not known up front.
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/alexa", io.MultiReader(bytes.NewReader(over)))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		out, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || req.ContentLength != 0 {
			t.Fatalf("chunked: status %d (content length %d), want 413: %s", resp.StatusCode, req.ContentLength, out)
		}
		big := bytes.Repeat([]byte("a"), 1<<20)
		status, _ = e2ePost(t, client, srv.URL+"/alexa", nil, big)
		if status != http.StatusRequestEntityTooLarge {
			t.Fatalf("1 MiB: status %d, want 413", status)
		}
	})

	if n := store.Reads(); n != 0 {
		t.Errorf("hostile requests caused %d secret store reads, want 0", n)
	}
	if n := upstream.hits.Load(); n != 0 {
		t.Errorf("hostile requests caused %d upstream calls, want 0", n)
	}

	// The control: the same envelope, well-formed, reads the store and
	// calls the upstream; one of exactly max_body_bytes is not too large.
	t.Run("control", func(t *testing.T) {
		exact := append(append([]byte(nil), valid...), bytes.Repeat([]byte(" "), hostileMaxBody-len(valid))...)
		status, out := e2ePost(t, client, srv.URL+"/alexa", nil, exact)
		if got := e2eSpeech(t, status, out); got != "You said hello." {
			t.Fatalf("speech %q", got)
		}
		if store.Reads() == 0 || upstream.hits.Load() != 1 {
			t.Fatalf("control: %d store reads, %d upstream calls; the hostile checks prove nothing", store.Reads(), upstream.hits.Load())
		}
	})
}

// checkNoAlexaBody fails when a refused request got an Alexa response.
func checkNoAlexaBody(tb testing.TB, body []byte) {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		tb.Fatalf("error body is not JSON: %v: %s", err, body)
	}
	if _, ok := m["response"]; ok {
		tb.Fatalf("error answered with an Alexa body: %s", body)
	}
	if _, ok := m["error"]; !ok {
		tb.Fatalf("error body without error: %s", body)
	}
}
