// Package config loads a voicegw YAML file in two phases: a strict decode
// (unknown keys are errors) after ${VAR} expansion, then a validation that
// collects every problem with its file, line, column and key path, and
// compiles templates, URLs and references between sections so that nothing
// that can be checked offline waits for a request.
package config

import (
	"net"
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
	File string `yaml:"-"`
	// Version of the configuration format: 1.
	Version int `yaml:"version" jsonschema:"required"`
	// Server configures the HTTP server and gateway-wide behaviour.
	Server Server `yaml:"server"`
	// Alexa configures request verification.
	Alexa Alexa `yaml:"alexa"`
	// Vault is where secrets and linked tokens live; without it, linked
	// services answer "unlinked" and secret services "vault".
	Vault *Vault `yaml:"vault"`
	// Services are the upstream HTTP APIs, by name.
	Services map[string]*Service `yaml:"services"`
	// Skills are the Alexa skills, by name (used in POST /alexa/NAME).
	Skills map[string]*Skill `yaml:"skills" jsonschema:"required"`
	// MCP exposes skills as MCP tools (SPEC 13); nil: off.
	MCP *MCP `yaml:"mcp"`

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
	Errors map[string]Text `yaml:"errors"`
	// TrustedProxies lists the CIDRs of load balancers whose
	// X-Forwarded-For header is believed (SPEC 10); default none.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// MetricsListen, when set, serves /metrics on this address only
	// instead of on Listen, so that metrics need not be public.
	MetricsListen string `yaml:"metrics_listen"`
	// DebugListen, when set, serves net/http/pprof on this address (off by
	// default; check warns when it is not a loopback address).
	DebugListen string `yaml:"debug_listen"`

	// TrustedNets is TrustedProxies parsed.
	TrustedNets []*net.IPNet `yaml:"-"`
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
	// Address is the Vault URL, e.g. ${VAULT_ADDR}; empty means no Vault.
	Address string `yaml:"address"`
	// Auth says how the gateway logs in.
	Auth VaultAuth `yaml:"auth"`
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
	Method string `yaml:"method"`
	// RoleID is the AppRole role id (approle only).
	RoleID string `yaml:"role_id"`
	// SecretIDFile holds the AppRole secret id, re-read at every login
	// (approle only).
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
	// Auth says which credential the service gets and where it goes.
	Auth ServiceAuth `yaml:"auth"`
	// OAuth2 enables account linking (/link) and token refresh for a
	// linked service.
	OAuth2 *OAuth2 `yaml:"oauth2"`
	// MaxResponseBytes caps a response body (default 1 MiB); a larger
	// answer is an error, not memory growth.
	MaxResponseBytes int64 `yaml:"max_response_bytes"`

	// URL is BaseURL parsed, without a trailing slash.
	URL *url.URL `yaml:"-"`
	// Base is URL as text, the prefix of every call's URL.
	Base string `yaml:"-"`
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
	// AuthURL is the provider's authorization endpoint.
	AuthURL string `yaml:"auth_url"`
	// TokenURL is the provider's token endpoint.
	TokenURL string `yaml:"token_url"`
	// ClientID is the OAuth client id; the client secret is the Vault
	// field services/<name>.client_secret.
	ClientID string `yaml:"client_id"`
	// Scopes are requested at authorization.
	Scopes []string `yaml:"scopes"`
	// PKCE sends an S256 code challenge (default true).
	PKCE *bool `yaml:"pkce"`
}

// Skill is one Alexa skill.
type Skill struct {
	Name string `yaml:"-"`
	// ApplicationID selects the skill on POST /alexa and must match on
	// POST /alexa/:skill when set.
	ApplicationID string `yaml:"application_id"`
	// Locales are the locales the skill is published in (default
	// [en-US]); every text of the skill may be given per locale.
	Locales []string `yaml:"locales"`
	// Invocation is the invocation name of the interaction model: lower
	// case words, no digits or symbols, no wake words, launch phrases,
	// "skill" or "app". It may be given per locale.
	Invocation Text `yaml:"invocation"`
	// Launch answers a LaunchRequest; it sees no slot and no extract.
	Launch *Response `yaml:"launch"`
	// Help is what AMAZON.HelpIntent says (a template).
	Help Text `yaml:"help"`
	// Stop is what AMAZON.StopIntent and AMAZON.CancelIntent say.
	Stop Text `yaml:"stop"`
	// Fallback is what AMAZON.FallbackIntent says.
	Fallback Text `yaml:"fallback"`
	// Errors maps error keys ("404", 4xx, timeout, unlinked, vault,
	// missing, default) to speech for every intent of the skill.
	Errors map[string]Text `yaml:"errors"`
	// Types are the custom slot types, by name.
	Types map[string][]*TypeValue `yaml:"types"`
	// Intents are the intents, by name; AMAZON.* names override built-ins.
	Intents map[string]*Intent `yaml:"intents"`

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
	// Value is what .slots.NAME holds when the user says it or a synonym;
	// it may be given per locale.
	Value Text `yaml:"value"`
	// ID is the entity-resolution id, .slot_ids.NAME.
	ID string `yaml:"id"`
	// Synonyms resolve to Value; they may be given per locale.
	Synonyms TextList `yaml:"synonyms"`
}

// Response is what a launch or an intent answers.
type Response struct {
	// Say is the speech template; SSML when it starts with <speak>.
	Say Text `yaml:"say"`
	// Reprompt is said when the user does not answer.
	Reprompt Text `yaml:"reprompt"`
	// Card is a Simple card shown in the Alexa app.
	Card *Card `yaml:"card"`
	// Session maps session attributes to set to templates.
	Session map[string]string `yaml:"session"`
	// EndSession defaults to false for launch and true for intents.
	EndSession *bool `yaml:"end_session"`
}

// Card is a Simple card.
type Card struct {
	// Title is the card's title template.
	Title Text `yaml:"title"`
	// Text is the card's text template.
	Text Text `yaml:"text"`
}

// Intent maps an intent to calls and a spoken answer.
type Intent struct {
	Response `yaml:",inline"`
	Name     string `yaml:"-"`
	// Samples are sample utterances: letters, spaces, apostrophes,
	// periods and hyphens, numbers spelled out, {Slot} for a slot. They
	// may be given per locale.
	Samples TextList `yaml:"samples"`
	// Slots are the intent's slots, by name.
	Slots map[string]*Slot `yaml:"slots"`
	// Confirm is asked (Dialog.ConfirmIntent) before the calls run; it
	// sees slots, not extracts.
	Confirm Text `yaml:"confirm"`
	// Call is one HTTP call.
	Call *Call `yaml:"call"`
	// Calls are HTTP calls run in order, each seeing the extracts of the
	// calls before it.
	Calls []*Call `yaml:"calls"`
	// Progressive is spoken while slow calls run; it sees slots, not
	// extracts.
	Progressive Text `yaml:"progressive"`
	// Errors maps error keys to speech for this intent.
	Errors map[string]Text `yaml:"errors"`

	// C is the compiled intent.
	C *Compiled `yaml:"-"`

	// Description describes the intent as an MCP tool (default: its
	// first sample).
	Description string `yaml:"description"`
}

// Slot is one slot of an intent.
type Slot struct {
	// Type is a custom type of the skill or a built-in AMAZON.* type
	// (case-sensitive, e.g. AMAZON.NUMBER).
	Type string `yaml:"type"`
	// Required slots are elicited with Prompt before the calls run.
	Required bool `yaml:"required"`
	// Prompt asks for a required slot; it sees slots, not extracts.
	Prompt Text `yaml:"prompt"`
	// Samples are utterances for eliciting the slot.
	Samples TextList `yaml:"samples"`
	// Multiple accepts several values in one slot ("cheese, ham and
	// tomatoes"): .slots.NAME is then a list.
	Multiple bool `yaml:"multiple"`
}

// Call is one templated HTTP call.
type Call struct {
	// Service is the name of a service.
	Service string `yaml:"service"`
	// Method is the HTTP method (default GET).
	Method string `yaml:"method"`
	// Path is a template; each action is escaped as one path segment.
	Path string `yaml:"path"`
	// Query maps query parameters to templates.
	Query map[string]string `yaml:"query"`
	// Headers maps headers to templates.
	Headers map[string]string `yaml:"headers"`
	// Body is a YAML value whose string leaves are templates, sent as
	// JSON (or a form with content_type: form).
	Body yaml.Node `yaml:"body"`
	// ContentType is json (default) or form.
	ContentType string `yaml:"content_type"`
	// Extract maps names to gjson paths (or {path, required}) over the
	// JSON answer; each name is then a template field.
	Extract map[string]yaml.Node `yaml:"extract"`
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
