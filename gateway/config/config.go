// Package config loads a voicegw YAML file in two phases: a strict decode
// (unknown keys are errors) after ${VAR} expansion, then a validation that
// collects every problem with its file, line, column and key path, and
// compiles templates, URLs and references between sections so that nothing
// that can be checked offline waits for a request.
package config

import (
	"net/url"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/voicegw/voicegw/gateway/render"
)

// Defaults for values the YAML may leave out.
const (
	DefaultListen             = "127.0.0.1:8080"
	DefaultMaxBodyBytes       = 128 << 10
	DefaultDeadline           = 6 * time.Second
	DefaultProgressiveAfter   = time.Second
	DefaultTimestampTolerance = 150 * time.Second
	DefaultServiceTimeout     = 3 * time.Second
	DefaultMaxResponseBytes   = 1 << 20
	DefaultCacheTTL           = 30 * time.Second
	DefaultVaultTimeout       = 2 * time.Second
	DefaultKVMount            = "secret"
	DefaultPrefix             = "voicegw"
)

// Config is a loaded and compiled configuration file.
type Config struct {
	// File is the path the configuration was read from.
	File     string              `yaml:"-"`
	Version  int                 `yaml:"version"`
	Server   Server              `yaml:"server"`
	Alexa    Alexa               `yaml:"alexa"`
	Vault    *Vault              `yaml:"vault"`
	Services map[string]*Service `yaml:"services"`
	Skills   map[string]*Skill   `yaml:"skills"`

	// Errors holds the gateway-wide error speech, compiled.
	Errors ErrorSpeech `yaml:"-"`
	// SessionRefs lists every session attribute a template reads, so that
	// the engine can give absent ones the value "".
	SessionRefs []string `yaml:"-"`
}

// Server configures the HTTP server and gateway-wide behaviour.
type Server struct {
	// Listen is the address to serve on (default 127.0.0.1:8080).
	Listen string `yaml:"listen"`
	// PublicURL is where users reach /link.
	PublicURL string `yaml:"public_url"`
	// MaxBodyBytes caps an Alexa request body; larger ones get 413.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// Deadline is the whole-turn budget from arrival (default 6s).
	Deadline Duration `yaml:"deadline"`
	// ProgressiveAfter is how long calls may run before an intent's
	// progressive speech is sent (default 1s).
	ProgressiveAfter Duration `yaml:"progressive_after"`
	// Errors maps error keys to gateway-wide speech templates (SPEC 5).
	Errors map[string]string `yaml:"errors"`
}

// Alexa configures request verification.
type Alexa struct {
	// Verify checks signatures and timestamps; false only for local testing.
	Verify *bool `yaml:"verify"`
	// TimestampTolerance is how far request.timestamp may be from the
	// gateway's clock, either side (default 150s).
	TimestampTolerance Duration `yaml:"timestamp_tolerance"`
}

// Verifying reports whether requests are verified (the default).
func (a Alexa) Verifying() bool { return a.Verify == nil || *a.Verify }

// Vault configures the secret store. A missing section, or one whose
// address expands to "", leaves the gateway without a secret store.
type Vault struct {
	Address string    `yaml:"address"`
	Auth    VaultAuth `yaml:"auth"`
	// KVMount is a KV version 2 mount (default "secret").
	KVMount string `yaml:"kv_mount"`
	// Prefix is prepended to every path (default "voicegw").
	Prefix string `yaml:"prefix"`
	// CacheTTL is how long a secret is cached (default 30s).
	CacheTTL Duration `yaml:"cache_ttl"`
	// Timeout bounds every Vault request (default 2s); a read made for a
	// turn gets at most this and what is left of the turn.
	Timeout Duration `yaml:"timeout"`
}

// VaultAuth says how the gateway logs in to Vault.
type VaultAuth struct {
	// Method is "token" (VAULT_TOKEN, the default) or "approle".
	Method       string `yaml:"method"`
	RoleID       string `yaml:"role_id"`
	SecretIDFile string `yaml:"secret_id_file"`
}

// Service is an upstream HTTP API.
type Service struct {
	Name string `yaml:"-"`
	// BaseURL is prefixed to every call's path.
	BaseURL string `yaml:"base_url"`
	// Timeout caps each call (default 3s), and never exceeds what is left
	// of the turn's deadline.
	Timeout Duration `yaml:"timeout"`
	// Retries is how often an idempotent call is retried on connect errors
	// and 502, 503 and 504.
	Retries int `yaml:"retries"`
	// Headers are sent with every call.
	Headers map[string]string `yaml:"headers"`
	Auth    ServiceAuth       `yaml:"auth"`
	OAuth2  *OAuth2           `yaml:"oauth2"`
	// MaxResponseBytes caps a response body (default 1 MiB); a larger
	// answer is an error, not memory growth.
	MaxResponseBytes int64 `yaml:"max_response_bytes"`

	// URL is BaseURL parsed.
	URL *url.URL `yaml:"-"`
	// Format is Auth.Format compiled.
	Format *render.Template `yaml:"-"`
}

// Auth types.
const (
	AuthNone   = "none"
	AuthLinked = "linked"
	AuthSecret = "secret"
	AuthAlexa  = "alexa"
)

// ServiceAuth says which credential a service gets and where it goes.
type ServiceAuth struct {
	// Type is none (default), linked, secret or alexa.
	Type string `yaml:"type"`
	// Header carries the credential (default Authorization).
	Header string `yaml:"header"`
	// Format renders the header value (default "Bearer {{ .token }}").
	Format string `yaml:"format"`
	// Field is the Vault field of services/<name> for type secret.
	Field string `yaml:"field"`
	// Query puts the credential in this query parameter instead of a header.
	Query string `yaml:"query"`
}

// OAuth2 enables account linking and token refresh for a linked service.
type OAuth2 struct {
	AuthURL  string   `yaml:"auth_url"`
	TokenURL string   `yaml:"token_url"`
	ClientID string   `yaml:"client_id"`
	Scopes   []string `yaml:"scopes"`
	// PKCE sends an S256 code challenge (default true).
	PKCE *bool `yaml:"pkce"`
}

// Skill is one Alexa skill.
type Skill struct {
	Name string `yaml:"-"`
	// ApplicationID selects the skill on POST /alexa and must match on
	// POST /alexa/:skill when set.
	ApplicationID string                  `yaml:"application_id"`
	Invocation    string                  `yaml:"invocation"`
	Launch        *Response               `yaml:"launch"`
	Help          string                  `yaml:"help"`
	Stop          string                  `yaml:"stop"`
	Fallback      string                  `yaml:"fallback"`
	Errors        map[string]string       `yaml:"errors"`
	Types         map[string][]*TypeValue `yaml:"types"`
	Intents       map[string]*Intent      `yaml:"intents"`

	// Compiled.
	LaunchC     *Compiled   `yaml:"-"`
	HelpC       *Compiled   `yaml:"-"`
	StopC       *Compiled   `yaml:"-"`
	FallbackC   *Compiled   `yaml:"-"`
	ErrorsC     ErrorSpeech `yaml:"-"`
	ExtractRefs []string    `yaml:"-"`
}

// TypeValue is one value of a custom slot type.
type TypeValue struct {
	Value    string   `yaml:"value"`
	ID       string   `yaml:"id"`
	Synonyms []string `yaml:"synonyms"`
}

// Response is what a launch or an intent answers.
type Response struct {
	Say      string            `yaml:"say"`
	Reprompt string            `yaml:"reprompt"`
	Card     *Card             `yaml:"card"`
	Session  map[string]string `yaml:"session"`
	// EndSession defaults to false for launch and true for intents.
	EndSession *bool `yaml:"end_session"`
}

// Card is a Simple card.
type Card struct {
	Title string `yaml:"title"`
	Text  string `yaml:"text"`
}

// Intent maps an intent to calls and a spoken answer.
type Intent struct {
	Response    `yaml:",inline"`
	Name        string            `yaml:"-"`
	Samples     []string          `yaml:"samples"`
	Slots       map[string]*Slot  `yaml:"slots"`
	Confirm     string            `yaml:"confirm"`
	Call        *Call             `yaml:"call"`
	Calls       []*Call           `yaml:"calls"`
	Progressive string            `yaml:"progressive"`
	Errors      map[string]string `yaml:"errors"`

	// C is the compiled intent.
	C *Compiled `yaml:"-"`
}

// Slot is one slot of an intent.
type Slot struct {
	Type     string `yaml:"type"`
	Required bool   `yaml:"required"`
	Prompt   string `yaml:"prompt"`
	// Samples are utterances for eliciting the slot.
	Samples []string `yaml:"samples"`
}

// Call is one templated HTTP call.
type Call struct {
	Service string            `yaml:"service"`
	Method  string            `yaml:"method"`
	Path    string            `yaml:"path"`
	Query   map[string]string `yaml:"query"`
	Headers map[string]string `yaml:"headers"`
	Body    yaml.Node         `yaml:"body"`
	// ContentType is json (default) or form.
	ContentType string               `yaml:"content_type"`
	Extract     map[string]yaml.Node `yaml:"extract"`
}

// Duration is a Go duration string in the YAML.
type Duration struct {
	Raw string
	D   time.Duration
}

// UnmarshalYAML keeps the raw text; validation parses it with its position.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	d.Raw = n.Value
	return nil
}

// Or returns the duration, or def when it was not set.
func (d Duration) Or(def time.Duration) time.Duration {
	if d.Raw == "" {
		return def
	}
	return d.D
}
