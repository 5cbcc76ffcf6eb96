package alexa

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/voicegw/voicegw/gateway"
)

// Progressive sends progressive responses through the Alexa Progressive
// Response API: POST {apiEndpoint}/v1/directives with the request's
// apiAccessToken and a VoicePlayer.Speak directive.
type Progressive struct {
	// Client sends the directive; nil means a client with a 2 s timeout.
	Client *http.Client
	// Allow reports whether an apiEndpoint may be called; nil allows only
	// https://*.amazonalexa.com, so a request cannot make the gateway post
	// its token elsewhere.
	Allow func(endpoint string) bool
}

// AlexaEndpoint reports whether endpoint is an Alexa API endpoint.
func AlexaEndpoint(endpoint string) bool {
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "https" || u.User != nil {
		return false
	}
	host := strings.ToLower(u.Hostname())
	return host == "api.amazonalexa.com" || strings.HasSuffix(host, ".amazonalexa.com")
}

// Send implements engine.Progress.
func (p *Progressive) Send(ctx context.Context, t *gateway.Turn, s gateway.Speech) error {
	allow := p.Allow
	if allow == nil {
		allow = AlexaEndpoint
	}
	if t.APIEndpoint == "" || t.APIToken == "" {
		return errors.New("progressive response: the request has no apiEndpoint or apiAccessToken")
	}
	if !allow(t.APIEndpoint) {
		return errors.New("progressive response: apiEndpoint is not an Alexa endpoint")
	}
	body, _ := json.Marshal(map[string]any{
		"header":    map[string]string{"requestId": t.RequestID},
		"directive": map[string]string{"type": "VoicePlayer.Speak", "speech": s.Text},
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(t.APIEndpoint, "/")+"/v1/directives", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("progressive response: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+t.APIToken.Reveal())
	req.Header.Set("Content-Type", "application/json")
	client := p.Client
	if client == nil {
		client = &http.Client{Timeout: 2 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("progressive response: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("progressive response: Alexa answered %d", resp.StatusCode)
	}
	return nil
}
