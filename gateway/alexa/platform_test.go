package alexa_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/alexa"
	"github.com/voicegw/voicegw/gateway/alexa/alexatest"
)

// The request types of SPEC 12 as Alexa sends them.
const (
	listSlotReq = `{"type":"IntentRequest","requestId":"amzn1.echo-api.request.1","timestamp":"2024-05-01T12:00:00Z","locale":"en-US",` +
		`"intent":{"name":"AddItems","confirmationStatus":"NONE","slots":{"Items":{"name":"Items","confirmationStatus":"NONE",` +
		`"slotValue":{"type":"List","values":[` +
		`{"type":"Simple","value":"cheddar","resolutions":{"resolutionsPerAuthority":[{"status":{"code":"ER_SUCCESS_MATCH"},"values":[{"value":{"name":"cheese","id":"CHEESE"}}]}]}},` +
		`{"type":"Simple","value":"bread","resolutions":{"resolutionsPerAuthority":[{"status":{"code":"ER_SUCCESS_NO_MATCH"}}]}}]}}}}}`
	canFulfillReq = `{"type":"CanFulfillIntentRequest","requestId":"amzn1.echo-api.request.1","timestamp":"2024-05-01T12:00:00Z","locale":"en-US",` +
		`"intent":{"name":"GetQuote","slots":{"Symbol":{"name":"Symbol","value":"amazon"}}}}`
	disabledReq = `{"type":"AlexaSkillEvent.SkillDisabled","requestId":"amzn1.echo-api.request.1","timestamp":"2024-05-01T12:00:00Z",` +
		`"eventCreationTime":"2024-05-01T12:00:00Z","eventPublishingTime":"2024-05-01T12:00:00Z","body":{"userInformationPersistenceStatus":"PERSISTED"}}`
	enabledReq = `{"type":"AlexaSkillEvent.SkillEnabled","requestId":"amzn1.echo-api.request.1","timestamp":"2024-05-01T12:00:00Z",` +
		`"eventCreationTime":"2024-05-01T12:00:00Z","eventPublishingTime":"2024-05-01T12:00:00Z"}`
)

func TestDecodePlatformRequests(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		check func(t *testing.T, turn *gateway.Turn)
	}{
		{"multi-value slot", envelopeJSON(listSlotReq, validUser), func(t *testing.T, turn *gateway.Turn) {
			s := turn.Slots["Items"]
			if len(s.Values) != 2 {
				t.Fatalf("values %+v", s.Values)
			}
			if got := s.Texts(); len(got) != 2 || got[0] != "cheese" || got[1] != "bread" {
				t.Errorf("texts %q, want [cheese bread]", got)
			}
			if got := s.IDs(); got[0] != "CHEESE" || got[1] != "" {
				t.Errorf("ids %q", got)
			}
			if !s.Filled() {
				t.Error("a slot with values is not filled")
			}
		}},
		{"CanFulfillIntentRequest", envelopeJSON(canFulfillReq, validUser), func(t *testing.T, turn *gateway.Turn) {
			if turn.Kind != gateway.KindCanFulfill || turn.Intent != "GetQuote" || turn.Slots["Symbol"].Value != "amazon" {
				t.Errorf("turn %+v", turn)
			}
		}},
		// Skill events carry a context and no session.
		{"SkillDisabled", `{"version":"1.0","context":{"System":{"application":{"applicationId":"amzn1.ask.skill.1"},"user":{"userId":"` + validUser + `"}}},"request":` + disabledReq + `}`,
			func(t *testing.T, turn *gateway.Turn) {
				if turn.Kind != gateway.KindDisabled || turn.UserID != validUser || !alexa.SkillEvent(turn.Type) {
					t.Errorf("turn %+v", turn)
				}
			}},
		{"another skill event", `{"version":"1.0","context":{"System":{"application":{"applicationId":"amzn1.ask.skill.1"},"user":{"userId":"` + validUser + `"}}},"request":` + enabledReq + `}`,
			func(t *testing.T, turn *gateway.Turn) {
				if turn.Kind != gateway.KindOther || !alexa.SkillEvent(turn.Type) {
					t.Errorf("turn %+v", turn)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			turn, err := alexa.Decode([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, turn)
		})
	}
}

// TestEncodeCanFulfill: Amazon's shape, nothing spoken, no session end.
func TestEncodeCanFulfill(t *testing.T) {
	out := alexa.Encode(&gateway.Reply{Empty: true, CanFulfill: &gateway.CanFulfill{
		Intent: gateway.CanYes,
		Slots:  map[string]gateway.SlotFulfill{"Symbol": {Understand: gateway.CanMaybe, Fulfill: gateway.CanYes}},
	}})
	want := `{"version":"1.0","response":{"canFulfillIntent":{"canFulfill":"YES","slots":{"Symbol":{"canUnderstand":"MAYBE","canFulfill":"YES"}}}}}`
	if string(out) != want {
		t.Fatalf("got  %s\nwant %s", out, want)
	}
	var v map[string]any
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyEventTimestamp: skill events up to an hour old; ahead only
// within the tolerance.
func TestVerifyEventTimestamp(t *testing.T) {
	v, _, _ := newTestVerifier(t)
	cases := []struct {
		name string
		ts   time.Time
		ok   bool
	}{
		{"now", alexatest.Base, true},
		{"30 minutes old", alexatest.Base.Add(-30 * time.Minute), true},
		{"an hour old", alexatest.Base.Add(-alexa.EventMaxAge), true},
		{"just over an hour old", alexatest.Base.Add(-alexa.EventMaxAge - time.Second), false},
		{"at the tolerance ahead", alexatest.Base.Add(verifyTolerance), true},
		{"ahead beyond the tolerance", alexatest.Base.Add(verifyTolerance + time.Second), false},
		{"an hour ahead", alexatest.Base.Add(time.Hour), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := v.EventTimestamp(tc.ts)
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, alexa.ErrVerify)) {
				t.Fatalf("EventTimestamp: %v, want ok=%v", err, tc.ok)
			}
			// Other requests keep the tolerance.
			if tc.ts.Before(alexatest.Base.Add(-verifyTolerance)) && v.Timestamp(tc.ts) == nil {
				t.Fatal("Timestamp accepts what only skill events may be")
			}
		})
	}
}
