package mcp

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	sdkauth "github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/time/rate"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/gateway/ratelimit"
	"github.com/voicegw/voicegw/templates"
)

// pages are the authorization server's HTML pages (the consent page),
// embedded in the binary.
var pages = template.Must(template.ParseFS(templates.FS, "layout.html", "consent.html"))

// Lifetimes of what the authorization server issues.
const (
	// CodeTTL is how long an authorization code may be redeemed.
	CodeTTL = 2 * time.Minute
	// FlowTTL is how long a browser may take to link every service.
	FlowTTL = 15 * time.Minute
	// AccessTTL is the lifetime of an access token.
	AccessTTL = time.Hour
	// RefreshTTL is the lifetime of a refresh token; each refresh
	// replaces it.
	RefreshTTL = 30 * 24 * time.Hour
)

// Secret store paths of the authorization server, relative to the
// prefix. Codes and tokens are stored under the hex SHA-256 of their
// value only, so the store never holds one that works.
const (
	clientsPath = "mcp-clients/"
	// StaticClientSecretPath + id holds a static client's client_secret.
	StaticClientSecretPath = "services/mcp-clients/"
	codesPath              = "mcp-codes/"
	flowsPath              = "mcp-codes/flows/"
	tokensPath             = "mcp-tokens/"
	grantsPath             = "mcp-tokens/grants/"
)

// GrantPath is the store path of a subject's grant: every token of the
// subject works only while it exists, so deleting it revokes them all.
func GrantPath(subject string) string { return grantsPath + subject }

// TokenPath is the store path of a token of voicegw's own.
func TokenPath(token string) string { return tokensPath + hash(token) }

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// Fields of the stored entries.
const (
	fClientID     = "client_id"
	fRedirectURIs = "redirect_uris"
	fRedirectURI  = "redirect_uri"
	fClientName   = "client_name"
	fChallenge    = "code_challenge"
	fState        = "state"
	fSubject      = "subject"
	fExpiresAt    = "expires_at"
	fUsed         = "used"
	fKind         = "kind"
	fBrowser      = "browser"
	fServices     = "services"
	fCreatedAt    = "created_at"
	fClientSecret = "client_secret"
	// fConsent is set on a flow once the user allowed the client (at
	// once for a static client).
	fConsent = "consent"
)

// Token kinds.
const (
	kindAccess  = "access"
	kindRefresh = "refresh"
)

// Linker runs a provider's linking flow for a user in the browser; see
// linking.Linker.Begin.
type Linker interface {
	Begin(ctx context.Context, w http.ResponseWriter, r *http.Request, svc *config.Service, userID, next string) error
}

// AuthServer is voicegw's OAuth 2.1 authorization server for /mcp: RFC
// 8414 metadata, RFC 7591 registration, the authorization endpoint that
// links the user's accounts through the providers' flows, and the token
// endpoint with refresh rotation. Its state lives in the secret store, so
// any replica serves any step.
type AuthServer struct {
	cfg    *config.Config
	store  gateway.SecretStore
	linker Linker
	log    *slog.Logger
	now    func() time.Time
	issuer string
	https  bool
	// register bounds dynamic registrations and authorize the
	// authorizations started, which anyone may send and which each write
	// to the store.
	register, authorize *rate.Limiter
	clients             *ratelimit.Window
}

// AuthOptions are optional collaborators of an AuthServer.
type AuthOptions struct {
	Logger *slog.Logger
	Now    func() time.Time
	// Register limits dynamic registrations (nil: 1 a second, bursts of 20).
	Register *rate.Limiter
	// Authorize limits the authorizations started (nil: 5 a second,
	// bursts of 50).
	Authorize *rate.Limiter
	// Clients limits registrations and authorizations per client address
	// (IPv6 per /64), so that one client cannot use up the ceilings above
	// (nil: ClientAttempts per ClientWindow).
	Clients *ratelimit.Window
}

// The default per-client limit of registrations and authorizations.
const (
	ClientAttempts = 20
	ClientWindow   = 10 * time.Minute
)

// NewAuthServer returns the authorization server of cfg over store (nil:
// every endpoint answers temporarily_unavailable); linker may be nil when
// no exposed tool needs a linked service.
func NewAuthServer(cfg *config.Config, store gateway.SecretStore, linker Linker, opts AuthOptions) *AuthServer {
	a := &AuthServer{cfg: cfg, store: store, linker: linker, log: opts.Logger, now: opts.Now,
		issuer: strings.TrimSuffix(cfg.Server.PublicURL, "/"), register: opts.Register, authorize: opts.Authorize,
		clients: opts.Clients}
	a.https = strings.HasPrefix(a.issuer, "https://")
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.register == nil {
		a.register = rate.NewLimiter(1, 20)
	}
	if a.authorize == nil {
		a.authorize = rate.NewLimiter(5, 50)
	}
	if a.clients == nil {
		a.clients = ratelimit.New(ClientAttempts, ClientWindow, 0)
	}
	return a
}

// allow reports whether the client of r may register or start an
// authorization now: within its own limit and the process's ceiling.
func (a *AuthServer) allow(r *http.Request, ceiling *rate.Limiter) bool {
	return a.clients.Allow(ratelimit.ClientKey(r.RemoteAddr), a.now()) && ceiling.Allow()
}

// ResourceURL is the URL of the protected resource, /mcp.
func (a *AuthServer) ResourceURL() string { return a.issuer + "/mcp" }

// ResourceMetadataURL is where RFC 9728 metadata is served.
func (a *AuthServer) ResourceMetadataURL() string {
	return a.issuer + "/.well-known/oauth-protected-resource"
}

// Protect wraps h with the SDK's bearer-token check: a request without a
// token of voicegw's own answers 401 with a WWW-Authenticate header that
// names the resource metadata.
func (a *AuthServer) Protect(h http.Handler) http.Handler {
	return sdkauth.RequireBearerToken(a.Verify, &sdkauth.RequireBearerTokenOptions{
		ResourceMetadataURL: a.ResourceMetadataURL(),
	})(h)
}

// Verify is the sdk auth.TokenVerifier of access tokens.
func (a *AuthServer) Verify(ctx context.Context, token string, r *http.Request) (*sdkauth.TokenInfo, error) {
	fail := func(reason string) (*sdkauth.TokenInfo, error) {
		a.log.Warn("mcp token refused", "reason", reason)
		return nil, fmt.Errorf("%w: %s", sdkauth.ErrInvalidToken, reason)
	}
	if a.store == nil {
		return fail("no token store")
	}
	if len(token) > 256 {
		return fail("malformed token")
	}
	e, err := a.store.Read(ctx, TokenPath(token))
	if errors.Is(err, gateway.ErrNotFound) {
		return fail("unknown token")
	}
	if err != nil {
		a.log.Error("mcp token check failed", "error", err.Error())
		return nil, errors.New("token store unavailable")
	}
	if e.Data[fKind].Reveal() != kindAccess {
		return fail("not an access token")
	}
	exp, ok := expiry(e)
	if !ok || !a.now().Before(exp) {
		return fail("token expired")
	}
	subject := e.Data[fSubject].Reveal()
	if ok, err := a.granted(ctx, subject); err != nil {
		a.log.Error("mcp token check failed", "error", err.Error())
		return nil, errors.New("token store unavailable")
	} else if !ok {
		return fail("token revoked")
	}
	return &sdkauth.TokenInfo{UserID: subject, Expiration: exp,
		Extra: map[string]any{fClientID: e.Data[fClientID].Reveal()}}, nil
}

// granted reports whether subject's grant stands.
func (a *AuthServer) granted(ctx context.Context, subject string) (bool, error) {
	if !gateway.ValidMCPSubject(subject) {
		return false, nil
	}
	_, err := a.store.Read(ctx, GrantPath(subject))
	if errors.Is(err, gateway.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

func expiry(e *gateway.Entry) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339, e.Data[fExpiresAt].Reveal())
	return t, err == nil
}

// ResourceMetadata is the RFC 9728 metadata of /mcp.
func (a *AuthServer) ResourceMetadata() *oauthex.ProtectedResourceMetadata {
	return &oauthex.ProtectedResourceMetadata{
		Resource:               a.ResourceURL(),
		AuthorizationServers:   []string{a.issuer},
		BearerMethodsSupported: []string{"header"},
		ResourceName:           "voicegw",
	}
}

// Metadata is the RFC 8414 metadata of the authorization server.
func (a *AuthServer) Metadata() *oauthex.AuthServerMeta {
	return &oauthex.AuthServerMeta{
		Issuer:                                     a.issuer,
		AuthorizationEndpoint:                      a.issuer + "/oauth/authorize",
		TokenEndpoint:                              a.issuer + "/oauth/token",
		RegistrationEndpoint:                       a.issuer + "/oauth/register",
		ResponseTypesSupported:                     []string{"code"},
		GrantTypesSupported:                        []string{"authorization_code", "refresh_token"},
		TokenEndpointAuthMethodsSupported:          []string{"none", "client_secret_basic", "client_secret_post"},
		CodeChallengeMethodsSupported:              []string{"S256"},
		AuthorizationResponseIssParameterSupported: true,
	}
}

// oauthError is an RFC 6749 section 5.2 error answer.
type oauthError struct {
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// fail answers an OAuth error as JSON and logs why, without secrets.
func (a *AuthServer) fail(w http.ResponseWriter, endpoint string, status int, code, desc, reason string, attrs ...any) {
	a.log.Warn("mcp oauth refused", append([]any{"endpoint", endpoint, "status", status, "error", code, "reason", reason}, attrs...)...)
	writeJSON(w, status, oauthError{Code: code, Description: desc})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (a *AuthServer) serveMetadata(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET")
		a.fail(w, "metadata", http.StatusMethodNotAllowed, "invalid_request", "use GET", "method "+r.Method)
		return
	}
	writeJSON(w, http.StatusOK, a.Metadata())
}

// client is a registered OAuth client.
type client struct {
	id           string
	name         string
	redirectURIs []string
	// static clients authenticate with their secret.
	static bool
	secret gateway.Secret
}

var clientIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

var errNoClient = errors.New("unknown client")

// client looks a client up: a static one of mcp.clients (secret from the
// store), else a dynamically registered one.
func (a *AuthServer) client(ctx context.Context, id string) (*client, error) {
	if !clientIDRe.MatchString(id) {
		return nil, errNoClient
	}
	if sc := a.cfg.MCP.Clients[id]; sc != nil {
		c := &client{id: id, redirectURIs: sc.RedirectURIs, static: true}
		e, err := a.store.Read(ctx, StaticClientSecretPath+id)
		switch {
		case err == nil:
			c.secret = e.Data[fClientSecret]
		case !errors.Is(err, gateway.ErrNotFound):
			return nil, err
		}
		return c, nil
	}
	e, err := a.store.Read(ctx, clientsPath+id)
	if errors.Is(err, gateway.ErrNotFound) {
		return nil, errNoClient
	}
	if err != nil {
		return nil, err
	}
	c := &client{id: id, name: e.Data[fClientName].Reveal()}
	if json.Unmarshal([]byte(e.Data[fRedirectURIs].Reveal()), &c.redirectURIs) != nil {
		return nil, errNoClient
	}
	return c, nil
}

// registration is an RFC 7591 client registration request and answer.
type registration struct {
	RedirectURIs            []string `json:"redirect_uris"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method,omitempty"`
	GrantTypes              []string `json:"grant_types,omitempty"`
	ResponseTypes           []string `json:"response_types,omitempty"`
	ClientName              string   `json:"client_name,omitempty"`
	ClientID                string   `json:"client_id,omitempty"`
	ClientIDIssuedAt        int64    `json:"client_id_issued_at,omitempty"`
}

// serveRegister is RFC 7591 dynamic registration: public clients (no
// secret, PKCE), with absolute redirect URIs.
func (a *AuthServer) serveRegister(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	const ep = "register"
	if !a.allow(r, a.register) {
		w.Header().Set("Retry-After", "60")
		a.fail(w, ep, http.StatusTooManyRequests, "temporarily_unavailable", "too many registrations, try again later", "registration limit")
		return
	}
	var reg registration
	body, err := io.ReadAll(io.LimitReader(r.Body, 16<<10+1))
	if err != nil || len(body) > 16<<10 || json.Unmarshal(body, &reg) != nil {
		a.fail(w, ep, http.StatusBadRequest, "invalid_client_metadata", "the body must be a JSON object of client metadata", "malformed body")
		return
	}
	if len(reg.RedirectURIs) == 0 || len(reg.RedirectURIs) > 10 {
		a.fail(w, ep, http.StatusBadRequest, "invalid_redirect_uri", "between 1 and 10 redirect_uris are required", "redirect uri count")
		return
	}
	for _, u := range reg.RedirectURIs {
		if msg := config.CheckRedirectURI(u); msg != "" || len(u) > 2000 {
			a.fail(w, ep, http.StatusBadRequest, "invalid_redirect_uri", "redirect URIs must be absolute, without a fragment, https unless on localhost", "bad redirect uri")
			return
		}
	}
	for _, g := range reg.GrantTypes {
		if g != "authorization_code" && g != "refresh_token" {
			a.fail(w, ep, http.StatusBadRequest, "invalid_client_metadata", "grant_types may be authorization_code and refresh_token", "grant type "+firstWord(g))
			return
		}
	}
	for _, t := range reg.ResponseTypes {
		if t != "code" {
			a.fail(w, ep, http.StatusBadRequest, "invalid_client_metadata", "response_types may only be code", "response type "+firstWord(t))
			return
		}
	}
	if len(reg.ClientName) > 200 {
		reg.ClientName = reg.ClientName[:200]
	}
	uris, _ := json.Marshal(reg.RedirectURIs)
	now := a.now()
	id := randomString(16)
	data := gateway.SecretData{
		fRedirectURIs: gateway.Secret(uris),
		fClientName:   gateway.Secret(reg.ClientName),
		fCreatedAt:    gateway.Secret(now.UTC().Format(time.RFC3339)),
	}
	if _, err := a.store.Write(ctx, clientsPath+id, data, 0); err != nil {
		a.unavailable(w, ep, err)
		return
	}
	a.log.Info("mcp client registered", "client_id", id)
	out := registration{
		RedirectURIs: reg.RedirectURIs, TokenEndpointAuthMethod: "none",
		GrantTypes: []string{"authorization_code", "refresh_token"}, ResponseTypes: []string{"code"},
		ClientName: reg.ClientName, ClientID: id, ClientIDIssuedAt: now.Unix(),
	}
	writeJSON(w, http.StatusCreated, out)
}

func (a *AuthServer) unavailable(w http.ResponseWriter, ep string, err error) {
	a.log.Error("mcp oauth: secret store failed", "endpoint", ep, "error", err.Error())
	writeJSON(w, http.StatusServiceUnavailable, oauthError{Code: "temporarily_unavailable", Description: "try again later"})
}

var challengeRe = regexp.MustCompile(`^[A-Za-z0-9_-]{43,128}$`)

// serveAuthorize starts an authorization: it checks the client and its
// exact redirect URI (else it answers the browser itself, never
// redirecting to an unchecked URI), requires PKCE S256, creates the
// subject, binds the flow to the browser and links the services.
func (a *AuthServer) serveAuthorize(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	const ep = "authorize"
	q := r.URL.Query()
	clientID, redirectURI := q.Get("client_id"), q.Get("redirect_uri")
	c, err := a.client(ctx, clientID)
	if errors.Is(err, errNoClient) {
		a.fail(w, ep, http.StatusBadRequest, "invalid_client", "unknown client_id", "unknown client")
		return
	}
	if err != nil {
		a.unavailable(w, ep, err)
		return
	}
	if redirectURI == "" || !slices.Contains(c.redirectURIs, redirectURI) {
		a.fail(w, ep, http.StatusBadRequest, "invalid_request", "redirect_uri is not registered for this client", "redirect uri mismatch", "client_id", c.id)
		return
	}
	state := q.Get("state")
	back := func(code, desc, reason string) {
		a.log.Warn("mcp oauth refused", "endpoint", ep, "error", code, "reason", reason, "client_id", c.id)
		http.Redirect(w, r, withQuery(redirectURI, url.Values{"error": {code}, "error_description": {desc}, "state": {state}, "iss": {a.issuer}}), http.StatusFound)
	}
	switch {
	case q.Get("response_type") != "code":
		back("unsupported_response_type", "response_type must be code", "response type")
		return
	case q.Get("code_challenge") == "":
		back("invalid_request", "PKCE is required: send code_challenge with code_challenge_method S256", "missing pkce")
		return
	case q.Get("code_challenge_method") != "S256":
		back("invalid_request", "code_challenge_method must be S256", "pkce method")
		return
	case !challengeRe.MatchString(q.Get("code_challenge")):
		back("invalid_request", "code_challenge is malformed", "malformed challenge")
		return
	case q.Get("resource") != "" && strings.TrimSuffix(q.Get("resource"), "/") != a.ResourceURL():
		back("invalid_target", "resource must be "+a.ResourceURL(), "resource mismatch")
		return
	}
	if !a.allow(r, a.authorize) {
		back("temporarily_unavailable", "too many authorizations right now, try again in a minute", "authorization limit")
		return
	}
	services := a.cfg.MCPLinkedServices()
	if len(services) > 0 && a.linker == nil {
		back("temporarily_unavailable", "account linking is not available", "no linker")
		return
	}
	subject := gateway.MCPSubjectPrefix + randomString(18)
	id := randomString(24)
	binding := randomString(32)
	data := gateway.SecretData{
		fClientID:    gateway.Secret(c.id),
		fRedirectURI: gateway.Secret(redirectURI),
		fState:       gateway.Secret(state),
		fChallenge:   gateway.Secret(q.Get("code_challenge")),
		fSubject:     gateway.Secret(subject),
		fBrowser:     gateway.Secret(hash(binding)),
		fServices:    gateway.Secret(strings.Join(services, ",")),
		fExpiresAt:   gateway.Secret(a.now().Add(FlowTTL).UTC().Format(time.RFC3339)),
	}
	if c.static {
		// The operator registered it: no consent page.
		data[fConsent] = gateway.Secret(a.now().UTC().Format(time.RFC3339))
	}
	if _, err := a.store.Write(ctx, flowsPath+id, data, 0); err != nil {
		a.unavailable(w, ep, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: a.cookieName(), Value: binding, Path: "/", HttpOnly: true,
		Secure: a.https, SameSite: http.SameSiteLaxMode, MaxAge: int(FlowTTL / time.Second)})
	a.log.Info("mcp authorization started", "client_id", c.id, "services", len(services))
	if !c.static {
		a.consentPage(w, c, id, redirectURI, services)
		return
	}
	a.step(ctx, w, r, id, &gateway.Entry{Data: data})
}

// consentPage asks the user whether the dynamically registered client
// may use the tools: without it, anyone could register a client and send
// a user a link that, with a provider that remembers its consent for
// voicegw, hands the user's accounts to that client unseen (the confused
// deputy of the MCP security best practices).
func (a *AuthServer) consentPage(w http.ResponseWriter, c *client, flow, redirectURI string, services []string) {
	var tools []string
	for _, t := range Tools(a.cfg) {
		tools = append(tools, t.Name)
	}
	target := redirectURI
	if u, err := url.Parse(redirectURI); err == nil && u.Host != "" {
		target = u.Scheme + "://" + u.Host
	}
	name := c.name
	if name == "" {
		name = "An assistant"
	}
	var buf bytes.Buffer
	err := pages.ExecuteTemplate(&buf, "consent.html", map[string]any{
		"Title": "Connect " + name, "Client": name, "Redirect": target, "Flow": flow,
		"Tools": strings.Join(tools, ", "), "Services": strings.Join(services, ", "),
	})
	if err != nil {
		a.log.Error("mcp consent page failed", "error", err.Error())
		writeJSON(w, http.StatusInternalServerError, oauthError{Code: "server_error"})
		return
	}
	templates.SecurityHeaders(w.Header(), a.consentCSP(redirectURI))
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}

// consentCSP lets the consent form post to the gateway and be redirected
// on to the providers or back to the client.
func (a *AuthServer) consentCSP(redirectURI string) string {
	sources := []string{"'self'"}
	add := func(raw string) {
		u, err := url.Parse(raw)
		switch {
		case err != nil:
		case u.Scheme == "http" || u.Scheme == "https":
			sources = append(sources, u.Scheme+"://"+u.Host)
		case u.Scheme != "":
			sources = append(sources, u.Scheme+":")
		}
	}
	add(redirectURI)
	for _, name := range a.cfg.MCPLinkedServices() {
		if svc := a.cfg.Services[name]; svc != nil && svc.OAuth2 != nil {
			add(svc.OAuth2.AuthURL)
		}
	}
	slices.Sort(sources[1:])
	sources = slices.Compact(sources)
	return "default-src 'none'; style-src 'unsafe-inline'; form-action " + strings.Join(sources, " ") +
		"; frame-ancestors 'none'; base-uri 'none'"
}

// serveConsent takes the user's answer on the consent page, in the
// browser that started the authorization (the binding cookie is
// SameSite=Lax, so a cross-site form cannot send it).
func (a *AuthServer) serveConsent(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	const ep = "consent"
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := r.ParseForm(); err != nil {
		a.fail(w, ep, http.StatusBadRequest, "invalid_request", "the body must be a form", "malformed form")
		return
	}
	id := r.PostForm.Get("flow")
	e, ok := a.flow(ctx, w, r, ep, id)
	if !ok {
		return
	}
	switch r.PostForm.Get("decision") {
	case "allow":
	case "deny":
		_ = a.store.Delete(ctx, flowsPath+id)
		a.log.Info("mcp authorization denied by the user", "client_id", e.Data[fClientID].Reveal())
		v := url.Values{"error": {"access_denied"}, "error_description": {"the user denied the request"},
			"state": {e.Data[fState].Reveal()}, "iss": {a.issuer}}
		http.Redirect(w, r, withQuery(e.Data[fRedirectURI].Reveal(), v), http.StatusSeeOther)
		return
	default:
		a.fail(w, ep, http.StatusBadRequest, "invalid_request", "decision must be allow or deny", "bad decision")
		return
	}
	if e.Data[fConsent] == "" {
		next := maps.Clone(e.Data)
		next[fConsent] = gateway.Secret(a.now().UTC().Format(time.RFC3339))
		if _, err := a.store.Write(ctx, flowsPath+id, next, e.Version); err != nil {
			if errors.Is(err, gateway.ErrConflict) {
				a.fail(w, ep, http.StatusConflict, "invalid_request", "this authorization changed meanwhile; start again", "consent raced")
				return
			}
			a.unavailable(w, ep, err)
			return
		}
		e = &gateway.Entry{Data: next}
	}
	a.step(ctx, w, r, id, e)
}

// flow reads the authorization id in the browser that started it, or
// answers why not.
func (a *AuthServer) flow(ctx context.Context, w http.ResponseWriter, r *http.Request, ep, id string) (*gateway.Entry, bool) {
	if !clientIDRe.MatchString(id) {
		a.fail(w, ep, http.StatusBadRequest, "invalid_request", "unknown authorization", "malformed flow id")
		return nil, false
	}
	e, err := a.store.Read(ctx, flowsPath+id)
	if errors.Is(err, gateway.ErrNotFound) {
		a.fail(w, ep, http.StatusBadRequest, "invalid_request", "this authorization is over or unknown", "flow gone")
		return nil, false
	}
	if err != nil {
		a.unavailable(w, ep, err)
		return nil, false
	}
	ck, _ := r.Cookie(a.cookieName())
	if ck == nil || subtle.ConstantTimeCompare([]byte(hash(ck.Value)), []byte(e.Data[fBrowser].Reveal())) != 1 {
		a.fail(w, ep, http.StatusForbidden, "access_denied", "this authorization was started in another browser", "flow from another browser")
		return nil, false
	}
	if exp, ok := expiry(e); !ok || !a.now().Before(exp) {
		a.fail(w, ep, http.StatusBadRequest, "invalid_request", "this authorization has expired; start again", "flow expired")
		return nil, false
	}
	return e, true
}

func (a *AuthServer) cookieName() string {
	if a.https {
		return "__Host-voicegw_mcp"
	}
	return "voicegw_mcp"
}

// serveContinue takes the flow on after a service was linked.
func (a *AuthServer) serveContinue(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	const ep = "authorize"
	e, ok := a.flow(ctx, w, r, ep, r.URL.Query().Get("flow"))
	if !ok {
		return
	}
	a.step(ctx, w, r, r.URL.Query().Get("flow"), e)
}

// step links the next service that the subject has no token for, or,
// when every one is linked, finishes the authorization with a code.
func (a *AuthServer) step(ctx context.Context, w http.ResponseWriter, r *http.Request, id string, e *gateway.Entry) {
	const ep = "authorize"
	if e.Data[fConsent] == "" {
		a.fail(w, ep, http.StatusForbidden, "access_denied", "the client was not allowed", "no consent")
		return
	}
	subject := e.Data[fSubject].Reveal()
	if s := e.Data[fServices].Reveal(); s != "" {
		for _, name := range strings.Split(s, ",") {
			_, err := a.store.Read(ctx, gateway.UserPath(subject, name))
			if err == nil {
				continue
			}
			if !errors.Is(err, gateway.ErrNotFound) {
				a.unavailable(w, ep, err)
				return
			}
			svc := a.cfg.Services[name]
			if err := a.linker.Begin(ctx, w, r, svc, subject, "/oauth/authorize/continue?flow="+id); err != nil {
				a.log.Warn("mcp authorization: linking did not start", "service", name, "error", err.Error())
			}
			return
		}
	}
	code := randomString(32)
	now := a.now()
	codeData := gateway.SecretData{
		fClientID:    e.Data[fClientID],
		fRedirectURI: e.Data[fRedirectURI],
		fChallenge:   e.Data[fChallenge],
		fSubject:     gateway.Secret(subject),
		fExpiresAt:   gateway.Secret(now.Add(CodeTTL).UTC().Format(time.RFC3339)),
	}
	grant := gateway.SecretData{fClientID: e.Data[fClientID], fCreatedAt: gateway.Secret(now.UTC().Format(time.RFC3339))}
	if _, err := a.store.Write(ctx, GrantPath(subject), grant, -1); err != nil {
		a.unavailable(w, ep, err)
		return
	}
	if _, err := a.store.Write(ctx, codesPath+hash(code), codeData, 0); err != nil {
		a.unavailable(w, ep, err)
		return
	}
	_ = a.store.Delete(ctx, flowsPath+id)
	http.SetCookie(w, &http.Cookie{Name: a.cookieName(), Value: "", Path: "/", HttpOnly: true,
		Secure: a.https, SameSite: http.SameSiteLaxMode, MaxAge: -1})
	a.log.Info("mcp authorization granted", "client_id", e.Data[fClientID].Reveal(), "subject", subject)
	v := url.Values{"code": {code}, "iss": {a.issuer}}
	if st := e.Data[fState].Reveal(); st != "" {
		v.Set("state", st)
	}
	http.Redirect(w, r, withQuery(e.Data[fRedirectURI].Reveal(), v), http.StatusFound)
}

func withQuery(raw string, v url.Values) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	q := u.Query()
	for k, vs := range v {
		if len(vs) > 0 && vs[0] != "" {
			q.Set(k, vs[0])
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// tokenResponse is RFC 6749 section 5.1.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
}

// serveToken redeems codes (with the PKCE verifier) and refresh tokens
// (rotating them), for the client they were issued to.
func (a *AuthServer) serveToken(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	const ep = "token"
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		a.fail(w, ep, http.StatusBadRequest, "invalid_request", "the body must be a form", "malformed form")
		return
	}
	f := r.PostForm
	id, secret, basic := r.BasicAuth()
	if basic {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = f.Get("client_id"), f.Get("client_secret")
	}
	c, err := a.client(ctx, id)
	if errors.Is(err, errNoClient) {
		if basic {
			w.Header().Set("WWW-Authenticate", `Basic realm="voicegw"`)
		}
		a.fail(w, ep, http.StatusUnauthorized, "invalid_client", "unknown client", "unknown client")
		return
	}
	if err != nil {
		a.unavailable(w, ep, err)
		return
	}
	if c.static && (c.secret == "" || subtle.ConstantTimeCompare([]byte(secret), []byte(c.secret.Reveal())) != 1) {
		if basic {
			w.Header().Set("WWW-Authenticate", `Basic realm="voicegw"`)
		}
		reason := "wrong client secret"
		if c.secret == "" {
			reason = "no client_secret in " + StaticClientSecretPath + c.id
		}
		a.fail(w, ep, http.StatusUnauthorized, "invalid_client", "client authentication failed", reason, "client_id", c.id)
		return
	}
	switch f.Get("grant_type") {
	case "authorization_code":
		a.redeemCode(ctx, w, c, f)
	case "refresh_token":
		a.redeemRefresh(ctx, w, c, f)
	case "":
		a.fail(w, ep, http.StatusBadRequest, "invalid_request", "grant_type is required", "no grant type", "client_id", c.id)
	default:
		a.fail(w, ep, http.StatusBadRequest, "unsupported_grant_type", "use authorization_code or refresh_token", "grant type "+firstWord(f.Get("grant_type")), "client_id", c.id)
	}
}

func (a *AuthServer) redeemCode(ctx context.Context, w http.ResponseWriter, c *client, f url.Values) {
	const ep = "token"
	code, verifier := f.Get("code"), f.Get("code_verifier")
	invalid := func(desc, reason string) {
		a.fail(w, ep, http.StatusBadRequest, "invalid_grant", desc, reason, "client_id", c.id)
	}
	if code == "" {
		a.fail(w, ep, http.StatusBadRequest, "invalid_request", "code is required", "no code", "client_id", c.id)
		return
	}
	if verifier == "" {
		a.fail(w, ep, http.StatusBadRequest, "invalid_request", "code_verifier is required (PKCE)", "missing pkce verifier", "client_id", c.id)
		return
	}
	path := codesPath + hash(code)
	e, err := a.store.Read(ctx, path)
	if errors.Is(err, gateway.ErrNotFound) {
		invalid("the authorization code is not valid", "unknown code")
		return
	}
	if err != nil {
		a.unavailable(w, ep, err)
		return
	}
	subject := e.Data[fSubject].Reveal()
	if e.Data[fUsed] != "" {
		// RFC 6749 4.1.2: a code used twice revokes what it granted.
		a.revoke(ctx, subject)
		invalid("the authorization code was already used", "code reused: grant revoked")
		return
	}
	if exp, ok := expiry(e); !ok || !a.now().Before(exp) {
		invalid("the authorization code has expired", "code expired")
		return
	}
	if e.Data[fClientID].Reveal() != c.id {
		invalid("the authorization code was issued to another client", "code of another client")
		return
	}
	if f.Get("redirect_uri") != e.Data[fRedirectURI].Reveal() {
		invalid("redirect_uri does not match the authorization request", "redirect uri mismatch")
		return
	}
	sum := sha256.Sum256([]byte(verifier))
	if subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(e.Data[fChallenge].Reveal())) != 1 {
		invalid("code_verifier does not match the code_challenge", "wrong pkce verifier")
		return
	}
	a.exchange(ctx, w, c, subject, path, e, func() {
		invalid("the authorization code was already used", "code raced another redemption")
	})
}

func (a *AuthServer) redeemRefresh(ctx context.Context, w http.ResponseWriter, c *client, f url.Values) {
	const ep = "token"
	invalid := func(desc, reason string) {
		a.fail(w, ep, http.StatusBadRequest, "invalid_grant", desc, reason, "client_id", c.id)
	}
	rt := f.Get("refresh_token")
	if rt == "" {
		a.fail(w, ep, http.StatusBadRequest, "invalid_request", "refresh_token is required", "no refresh token", "client_id", c.id)
		return
	}
	path := TokenPath(rt)
	e, err := a.store.Read(ctx, path)
	if errors.Is(err, gateway.ErrNotFound) {
		invalid("the refresh token is not valid", "unknown refresh token")
		return
	}
	if err != nil {
		a.unavailable(w, ep, err)
		return
	}
	subject := e.Data[fSubject].Reveal()
	switch exp, ok := expiry(e); {
	case e.Data[fKind].Reveal() != kindRefresh:
		invalid("the refresh token is not valid", "not a refresh token")
		return
	case e.Data[fClientID].Reveal() != c.id:
		invalid("the refresh token was issued to another client", "refresh token of another client")
		return
	case e.Data[fUsed] != "":
		// A rotated refresh token came back: someone holds a copy.
		a.revoke(ctx, subject)
		invalid("the refresh token was already used", "refresh token reused: grant revoked")
		return
	case !ok || !a.now().Before(exp):
		invalid("the refresh token has expired", "refresh token expired")
		return
	}
	if ok, err := a.granted(ctx, subject); err != nil {
		a.unavailable(w, ep, err)
		return
	} else if !ok {
		invalid("the grant was revoked", "refresh token revoked")
		return
	}
	a.exchange(ctx, w, c, subject, path, e, func() {
		invalid("the refresh token was already used", "refresh raced another")
	})
}

// exchange trades the single-use entry at path (a code or a refresh
// token) for a new token pair: it stores the pair first and then burns
// the entry with check-and-set, so that a store failure leaves the entry
// unburnt (the client's retry is no reuse, which would revoke the grant),
// and of two concurrent redemptions exactly one wins (raced answers the
// other, whose pair is deleted again).
func (a *AuthServer) exchange(ctx context.Context, w http.ResponseWriter, c *client, subject, path string, e *gateway.Entry, raced func()) {
	at, rt, err := a.mint(ctx, c, subject)
	if err != nil {
		a.unavailable(w, "token", err)
		return
	}
	if err := a.burn(ctx, path, e); err != nil {
		for _, t := range []string{at, rt} {
			_ = a.store.Delete(ctx, TokenPath(t))
		}
		if errors.Is(err, gateway.ErrConflict) {
			raced()
			return
		}
		a.unavailable(w, "token", err)
		return
	}
	a.log.Info("mcp tokens issued", "client_id", c.id, "subject", subject)
	writeJSON(w, http.StatusOK, tokenResponse{AccessToken: at, TokenType: "Bearer",
		ExpiresIn: int(AccessTTL / time.Second), RefreshToken: rt})
}

// burn marks the single-use entry at path used, with check-and-set on
// the version read.
func (a *AuthServer) burn(ctx context.Context, path string, e *gateway.Entry) error {
	used := maps.Clone(e.Data)
	used[fUsed] = gateway.Secret(a.now().UTC().Format(time.RFC3339))
	_, err := a.store.Write(ctx, path, used, e.Version)
	return err
}

// mint stores a new access and refresh token pair for subject, as hashes,
// and returns the tokens; on failure nothing of the pair is left.
func (a *AuthServer) mint(ctx context.Context, c *client, subject string) (at, rt string, err error) {
	now := a.now()
	at, rt = "vgw_at_"+randomString(32), "vgw_rt_"+randomString(32)
	for i, t := range []struct {
		tok, kind string
		ttl       time.Duration
	}{{at, kindAccess, AccessTTL}, {rt, kindRefresh, RefreshTTL}} {
		data := gateway.SecretData{
			fKind: gateway.Secret(t.kind), fSubject: gateway.Secret(subject), fClientID: gateway.Secret(c.id),
			fExpiresAt: gateway.Secret(now.Add(t.ttl).UTC().Format(time.RFC3339)),
		}
		if _, err := a.store.Write(ctx, TokenPath(t.tok), data, 0); err != nil {
			if i > 0 {
				_ = a.store.Delete(ctx, TokenPath(at))
			}
			return "", "", err
		}
	}
	return at, rt, nil
}

func (a *AuthServer) revoke(ctx context.Context, subject string) {
	if !gateway.ValidMCPSubject(subject) {
		return
	}
	if err := a.store.Delete(ctx, GrantPath(subject)); err != nil {
		a.log.Error("mcp grant revocation failed", "subject", subject, "error", err.Error())
		return
	}
	a.log.Warn("mcp grant revoked", "subject", subject)
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// firstWord keeps a client's value short in the log.
func firstWord(s string) string {
	if i := strings.IndexAny(s, " \t\r\n"); i >= 0 {
		s = s[:i]
	}
	if len(s) > 40 {
		s = s[:40]
	}
	return strconv.QuoteToASCII(s)
}
