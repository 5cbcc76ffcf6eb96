// Package gateway holds voicegw's domain types: the framework-neutral turn
// that a voice platform adapter decodes from its envelope, the reply the
// engine produces for it, and the secret store interface shared by the
// engine, the account-linking flow and the operator commands.
//
// Subpackages are named for what they provide: config (loading and
// compiling YAML), engine (running a turn), upstream (HTTP calls), auth
// (credentials), alexa (the Alexa envelope), server (Echo), inmem and vault
// (secret stores), scenario (voicegw test).
package gateway

import (
	"context"
	"errors"
	"html"
	"regexp"
	"slices"
	"strings"
	"time"
)

// RequestKind is the kind of a voice request.
type RequestKind int

// The request kinds a turn can have.
const (
	// KindOther is a request voicegw acknowledges without speech.
	KindOther RequestKind = iota
	// KindLaunch opens the skill without an intent.
	KindLaunch
	// KindIntent carries an intent and its slots.
	KindIntent
	// KindSessionEnded tells the skill the session is over.
	KindSessionEnded
	// KindCanFulfill asks, without running anything, whether the skill
	// can answer Intent with its Slots (Alexa's name-free interaction).
	KindCanFulfill
	// KindDisabled says the user removed the skill: the gateway forgets
	// what it keeps of the user (linked tokens, pending link codes).
	KindDisabled
)

// Answers of a KindCanFulfill turn.
const (
	CanYes   = "YES"
	CanNo    = "NO"
	CanMaybe = "MAYBE"
)

// CanFulfill is the answer to a KindCanFulfill turn: whether the skill can
// fulfil the intent, and for each slot of the request whether it
// understands and can fulfil its value (CanYes, CanNo or CanMaybe).
type CanFulfill struct {
	Intent string
	Slots  map[string]SlotFulfill
}

// SlotFulfill is the answer for one slot of a KindCanFulfill turn.
type SlotFulfill struct {
	Understand string
	Fulfill    string
}

// Confirmation statuses of an intent or slot, as the voice platform reports them.
const (
	ConfirmNone      = "NONE"
	ConfirmConfirmed = "CONFIRMED"
	ConfirmDenied    = "DENIED"
)

// Turn is one request from a voice platform, decoded into neutral form.
type Turn struct {
	// Skill is the skill name from the URL, or "" when the skill is chosen
	// by ApplicationID.
	Skill string
	// ApplicationID identifies the skill on the platform.
	ApplicationID string
	// RequestID is the platform's id of this request.
	RequestID string
	Kind      RequestKind
	// Type is the platform's request type, e.g. "IntentRequest".
	Type   string
	Intent string
	Slots  map[string]Slot
	// Confirmation is the intent's confirmation status (ConfirmNone when absent).
	Confirmation string
	UserID       string
	// AccessToken is the platform-managed account-linking token, if any.
	AccessToken Secret
	Session     map[string]any
	NewSession  bool
	Locale      string
	// Timestamp is when the platform says it sent the request.
	Timestamp time.Time
	// APIEndpoint and APIToken let the gateway send progressive responses.
	APIEndpoint string
	APIToken    Secret
}

// Slot is one slot value of an intent.
type Slot struct {
	// Value is what the user said.
	Value string
	// Resolved is the entity-resolution name when the first authority matched.
	Resolved string
	// ID is the entity-resolution id, or "".
	ID string
	// Values are the values of a slot that holds several ("cheese, ham
	// and tomatoes"), each with its own resolution; nil for one value.
	Values []Slot
}

// Text returns the slot's value as templates see it: the resolved name when
// entity resolution matched, else the spoken value. For a slot with
// several values it is their texts joined by ", ".
func (s Slot) Text() string {
	if s.Resolved != "" {
		return s.Resolved
	}
	if s.Value == "" && len(s.Values) > 0 {
		return strings.Join(s.Texts(), ", ")
	}
	return s.Value
}

// Texts returns the text of each value: the Values' texts, else the one
// value's text, else none.
func (s Slot) Texts() []string {
	if len(s.Values) > 0 {
		out := make([]string, 0, len(s.Values))
		for _, v := range s.Values {
			if t := v.Text(); t != "" {
				out = append(out, t)
			}
		}
		return out
	}
	if t := s.Text(); t != "" {
		return []string{t}
	}
	return []string{}
}

// IDs returns the entity-resolution id of each value, as Texts does.
func (s Slot) IDs() []string {
	if len(s.Values) > 0 {
		out := make([]string, 0, len(s.Values))
		for _, v := range s.Values {
			if v.Text() != "" {
				out = append(out, v.ID)
			}
		}
		return out
	}
	if s.Text() != "" {
		return []string{s.ID}
	}
	return []string{}
}

// Filled reports whether the slot has a value.
func (s Slot) Filled() bool {
	if len(s.Values) > 0 {
		return slices.ContainsFunc(s.Values, func(v Slot) bool { return v.Text() != "" })
	}
	return s.Text() != ""
}

// Sentences every platform answers with when nothing configured does.
const (
	// SayTimeout answers a turn that ran out of time.
	SayTimeout = "Sorry, that is taking too long right now. Please try again in a moment."
	// SayDefault answers a turn that failed for any other reason.
	SayDefault = "Sorry, something went wrong. Please try again later."
)

// Speech is text to be spoken, plain or SSML.
type Speech struct {
	Text string
	SSML bool
}

// CardType is the kind of card shown in the companion app.
type CardType string

// Card types.
const (
	CardSimple      CardType = "Simple"
	CardLinkAccount CardType = "LinkAccount"
)

// Card is shown in the companion app next to the speech.
type Card struct {
	Type  CardType
	Title string
	Text  string
}

// Directive is a dialog directive sent with a reply.
type Directive struct {
	// Type is e.g. "Dialog.ElicitSlot" or "Dialog.ConfirmIntent".
	Type string
	// Slot names the slot to elicit, for Dialog.ElicitSlot.
	Slot string
}

// Reply is the engine's answer to a turn.
type Reply struct {
	// Empty replies carry no speech at all (SessionEndedRequest).
	Empty      bool
	Speech     Speech
	Reprompt   *Speech
	Card       *Card
	EndSession bool
	Session    map[string]any
	Directives []Directive
	// Values are the values the turn's calls extracted, by extract name,
	// for platforms that answer with data as well as speech.
	Values map[string]any
	// Error is the error kind when Speech is error speech ("status",
	// "timeout", "unlinked", "vault", "missing", "default"); "" otherwise.
	Error string
	// CanFulfill answers a KindCanFulfill turn (with Empty speech).
	CanFulfill *CanFulfill
}

// Secret is a string that never prints: String, GoString and JSON encoding
// all redact it. Use Reveal to get the value where it is needed.
type Secret string

// Reveal returns the secret value.
func (s Secret) Reveal() string { return string(s) }

// String redacts the secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString redacts the secret.
func (s Secret) GoString() string { return `"` + s.String() + `"` }

// MarshalJSON redacts the secret.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// SecretData is the content of one secret store path: field name to value.
type SecretData map[string]Secret

// Entry is one secret store path as read, with its version for check-and-set.
type Entry struct {
	Data SecretData
	// Version is the store's version of the entry, 0 for none.
	Version int
}

// SecretStore reads and writes secrets by path, relative to the gateway's
// prefix (e.g. "users/<userId>/<service>", "services/<service>").
type SecretStore interface {
	// Read returns the entry at path, or ErrNotFound.
	Read(ctx context.Context, path string) (*Entry, error)
	// Write stores data at path. With cas >= 0 the write succeeds only when
	// the entry's current version is cas (0: the entry must not exist),
	// else it fails with ErrConflict; cas < 0 writes unconditionally.
	// It returns the new version.
	Write(ctx context.Context, path string, data SecretData, cas int) (int, error)
	// Delete removes the entry at path; deleting a missing entry is no error.
	Delete(ctx context.Context, path string) error
}

// Errors of skill selection: an unknown skill answers 404, a request whose
// application id does not match the named skill answers 400.
var (
	ErrUnknownSkill     = errors.New("unknown skill")
	ErrWrongApplication = errors.New("application id does not match the skill")
)

// Errors a SecretStore returns for callers to branch on.
var (
	ErrNotFound = errors.New("secret not found")
	ErrConflict = errors.New("check-and-set conflict")
)

// ValidUserID reports whether id is a well-formed Alexa userId, matching
// ^amzn1\.[A-Za-z0-9._-]{1,512}$: the only user-controlled value that ever
// becomes part of a secret store path. (A loop: it runs on every request.)
func ValidUserID(id string) bool {
	rest, ok := strings.CutPrefix(id, "amzn1.")
	if !ok || len(rest) == 0 || len(rest) > 512 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// MCPSubjectPrefix starts every subject that voicegw's MCP authorization
// server creates: such a user's linked tokens live beside Alexa users'.
const MCPSubjectPrefix = "mcp."

// ValidMCPSubject reports whether id is a well-formed MCP subject:
// "mcp." and 16 to 64 characters of [A-Za-z0-9_-].
func ValidMCPSubject(id string) bool {
	rest, ok := strings.CutPrefix(id, MCPSubjectPrefix)
	if !ok || len(rest) < 16 || len(rest) > 64 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ValidUser reports whether id may name a user in the secret store: an
// Alexa userId or an MCP subject. Platform envelopes check their own
// form (an Alexa request can never name an MCP subject).
func ValidUser(id string) bool { return ValidUserID(id) || ValidMCPSubject(id) }

// UserPath is the secret store path of a user's linked token for a service.
func UserPath(userID, service string) string { return "users/" + userID + "/" + service }

// ServicePath is the secret store path of a service's secrets.
func ServicePath(service string) string { return "services/" + service }

var (
	ssmlTag    = regexp.MustCompile(`<[^>]*>`)
	whitespace = regexp.MustCompile(`\s+`)
)

// Plain is the speech as plain text: SSML tags removed, entities decoded,
// whitespace collapsed (for platforms that show text, and for SSML too
// long to speak).
func (s Speech) Plain() string {
	if !s.SSML {
		return s.Text
	}
	t := ssmlTag.ReplaceAllString(s.Text, " ")
	t = html.UnescapeString(t)
	t = whitespace.ReplaceAllString(t, " ")
	t = strings.TrimSpace(t)
	// A tag between a word and its punctuation leaves a space before it.
	for _, p := range []string{".", ",", "!", "?", ";", ":"} {
		t = strings.ReplaceAll(t, " "+p, p)
	}
	return t
}
