package alexa

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"time"
)

// RequestSpec describes an Alexa request to build, for `voicegw invoke`,
// scenarios and tests.
type RequestSpec struct {
	ApplicationID string
	UserID        string
	AccessToken   string
	// Type is LaunchRequest, IntentRequest or SessionEndedRequest.
	Type         string
	Intent       string
	Slots        map[string]string
	Confirmation string
	Session      map[string]any
	NewSession   bool
	Locale       string
	Timestamp    time.Time
	APIEndpoint  string
	APIToken     string
}

// BuildRequest returns the JSON envelope Alexa would send for spec.
func BuildRequest(spec RequestSpec) []byte {
	if spec.Locale == "" {
		spec.Locale = "en-US"
	}
	if spec.Timestamp.IsZero() {
		spec.Timestamp = time.Now()
	}
	app := map[string]any{"applicationId": spec.ApplicationID}
	user := map[string]any{"userId": spec.UserID}
	if spec.AccessToken != "" {
		user["accessToken"] = spec.AccessToken
	}
	attrs := spec.Session
	if attrs == nil {
		attrs = map[string]any{}
	}
	req := map[string]any{
		"type":      spec.Type,
		"requestId": "amzn1.echo-api.request." + randomID(),
		"timestamp": spec.Timestamp.UTC().Format(time.RFC3339),
		"locale":    spec.Locale,
	}
	switch spec.Type {
	case "IntentRequest", "CanFulfillIntentRequest":
		slots := map[string]any{}
		for k, v := range spec.Slots {
			slots[k] = map[string]any{"name": k, "value": v, "confirmationStatus": "NONE"}
		}
		conf := spec.Confirmation
		if conf == "" {
			conf = "NONE"
		}
		req["intent"] = map[string]any{"name": spec.Intent, "confirmationStatus": conf, "slots": slots}
		req["dialogState"] = "STARTED"
	case "SessionEndedRequest":
		req["reason"] = "USER_INITIATED"
	}
	system := map[string]any{"application": app, "user": user}
	if spec.APIEndpoint != "" {
		system["apiEndpoint"] = spec.APIEndpoint
		system["apiAccessToken"] = spec.APIToken
	}
	env := map[string]any{
		"version": "1.0",
		"session": map[string]any{
			"new":         spec.NewSession,
			"sessionId":   "amzn1.echo-api.session." + randomID(),
			"application": app,
			"attributes":  attrs,
			"user":        user,
		},
		"context": map[string]any{"System": system},
		"request": req,
	}
	b, _ := json.Marshal(env)
	return b
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Response is a decoded Alexa response, for callers that read what the
// gateway answered (invoke, scenarios, tests).
type Response struct {
	SessionAttributes map[string]any `json:"sessionAttributes"`
	Response          struct {
		OutputSpeech *struct {
			Type string `json:"type"`
			Text string `json:"text"`
			SSML string `json:"ssml"`
		} `json:"outputSpeech"`
		Card *struct {
			Type    string `json:"type"`
			Title   string `json:"title"`
			Content string `json:"content"`
		} `json:"card"`
		Reprompt *struct {
			OutputSpeech *struct {
				Type string `json:"type"`
				Text string `json:"text"`
				SSML string `json:"ssml"`
			} `json:"outputSpeech"`
		} `json:"reprompt"`
		ShouldEndSession *bool `json:"shouldEndSession"`
		// CanFulfillIntent answers a CanFulfillIntentRequest.
		CanFulfillIntent map[string]any `json:"canFulfillIntent"`
		Directives       []struct {
			Type         string `json:"type"`
			SlotToElicit string `json:"slotToElicit"`
		} `json:"directives"`
	} `json:"response"`
}

// Speech returns the text or SSML of the response's speech.
func (r *Response) Speech() string {
	if s := r.Response.OutputSpeech; s != nil {
		if s.Type == "SSML" {
			return s.SSML
		}
		return s.Text
	}
	return ""
}

// Reprompt returns the text or SSML of the reprompt.
func (r *Response) Reprompt() string {
	if rp := r.Response.Reprompt; rp != nil && rp.OutputSpeech != nil {
		if rp.OutputSpeech.Type == "SSML" {
			return rp.OutputSpeech.SSML
		}
		return rp.OutputSpeech.Text
	}
	return ""
}
