package alexa_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/alexa"
)

// envelopeJSON returns an Alexa request envelope with the given request
// object and user id; extra replaces top-level members.
func envelopeJSON(request, userID string) string {
	return `{"version":"1.0",
 "session":{"new":true,"sessionId":"amzn1.echo-api.session.1","application":{"applicationId":"amzn1.ask.skill.1"},
   "attributes":{"n":1,"s":"x"},"user":{"userId":` + jsonQuote(userID) + `,"accessToken":"tok"}},
 "context":{"System":{"application":{"applicationId":"amzn1.ask.skill.1"},"user":{"userId":` + jsonQuote(userID) + `,"accessToken":"tok"},
   "apiEndpoint":"https://api.amazonalexa.com","apiAccessToken":"api"}},
 "request":` + request + `}`
}

func jsonQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

const (
	launchReq  = `{"type":"LaunchRequest","requestId":"amzn1.echo-api.request.1","timestamp":"2024-05-01T12:00:00Z","locale":"en-US"}`
	endedReq   = `{"type":"SessionEndedRequest","requestId":"amzn1.echo-api.request.1","timestamp":"2024-05-01T12:00:00Z","locale":"en-US","reason":"USER_INITIATED"}`
	intentReq  = `{"type":"IntentRequest","requestId":"amzn1.echo-api.request.1","timestamp":"2024-05-01T12:00:00Z","locale":"de-DE","intent":{"name":"GetQuote","confirmationStatus":"CONFIRMED","slots":{"Symbol":{"name":"Symbol","value":"amazon","resolutions":{"resolutionsPerAuthority":[{"status":{"code":"ER_SUCCESS_MATCH"},"values":[{"value":{"name":"AMZN","id":"amzn"}}]}]}},"Empty":{"name":"Empty"}}}}`
	validUser  = "amzn1.ask.account.AB-c_1.2"
	otherUser  = "amzn1.ask.account.OTHER"
	envAppID   = "amzn1.ask.skill.1"
	wantTSText = "2024-05-01T12:00:00Z"
)

func nestedJSON(depth int) string {
	return strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth)
}

func TestDecode(t *testing.T) {
	wantTS, _ := time.Parse(time.RFC3339, wantTSText)
	tests := []struct {
		name string
		body string
		// check inspects a successful decode; nil means Decode must fail.
		check func(t *testing.T, turn *gateway.Turn)
	}{
		{name: "launch", body: envelopeJSON(launchReq, validUser), check: func(t *testing.T, turn *gateway.Turn) {
			if turn.Kind != gateway.KindLaunch || turn.Type != "LaunchRequest" {
				t.Errorf("kind %v type %q", turn.Kind, turn.Type)
			}
			if turn.UserID != validUser || turn.ApplicationID != envAppID || turn.RequestID != "amzn1.echo-api.request.1" {
				t.Errorf("ids: %+v", turn)
			}
			if !turn.Timestamp.Equal(wantTS) || turn.Locale != "en-US" || !turn.NewSession {
				t.Errorf("timestamp %v locale %q new %v", turn.Timestamp, turn.Locale, turn.NewSession)
			}
			if turn.AccessToken.Reveal() != "tok" || turn.APIToken.Reveal() != "api" || turn.APIEndpoint != "https://api.amazonalexa.com" {
				t.Errorf("tokens: %q %q %q", turn.AccessToken.Reveal(), turn.APIToken.Reveal(), turn.APIEndpoint)
			}
			if turn.Session["s"] != "x" || turn.Session["n"] != float64(1) {
				t.Errorf("session %v", turn.Session)
			}
			if turn.Confirmation != gateway.ConfirmNone {
				t.Errorf("confirmation %q", turn.Confirmation)
			}
		}},
		{name: "intent", body: envelopeJSON(intentReq, validUser), check: func(t *testing.T, turn *gateway.Turn) {
			if turn.Kind != gateway.KindIntent || turn.Intent != "GetQuote" || turn.Confirmation != gateway.ConfirmConfirmed {
				t.Errorf("kind %v intent %q confirmation %q", turn.Kind, turn.Intent, turn.Confirmation)
			}
			s := turn.Slots["Symbol"]
			if s.Value != "amazon" || s.Resolved != "AMZN" || s.ID != "amzn" || s.Text() != "AMZN" {
				t.Errorf("slot %+v", s)
			}
			if e, ok := turn.Slots["Empty"]; !ok || e.Text() != "" {
				t.Errorf("empty slot %+v %v", e, ok)
			}
			if turn.Locale != "de-DE" {
				t.Errorf("locale %q", turn.Locale)
			}
		}},
		{name: "session ended", body: envelopeJSON(endedReq, validUser), check: func(t *testing.T, turn *gateway.Turn) {
			if turn.Kind != gateway.KindSessionEnded {
				t.Errorf("kind %v", turn.Kind)
			}
		}},
		{name: "other request type without session", body: `{"version":"1.0","context":{"System":{"application":{"applicationId":"amzn1.ask.skill.1"},"user":{"userId":"amzn1.ask.account.X"}}},"request":{"type":"AudioPlayer.PlaybackStarted","requestId":"r","timestamp":"2024-05-01T12:00:00Z"}}`,
			check: func(t *testing.T, turn *gateway.Turn) {
				if turn.Kind != gateway.KindOther || turn.UserID != "amzn1.ask.account.X" || turn.Session != nil {
					t.Errorf("turn %+v", turn)
				}
			}},
		{name: "epoch millisecond timestamp", body: envelopeJSON(`{"type":"LaunchRequest","requestId":"r","timestamp":1714564800000}`, validUser),
			check: func(t *testing.T, turn *gateway.Turn) {
				if !turn.Timestamp.Equal(wantTS) {
					t.Errorf("timestamp %v, want %v", turn.Timestamp, wantTS)
				}
			}},
		{name: "context user wins over session user", body: strings.Replace(envelopeJSON(launchReq, validUser), `"userId":"`+validUser+`","accessToken":"tok"}}`, `"userId":"`+otherUser+`","accessToken":"tok"}}`, 1),
			check: func(t *testing.T, turn *gateway.Turn) {
				if turn.UserID != validUser {
					t.Errorf("user %q, want the context's %q", turn.UserID, validUser)
				}
			}},
		{name: "20 levels of session attributes", body: strings.Replace(envelopeJSON(launchReq, validUser), `"attributes":{"n":1,"s":"x"}`, `"attributes":`+nestedJSON(20), 1),
			check: func(t *testing.T, turn *gateway.Turn) {}},

		{name: "empty body", body: ``},
		{name: "null", body: `null`},
		{name: "array", body: `[]`},
		{name: "string", body: `"x"`},
		{name: "empty object", body: `{}`},
		{name: "not JSON", body: `{"version":`},
		{name: "trailing data", body: envelopeJSON(launchReq, validUser) + `{}`},
		{name: "missing version", body: strings.Replace(envelopeJSON(launchReq, validUser), `"version":"1.0",`, ``, 1)},
		{name: "missing request", body: `{"version":"1.0","context":{"System":{"application":{"applicationId":"a"},"user":{"userId":"amzn1.x"}}}}`},
		{name: "missing type", body: envelopeJSON(`{"requestId":"r","timestamp":"2024-05-01T12:00:00Z"}`, validUser)},
		{name: "missing request id", body: envelopeJSON(`{"type":"LaunchRequest","timestamp":"2024-05-01T12:00:00Z"}`, validUser)},
		{name: "missing timestamp", body: envelopeJSON(`{"type":"LaunchRequest","requestId":"r"}`, validUser)},
		{name: "bad timestamp", body: envelopeJSON(`{"type":"LaunchRequest","requestId":"r","timestamp":"yesterday"}`, validUser)},
		{name: "timestamp of wrong type", body: envelopeJSON(`{"type":"LaunchRequest","requestId":"r","timestamp":true}`, validUser)},
		{name: "missing application id", body: strings.ReplaceAll(envelopeJSON(launchReq, validUser), `"applicationId":"amzn1.ask.skill.1"`, `"applicationId":""`)},
		{name: "missing user", body: strings.ReplaceAll(envelopeJSON(launchReq, validUser), `"userId":"`+validUser+`",`, ``)},
		{name: "intent request without intent", body: envelopeJSON(`{"type":"IntentRequest","requestId":"r","timestamp":"2024-05-01T12:00:00Z"}`, validUser)},
		{name: "intent without name", body: envelopeJSON(`{"type":"IntentRequest","requestId":"r","timestamp":"2024-05-01T12:00:00Z","intent":{"slots":{}}}`, validUser)},
		{name: "version of wrong type", body: strings.Replace(envelopeJSON(launchReq, validUser), `"version":"1.0"`, `"version":1`, 1)},
		{name: "request of wrong type", body: `{"version":"1.0","request":"LaunchRequest"}`},
		{name: "attributes of wrong type", body: strings.Replace(envelopeJSON(launchReq, validUser), `"attributes":{"n":1,"s":"x"}`, `"attributes":[1,2]`, 1)},
		{name: "new of wrong type", body: strings.Replace(envelopeJSON(launchReq, validUser), `"new":true`, `"new":"yes"`, 1)},
		{name: "slot value of wrong type", body: envelopeJSON(`{"type":"IntentRequest","requestId":"r","timestamp":"2024-05-01T12:00:00Z","intent":{"name":"I","slots":{"S":{"name":"S","value":42}}}}`, validUser)},
		{name: "slots of wrong type", body: envelopeJSON(`{"type":"IntentRequest","requestId":"r","timestamp":"2024-05-01T12:00:00Z","intent":{"name":"I","slots":[]}}`, validUser)},
		{name: "duplicate top-level key", body: strings.Replace(envelopeJSON(launchReq, validUser), `"version":"1.0",`, `"version":"1.0","version":"2.0",`, 1)},
		{name: "duplicate user id", body: strings.Replace(envelopeJSON(launchReq, validUser), `"user":{"userId":"`+validUser+`"`, `"user":{"userId":"`+validUser+`","userId":"amzn1.ask.account.EVIL"`, 1)},
		{name: "duplicate request type", body: envelopeJSON(`{"type":"LaunchRequest","type":"IntentRequest","requestId":"r","timestamp":"2024-05-01T12:00:00Z"}`, validUser)},
		// SPEC 10: keys equal ignoring case are duplicates, since Go's
		// decoding matches field names that way ("UserId" would decode
		// as userId, the last one winning).
		{name: "user id and UserId", body: strings.Replace(envelopeJSON(launchReq, validUser), `"user":{"userId":"`+validUser+`"`, `"user":{"userId":"`+validUser+`","UserId":"amzn1.ask.account.EVIL"`, 1)},
		{name: "USERID before userId", body: strings.Replace(envelopeJSON(launchReq, validUser), `"user":{"userId":"`, `"user":{"USERID":"amzn1.ask.account.EVIL","userId":"`, 1)},
		{name: "Version and version", body: strings.Replace(envelopeJSON(launchReq, validUser), `"version":"1.0",`, `"version":"1.0","Version":"2.0",`, 1)},
		{name: "Unicode fold: long s in uſerId", body: strings.Replace(envelopeJSON(launchReq, validUser), `"user":{"userId":"`+validUser+`"`, `"user":{"userId":"`+validUser+`","u\u017ferId":"amzn1.ask.account.EVIL"`, 1)},
		{name: "escaped key equal ignoring case", body: strings.Replace(envelopeJSON(launchReq, validUser), `"user":{"userId":"`+validUser+`"`, `"user":{"userId":"`+validUser+`","\u0055serId":"amzn1.ask.account.EVIL"`, 1)},
		{name: "case duplicates in request type", body: envelopeJSON(`{"type":"IntentRequest","TYPE":"LaunchRequest","requestId":"r","timestamp":"2024-05-01T12:00:00Z"}`, validUser)},
		{name: "case duplicates in session attributes", body: strings.Replace(envelopeJSON(launchReq, validUser), `"attributes":{"n":1,"s":"x"}`, `"attributes":{"n":1,"s":"x","S":"y"}`, 1)},
		{name: "case duplicates deep in slots", body: envelopeJSON(strings.Replace(intentReq, `"code":"ER_SUCCESS_MATCH"`, `"code":"ER_SUCCESS_MATCH","Code":"ER_SUCCESS_NO_MATCH"`, 1), validUser)},
		{name: "40 levels of nesting", body: strings.Replace(envelopeJSON(launchReq, validUser), `"attributes":{"n":1,"s":"x"}`, `"attributes":`+nestedJSON(40), 1)},
		{name: "40 levels of arrays", body: strings.Replace(envelopeJSON(launchReq, validUser), `"attributes":{"n":1,"s":"x"}`, `"attributes":{"a":`+strings.Repeat("[", 40)+strings.Repeat("]", 40)+`}`, 1)},
		{name: "invalid UTF-8", body: strings.Replace(envelopeJSON(launchReq, validUser), `"s":"x"`, "\"s\":\"\xff\xfe\"", 1)},
		{name: "user id with path", body: envelopeJSON(launchReq, "amzn1.ask.account/../x")},
		{name: "user id percent dots", body: envelopeJSON(launchReq, "%2e%2e")},
		{name: "user id of 600 characters", body: envelopeJSON(launchReq, "amzn1."+strings.Repeat("A", 594))},
		{name: "user id without amzn1 prefix", body: envelopeJSON(launchReq, "ask.account.X")},
		{name: "user id amzn1 only", body: envelopeJSON(launchReq, "amzn1.")},
		{name: "user id with newline", body: envelopeJSON(launchReq, "amzn1.ask.account.X\n")},
		{name: "user id with NUL", body: envelopeJSON(launchReq, "amzn1.ask.account.X\x00")},
		{name: "user id of wrong type", body: strings.ReplaceAll(envelopeJSON(launchReq, validUser), `"userId":"`+validUser+`"`, `"userId":7`)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			turn, err := alexa.Decode([]byte(tc.body))
			if tc.check == nil {
				if err == nil {
					t.Fatalf("Decode succeeded, want an error (turn %+v)", turn)
				}
				if !errors.Is(err, alexa.ErrEnvelope) {
					t.Errorf("error %v does not wrap ErrEnvelope", err)
				}
				if turn != nil {
					t.Errorf("Decode returned a turn with its error")
				}
				for _, secret := range []string{"amzn1.ask.account/../x", "%2e%2e", "AAAAAAAAAAAAAAAA", "EVIL", "yesterday"} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("error %q echoes the request's value %q", err, secret)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !gateway.ValidUserID(turn.UserID) {
				t.Errorf("user id %q is not valid", turn.UserID)
			}
			tc.check(t, turn)
		})
	}
}

// TestBuildRequestDecodes checks that what BuildRequest (invoke,
// scenarios) builds is what Decode accepts.
func TestBuildRequestDecodes(t *testing.T) {
	tests := []struct {
		name string
		spec alexa.RequestSpec
		kind gateway.RequestKind
	}{
		{name: "launch", spec: alexa.RequestSpec{Type: "LaunchRequest"}, kind: gateway.KindLaunch},
		{name: "intent", spec: alexa.RequestSpec{Type: "IntentRequest", Intent: "I", Slots: map[string]string{"S": "v"}, Confirmation: "DENIED"}, kind: gateway.KindIntent},
		{name: "session ended", spec: alexa.RequestSpec{Type: "SessionEndedRequest"}, kind: gateway.KindSessionEnded},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.spec.ApplicationID, tc.spec.UserID, tc.spec.AccessToken = envAppID, validUser, "tok"
			turn, err := alexa.Decode(alexa.BuildRequest(tc.spec))
			if err != nil {
				t.Fatal(err)
			}
			if turn.Kind != tc.kind || turn.UserID != validUser || turn.ApplicationID != envAppID || turn.AccessToken.Reveal() != "tok" {
				t.Errorf("turn %+v", turn)
			}
			if tc.kind == gateway.KindIntent && (turn.Slots["S"].Value != "v" || turn.Confirmation != "DENIED") {
				t.Errorf("intent turn %+v", turn)
			}
		})
	}
}
