package alexa

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"
	"unicode/utf8"

	"github.com/tidwall/gjson"

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
	// EventTimestamp checks the timestamp of a skill event, which Amazon
	// may send up to an hour late.
	EventTimestamp(ts time.Time) error
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

// Reasons of rejected requests, the values of the metrics' reason label.
// They are constants: nothing a request sends becomes a label value.
const (
	ReasonTooLarge    = "body too large"
	ReasonBody        = "body unreadable"
	ReasonSignature   = "signature"
	ReasonEnvelope    = "envelope"
	ReasonTimestamp   = "timestamp"
	ReasonUnknown     = "unknown skill"
	ReasonApplication = "application id"
)

// watchdogGrace is how long after its deadline a turn's engine may take
// before the handler answers without it; with encoding and writing, the
// answer still leaves within the deadline and 250 ms.
const watchdogGrace = 100 * time.Millisecond

// Serve answers one request for the named skill ("" to choose by
// application id) and returns the HTTP status and body: 200 with an Alexa
// response, 400 for a forged or malformed request, 404 for an unknown
// skill. When ctx has a deadline (the server sets server.deadline from the
// request's arrival), verification gets what is left of it, and the
// answer is sent by then even when the engine is stuck on a dependency
// that ignores it.
func (h *Handler) Serve(ctx context.Context, skill string, header http.Header, body []byte) (int, []byte) {
	start := time.Now()
	log := h.logger()
	if h.Verifier != nil {
		if err := h.Verifier.Signature(ctx, header, body); err != nil {
			// The body is not parsed before its signature holds, not even
			// for its requestId.
			return h.reject(ctx, "", "", http.StatusBadRequest, ReasonSignature, err, start)
		}
	}
	turn, err := Decode(body)
	if err != nil {
		return h.reject(ctx, "", envelopeRequestID(body), http.StatusBadRequest, ReasonEnvelope, err, start)
	}
	if h.Verifier != nil {
		check := h.Verifier.Timestamp
		if SkillEvent(turn.Type) {
			check = h.Verifier.EventTimestamp
		}
		if err := check(turn.Timestamp); err != nil {
			return h.reject(ctx, "", turn.RequestID, http.StatusBadRequest, ReasonTimestamp, err, start)
		}
	}
	name, err := h.Engine.SkillFor(skill, turn.ApplicationID)
	switch {
	case errors.Is(err, gateway.ErrUnknownSkill):
		return h.reject(ctx, "", turn.RequestID, http.StatusNotFound, ReasonUnknown, err, start)
	case err != nil:
		// SkillFor refuses the application id only of a configured
		// skill, so the URL's name is a configured one here.
		return h.reject(ctx, skill, turn.RequestID, http.StatusBadRequest, ReasonApplication, err, start)
	}
	turn.Skill = name
	reply := h.answer(ctx, log, turn)
	if h.Observer != nil {
		h.Observer.Observe(name, http.StatusOK, "", time.Since(start))
	}
	return http.StatusOK, Encode(reply)
}

// Reject logs and counts a request the HTTP front refused before Serve
// could see its body, under a request id of the gateway's own, and
// returns its JSON error body: 413 is a body over the size limit
// (ReasonTooLarge), any other status a body that could not be read
// (ReasonBody).
func (h *Handler) Reject(ctx context.Context, status int, err error) []byte {
	reason := ReasonBody
	if status == http.StatusRequestEntityTooLarge {
		reason = ReasonTooLarge
	}
	_, msg := h.reject(ctx, "", "", status, reason, err, time.Now())
	return msg
}

// reject logs a refused request with a request id (the Alexa requestId
// when the envelope had one, else a new one of the gateway's), counts it
// under known (a configured skill's name, or "") and returns its status
// and JSON error body.
func (h *Handler) reject(ctx context.Context, known, requestID string, status int, reason string, err error, start time.Time) (int, []byte) {
	if requestID == "" {
		requestID = newRequestID()
	}
	h.logger().LogAttrs(ctx, slog.LevelWarn, "request rejected",
		slog.String("request_id", requestID), slog.Int("status", status),
		slog.String("reason", reason), slog.String("error", err.Error()))
	if h.Observer != nil {
		h.Observer.Observe(known, status, reason, time.Since(start))
	}
	// What was wrong with the client's own request is said; the detail
	// of a failed verification is only logged.
	var text string
	switch reason {
	case ReasonEnvelope:
		text = err.Error()
	case ReasonTooLarge, ReasonBody:
		text = reason
	default:
		text = reason + " check failed"
	}
	msg, _ := json.Marshal(map[string]string{"error": text})
	return status, msg
}

func (h *Handler) logger() *slog.Logger {
	if h.Logger == nil {
		return slog.Default()
	}
	return h.Logger
}

// maxLoggedID bounds a requestId taken from a malformed envelope into the
// log.
const maxLoggedID = 128

// envelopeRequestID returns request.requestId of a body that failed to
// decode as an envelope, when it has one that is fit to log.
func envelopeRequestID(body []byte) string {
	id := gjson.GetBytes(body, "request.requestId")
	if id.Type != gjson.String || len(id.Str) > maxLoggedID || !utf8.ValidString(id.Str) {
		return ""
	}
	return id.Str
}

// newRequestID names a request that has no Alexa requestId to log.
func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "voicegw." + hex.EncodeToString(b[:])
}

// TimeoutAnswerer is implemented by an Engine that knows which turns can
// wait on a dependency and can answer one it could not finish by its
// deadline with the turn's own `timeout` speech (engine.Engine does).
// Without it every turn runs under the watchdog, and one held past its
// deadline hears TimeoutSpeech.
type TimeoutAnswerer interface {
	// Waits reports whether the turn may wait on a dependency (it has
	// calls to make); one that cannot runs without the watchdog.
	Waits(t *gateway.Turn) bool
	// TimedOut answers a turn held past its deadline.
	TimedOut(t *gateway.Turn) *gateway.Reply
}

// TimeoutSpeech answers a turn whose engine overran its deadline and has
// no TimedOut of its own.
const TimeoutSpeech = gateway.SayTimeout

// answer runs the turn. When ctx has a deadline and the engine has not
// answered shortly after it, the turn is answered with its timeout speech
// and the engine's late reply is dropped.
func (h *Handler) answer(ctx context.Context, log *slog.Logger, t *gateway.Turn) *gateway.Reply {
	_, ok := ctx.Deadline()
	ta, _ := h.Engine.(TimeoutAnswerer)
	if !ok || (ta != nil && !ta.Waits(t)) {
		// Nothing to watch: a goroutine hand-off costs about 25 us.
		return h.turn(ctx, log, t)
	}
	done := make(chan *gateway.Reply, 1)
	go func() { done <- h.turn(ctx, log, t) }()
	// The context fires at the deadline; only then is a grace timer due.
	select {
	case reply := <-done:
		return reply
	case <-ctx.Done():
	}
	grace := time.NewTimer(watchdogGrace)
	defer grace.Stop()
	select {
	case reply := <-done:
		return reply
	case <-grace.C:
	}
	log.LogAttrs(ctx, slog.LevelError, "turn overran its deadline",
		slog.String("request_id", t.RequestID), slog.String("skill", t.Skill), slog.String("intent", t.Intent))
	if ta != nil {
		return ta.TimedOut(t)
	}
	return &gateway.Reply{Speech: gateway.Speech{Text: TimeoutSpeech}, EndSession: true}
}

// FallbackSpeech answers a turn whose engine failed outright (a bug): the
// user still hears a sentence, and Alexa gets a valid response.
const FallbackSpeech = gateway.SayDefault

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
