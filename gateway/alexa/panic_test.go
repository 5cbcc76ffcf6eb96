package alexa_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/alexa"
)

// panickyEngine stands for an engine with a bug.
type panickyEngine struct{}

func (panickyEngine) SkillFor(name, _ string) (string, error) { return "s", nil }
func (panickyEngine) Turn(context.Context, *gateway.Turn) *gateway.Reply {
	var m map[string]int
	m["boom"]++ // a nil map write: a real runtime panic
	return nil
}

// TestPanicIsAnswered: a panic in a turn is logged with its stack and the
// user hears the fallback sentence in a valid 200 response.
func TestPanicIsAnswered(t *testing.T) {
	var logs bytes.Buffer
	h := &alexa.Handler{Engine: panickyEngine{}, Logger: slog.New(slog.NewJSONHandler(&logs, nil))}
	body := alexa.BuildRequest(alexa.RequestSpec{ApplicationID: "amzn1.ask.skill.p", UserID: "amzn1.ask.account.P",
		Type: "IntentRequest", Intent: "X"})
	status, out := h.Serve(context.Background(), "", nil, body)
	var resp alexa.Response
	if status != 200 || json.Unmarshal(out, &resp) != nil {
		t.Fatalf("status %d: %s", status, out)
	}
	if resp.Speech() != alexa.FallbackSpeech || resp.Response.ShouldEndSession == nil || !*resp.Response.ShouldEndSession {
		t.Fatalf("response %s", out)
	}
	if !strings.Contains(logs.String(), `"msg":"turn panicked"`) || !strings.Contains(logs.String(), "assignment to entry in nil map") {
		t.Fatalf("panic not logged: %s", logs.String())
	}
}
