package alexa

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/voicegw/voicegw/gateway"
)

// Engine answers turns; see engine.Engine.
type Engine interface {
	// SkillFor picks the skill by URL name and application id.
	SkillFor(name, applicationID string) (string, error)
	// Turn answers a turn; it always returns a reply.
	Turn(ctx context.Context, t *gateway.Turn) *gateway.Reply
}

// RequestVerifier checks that a request comes from Alexa (SPEC 6); see Verifier.
type RequestVerifier interface {
	// Signature checks the certificate chain and the signature of the raw
	// body, before any JSON is parsed.
	Signature(ctx context.Context, header http.Header, body []byte) error
	// Timestamp checks request.timestamp against the gateway's clock.
	Timestamp(ts time.Time) error
}

// Observer is told the outcome of every request, for metrics.
type Observer interface {
	Observe(skill string, status int, reason string, took time.Duration)
}

// Handler serves Alexa requests independent of the HTTP framework.
type Handler struct {
	Engine Engine
	// Verifier is nil when alexa.verify is false.
	Verifier RequestVerifier
	Logger   *slog.Logger
	Observer Observer
}

// Serve answers one request for the named skill ("" to choose by
// application id) and returns the HTTP status and body: 200 with an Alexa
// response, 400 for a forged or malformed request, 404 for an unknown
// skill.
func (h *Handler) Serve(ctx context.Context, skill string, header http.Header, body []byte) (int, []byte) {
	start := time.Now()
	log := h.Logger
	if log == nil {
		log = slog.Default()
	}
	// known is the skill name once it is known to be configured; until
	// then the URL's name is not trusted as a metric label.
	known := ""
	reject := func(status int, reason string, err error) (int, []byte) {
		log.LogAttrs(ctx, slog.LevelWarn, "request rejected",
			slog.Int("status", status), slog.String("reason", reason), slog.String("error", err.Error()))
		if h.Observer != nil {
			h.Observer.Observe(known, status, reason, time.Since(start))
		}
		// What was wrong with the client's own envelope is said; the
		// detail of a failed verification is only logged.
		text := err.Error()
		if reason != "envelope" {
			text = reason + " check failed"
		}
		msg, _ := json.Marshal(map[string]string{"error": text})
		return status, msg
	}
	if h.Verifier != nil {
		if err := h.Verifier.Signature(ctx, header, body); err != nil {
			return reject(http.StatusBadRequest, "signature", err)
		}
	}
	turn, err := Decode(body)
	if err != nil {
		return reject(http.StatusBadRequest, "envelope", err)
	}
	if h.Verifier != nil {
		if err := h.Verifier.Timestamp(turn.Timestamp); err != nil {
			return reject(http.StatusBadRequest, "timestamp", err)
		}
	}
	name, err := h.Engine.SkillFor(skill, turn.ApplicationID)
	switch {
	case errors.Is(err, gateway.ErrUnknownSkill):
		return reject(http.StatusNotFound, "unknown skill", err)
	case err != nil:
		known = skill
		return reject(http.StatusBadRequest, "application id", err)
	}
	turn.Skill = name
	reply := h.turn(ctx, log, turn)
	if h.Observer != nil {
		h.Observer.Observe(name, http.StatusOK, "", time.Since(start))
	}
	return http.StatusOK, Encode(reply)
}

// FallbackSpeech answers a turn whose engine failed outright (a bug): the
// user still hears a sentence, and Alexa gets a valid response.
const FallbackSpeech = "Sorry, something went wrong. Please try again later."

// turn runs the engine, turning a panic into the fallback speech so that a
// bug in one turn never costs the user an answer or the process its life.
func (h *Handler) turn(ctx context.Context, log *slog.Logger, t *gateway.Turn) (reply *gateway.Reply) {
	defer func() {
		if p := recover(); p != nil {
			log.LogAttrs(ctx, slog.LevelError, "turn panicked",
				slog.String("request_id", t.RequestID), slog.String("skill", t.Skill),
				slog.String("intent", t.Intent), slog.String("panic", fmt.Sprint(p)),
				slog.String("stack", string(debug.Stack())))
			reply = &gateway.Reply{Speech: gateway.Speech{Text: FallbackSpeech}, EndSession: true}
		}
	}()
	return h.Engine.Turn(ctx, t)
}
