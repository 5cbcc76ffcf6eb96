// Package alexa adapts the Alexa Skills Kit to the neutral pipeline: it
// decodes and validates the request envelope into a gateway.Turn, encodes a
// gateway.Reply as an Alexa response within Alexa's limits, and serves a
// request end to end (verification, skill selection, engine) independent of
// any HTTP framework.
package alexa

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/tidwall/gjson"

	"github.com/voicegw/voicegw/gateway"
)

// SkillDisabled is the skill event of a user who disabled the skill.
const SkillDisabled = "AlexaSkillEvent.SkillDisabled"

// SkillEvent reports whether a request type is a skill event
// (AlexaSkillEvent.*): events are accepted up to EventMaxAge old.
func SkillEvent(requestType string) bool { return strings.HasPrefix(requestType, "AlexaSkillEvent.") }

// ErrEnvelope marks a body that is not a valid Alexa request envelope.
var ErrEnvelope = errors.New("invalid Alexa envelope")

type envelope struct {
	Version string `json:"version"`
	Session *struct {
		New         bool           `json:"new"`
		SessionID   string         `json:"sessionId"`
		Application application    `json:"application"`
		Attributes  map[string]any `json:"attributes"`
		User        user           `json:"user"`
	} `json:"session"`
	Context *struct {
		System struct {
			Application    application `json:"application"`
			User           user        `json:"user"`
			APIEndpoint    string      `json:"apiEndpoint"`
			APIAccessToken string      `json:"apiAccessToken"`
		} `json:"System"`
	} `json:"context"`
	Request *request `json:"request"`
}

type application struct {
	ApplicationID string `json:"applicationId"`
}

type user struct {
	UserID      string `json:"userId"`
	AccessToken string `json:"accessToken"`
}

type request struct {
	Type        string          `json:"type"`
	RequestID   string          `json:"requestId"`
	Timestamp   json.RawMessage `json:"timestamp"`
	Locale      string          `json:"locale"`
	DialogState string          `json:"dialogState"`
	Intent      *struct {
		Name               string          `json:"name"`
		ConfirmationStatus string          `json:"confirmationStatus"`
		Slots              map[string]slot `json:"slots"`
	} `json:"intent"`
}

type slot struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	// SlotValue is how Alexa sends a multi-value slot: type List with
	// the values, each of type Simple with its own resolutions.
	SlotValue *struct {
		Type   string      `json:"type"`
		Values []slotValue `json:"values"`
	} `json:"slotValue"`
	Resolutions *resolutions `json:"resolutions"`
}

type slotValue struct {
	Type        string       `json:"type"`
	Value       string       `json:"value"`
	Resolutions *resolutions `json:"resolutions"`
}

type resolutions struct {
	ResolutionsPerAuthority []struct {
		Status struct {
			Code string `json:"code"`
		} `json:"status"`
		Values []struct {
			Value struct {
				Name string `json:"name"`
				ID   string `json:"id"`
			} `json:"value"`
		} `json:"values"`
	} `json:"resolutionsPerAuthority"`
}

// maxDepth bounds JSON nesting; Alexa envelopes are a few levels deep.
const maxDepth = 32

// Decode validates body as an Alexa request envelope and returns the turn.
// Errors wrap ErrEnvelope and say what is wrong, without echoing values.
//
// The body is decoded with github.com/go-json-experiment/json (JSON v2),
// which rejects invalid JSON and UTF-8 and exactly duplicate names, and
// matches field names case-sensitively; checkKeys then rejects what is
// left: keys equal ignoring case, and nesting deeper than maxDepth.
func Decode(body []byte) (*gateway.Turn, error) {
	if !utf8.Valid(body) {
		return nil, fmt.Errorf("%w: body is not UTF-8", ErrEnvelope)
	}
	var env envelope
	if err := jsonv2.Unmarshal(body, &env); err != nil {
		var se *jsonv2.SemanticError
		switch {
		case errors.Is(err, jsontext.ErrDuplicateName):
			return nil, fmt.Errorf("%w: duplicate key", ErrEnvelope)
		case errors.As(err, new(*jsontext.SyntacticError)):
			return nil, fmt.Errorf("%w: not JSON", ErrEnvelope)
		case errors.As(err, &se) && se.JSONPointer == "":
			return nil, fmt.Errorf("%w: not a JSON object", ErrEnvelope)
		case se != nil:
			return nil, fmt.Errorf("%w: %s has the wrong type", ErrEnvelope, fieldPath(se.JSONPointer))
		}
		return nil, fmt.Errorf("%w: not JSON", ErrEnvelope)
	}
	if err := checkKeys(gjson.ParseBytes(body)); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrEnvelope, err)
	}
	return env.turn()
}

// fieldPath turns the JSON pointer of a wrongly typed member into the
// dotted path of its field, with a slot's name (a key the request
// chooses) as "*", so that the error echoes nothing of the request.
func fieldPath(ptr jsontext.Pointer) string {
	var b strings.Builder
	prev := ""
	for tok := range ptr.Tokens() {
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		if prev == "slots" || b.Len() > 64 {
			tok = "*"
		}
		b.WriteString(tok)
		prev = tok
	}
	return b.String()
}

func (env *envelope) turn() (*gateway.Turn, error) {
	bad := func(what string) error { return fmt.Errorf("%w: %s", ErrEnvelope, what) }
	if env.Version == "" {
		return nil, bad("version is missing")
	}
	req := env.Request
	if req == nil {
		return nil, bad("request is missing")
	}
	if req.Type == "" {
		return nil, bad("request.type is missing")
	}
	if req.RequestID == "" {
		return nil, bad("request.requestId is missing")
	}
	ts, err := parseTimestamp(req.Timestamp)
	if err != nil {
		return nil, bad("request.timestamp: " + err.Error())
	}
	t := &gateway.Turn{
		Type:         req.Type,
		RequestID:    req.RequestID,
		Timestamp:    ts,
		Locale:       req.Locale,
		Confirmation: gateway.ConfirmNone,
	}
	var appID string
	var u user
	if env.Context != nil {
		sys := env.Context.System
		appID, u = sys.Application.ApplicationID, sys.User
		t.APIEndpoint = sys.APIEndpoint
		t.APIToken = gateway.Secret(sys.APIAccessToken)
	}
	if s := env.Session; s != nil {
		if appID == "" {
			appID = s.Application.ApplicationID
		}
		if u.UserID == "" {
			u.UserID = s.User.UserID
		}
		if u.AccessToken == "" {
			u.AccessToken = s.User.AccessToken
		}
		t.Session = s.Attributes
		t.NewSession = s.New
	}
	if appID == "" {
		return nil, bad("application id is missing")
	}
	if u.UserID == "" {
		return nil, bad("user id is missing")
	}
	if !gateway.ValidUserID(u.UserID) {
		return nil, bad("user id is malformed")
	}
	t.ApplicationID = appID
	t.UserID = u.UserID
	t.AccessToken = gateway.Secret(u.AccessToken)
	switch req.Type {
	case "LaunchRequest":
		t.Kind = gateway.KindLaunch
	case "SessionEndedRequest":
		t.Kind = gateway.KindSessionEnded
	case SkillDisabled:
		t.Kind = gateway.KindDisabled
	case "IntentRequest", "CanFulfillIntentRequest":
		t.Kind = gateway.KindIntent
		if req.Type == "CanFulfillIntentRequest" {
			t.Kind = gateway.KindCanFulfill
		}
		if req.Intent == nil || req.Intent.Name == "" {
			return nil, bad("request.intent.name is missing")
		}
		t.Intent = req.Intent.Name
		if c := req.Intent.ConfirmationStatus; c != "" {
			t.Confirmation = c
		}
		t.Slots = make(map[string]gateway.Slot, len(req.Intent.Slots))
		for name, s := range req.Intent.Slots {
			t.Slots[name] = s.neutral()
		}
	default:
		t.Kind = gateway.KindOther
	}
	return t, nil
}

func (s slot) neutral() gateway.Slot {
	out := gateway.Slot{Value: s.Value}
	out.Resolved, out.ID = s.Resolutions.first()
	if sv := s.SlotValue; sv != nil && sv.Type == "List" {
		out.Values = make([]gateway.Slot, 0, len(sv.Values))
		for _, v := range sv.Values {
			item := gateway.Slot{Value: v.Value}
			item.Resolved, item.ID = v.Resolutions.first()
			out.Values = append(out.Values, item)
		}
	}
	return out
}

// first returns the name and id the first authority matched, or "".
func (r *resolutions) first() (name, id string) {
	if r == nil || len(r.ResolutionsPerAuthority) == 0 {
		return "", ""
	}
	first := r.ResolutionsPerAuthority[0]
	if first.Status.Code == "ER_SUCCESS_MATCH" && len(first.Values) > 0 {
		return first.Values[0].Value.Name, first.Values[0].Value.ID
	}
	return "", ""
}

// parseTimestamp accepts ISO 8601 strings, as Alexa sends them, and epoch
// milliseconds, as some request types do.
func parseTimestamp(raw json.RawMessage) (time.Time, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}, errors.New("missing")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		ts, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return time.Time{}, errors.New("not an ISO 8601 time")
		}
		return ts, nil
	}
	ms, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return time.Time{}, errors.New("not a time")
	}
	return time.UnixMilli(ms), nil
}

// checkKeys walks a document that is valid JSON and rejects what the
// decoder accepts but two parsers could read differently (SPEC 10): object
// keys equal ignoring case (Unicode simple folding, as strings.EqualFold),
// since encoding/json and many other decoders match field names that way
// ("UserId" after "userId" would be read as the user id), and nesting
// deeper than maxDepth.
func checkKeys(v gjson.Result) error {
	var buf [64]string
	w := keyWalker{keys: buf[:0]}
	return w.walk(v, 0)
}

// keyWalker keeps the keys of the objects being walked in one stack, so
// that a walk allocates nothing for the envelope's small objects.
type keyWalker struct {
	keys []string
}

func (w *keyWalker) walk(v gjson.Result, depth int) error {
	if !v.IsObject() && !v.IsArray() {
		return nil
	}
	if depth >= maxDepth {
		return errors.New("nested too deeply")
	}
	var err error
	obj := v.IsObject()
	from := len(w.keys) // this object's keys are w.keys[from:]
	v.ForEach(func(k, val gjson.Result) bool {
		if obj {
			key := k.String()
			for _, seen := range w.keys[from:] {
				if strings.EqualFold(seen, key) {
					err = errors.New("duplicate key (ignoring case)")
					return false
				}
			}
			w.keys = append(w.keys, key)
		}
		err = w.walk(val, depth+1)
		return err == nil
	})
	w.keys = w.keys[:from]
	return err
}
