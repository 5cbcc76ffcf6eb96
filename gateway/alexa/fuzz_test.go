package alexa_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/alexa"
)

// FuzzDecode checks that Decode never panics, that every error wraps
// ErrEnvelope, and that a decoded turn always has a valid userId (the only
// request value that becomes part of a secret store path). Only the seeds
// run in a plain go test; scripts/fuzz.sh runs it longer.
func FuzzDecode(f *testing.F) {
	seeds := []string{
		envelopeJSON(launchReq, validUser),
		envelopeJSON(intentReq, validUser),
		envelopeJSON(endedReq, validUser),
		string(alexa.BuildRequest(alexa.RequestSpec{ApplicationID: envAppID, UserID: validUser, Type: "IntentRequest", Intent: "I", Slots: map[string]string{"S": "v"}})),
		`{"version":"1.0","context":{"System":{"application":{"applicationId":"a"},"user":{"userId":"amzn1.x"}}},"request":{"type":"X","requestId":"r","timestamp":0}}`,
		// Hostile: duplicate keys, deep nesting, invalid UTF-8, wrong
		// types, bad user ids, truncation, odd timestamps.
		strings.Replace(envelopeJSON(launchReq, validUser), `"version":"1.0",`, `"version":"1.0","version":"2",`, 1),
		strings.Replace(envelopeJSON(launchReq, validUser), `"attributes":{"n":1,"s":"x"}`, `"attributes":`+nestedJSON(40), 1),
		strings.Repeat("[", 10000),
		strings.Repeat(`{"a":`, 100),
		strings.Replace(envelopeJSON(launchReq, validUser), `"s":"x"`, "\"s\":\"\xc3\x28\"", 1),
		strings.Replace(envelopeJSON(launchReq, validUser), `"version":"1.0"`, `"version":["1.0"]`, 1),
		`{"version":"1.0","request":{"type":"IntentRequest","requestId":"r","timestamp":"2024-05-01T12:00:00Z","intent":{"name":"I","slots":{"S":{"value":{}}}}}}`,
		envelopeJSON(launchReq, "amzn1.ask.account/../x"),
		envelopeJSON(launchReq, "%2e%2e"),
		envelopeJSON(launchReq, "amzn1."+strings.Repeat("a", 600)),
		envelopeJSON(launchReq, "amzn1.a\u2028"),
		envelopeJSON(`{"type":"LaunchRequest","requestId":"r","timestamp":-99999999999999999999}`, validUser),
		envelopeJSON(`{"type":"LaunchRequest","requestId":"r","timestamp":"0000-00-00T00:00:00Z"}`, validUser),
		envelopeJSON(intentReq, validUser)[:200],
		`{"version":"1.0","request":{"type":"LaunchRequest"}} trailing`,
		"\ufeff" + envelopeJSON(launchReq, validUser),
		``, `null`, `0`, `"`, `{"":{"":{"":[]}}}`,
		strings.Replace(envelopeJSON(launchReq, validUser), `"user":{"userId":"`, `"user":{"UserId":"amzn1.ask.account.EVIL","userId":"`, 1),
		strings.Replace(envelopeJSON(launchReq, validUser), `"s":"x"`, `"s":"x","\u017f":"y"`, 1),
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		turn, err := alexa.Decode(body)
		if err != nil {
			if !errors.Is(err, alexa.ErrEnvelope) {
				t.Fatalf("error %v does not wrap ErrEnvelope", err)
			}
			if turn != nil {
				t.Fatalf("turn with an error")
			}
			return
		}
		if turn == nil {
			t.Fatal("nil turn without an error")
		}
		if !gateway.ValidUserID(turn.UserID) {
			t.Fatalf("decoded user id %q is not valid", turn.UserID)
		}
		if !utf8.Valid(body) {
			t.Fatalf("decoded a body that is not UTF-8")
		}
		if k, ok := foldedDuplicate(body); ok {
			t.Fatalf("decoded a body with keys equal ignoring case: %q", k)
		}
		if turn.ApplicationID == "" || turn.RequestID == "" || turn.Type == "" {
			t.Fatalf("decoded turn lacks ids: %+v", turn)
		}
		if turn.Kind == gateway.KindIntent && turn.Intent == "" {
			t.Fatalf("intent turn without an intent")
		}
		// What the gateway answers for any turn is a valid response.
		_ = alexa.Encode(&gateway.Reply{Speech: gateway.Speech{Text: turn.Intent}, Session: turn.Session})
	})
}

// foldedDuplicate reports a key that one object of a JSON document has
// twice ignoring case, walking it with encoding/json's tokenizer: an
// oracle independent of the decoder under test.
func foldedDuplicate(body []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	// One entry per open object or array: the keys seen (nil for an
	// array) and whether the next string token of an object is a key.
	type level struct {
		keys  []string
		obj   bool
		atKey bool
	}
	var stack []level
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		top := len(stack) - 1
		if top >= 0 && stack[top].obj && stack[top].atKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:top]
				continue
			}
			key, _ := tok.(string)
			for _, seen := range stack[top].keys {
				if strings.EqualFold(seen, key) {
					return key, true
				}
			}
			stack[top].keys = append(stack[top].keys, key)
			stack[top].atKey = false
			continue
		}
		if top >= 0 && stack[top].obj {
			stack[top].atKey = true
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, level{obj: true, atKey: true})
		case json.Delim('['):
			stack = append(stack, level{})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:top]
			if top-1 >= 0 && stack[top-1].obj {
				stack[top-1].atKey = true
			}
		}
	}
}
