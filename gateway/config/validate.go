package config

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/voicegw/voicegw/gateway/render"
)

// Reserved template data names; extract names may not use them.
var reserved = map[string]bool{
	"slots": true, "slot_ids": true, "session": true, "user": true,
	"locale": true, "intent": true, "skill": true, "status": true,
}

// Built-in intents and what answers them.
const (
	HelpIntent     = "AMAZON.HelpIntent"
	StopIntent     = "AMAZON.StopIntent"
	CancelIntent   = "AMAZON.CancelIntent"
	FallbackIntent = "AMAZON.FallbackIntent"
)

// BuiltinIntents are always in a skill's interaction model.
var BuiltinIntents = []string{CancelIntent, HelpIntent, StopIntent, FallbackIntent, "AMAZON.NavigateHomeIntent"}

var (
	nameRe    = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	intentRe  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)
	identRe   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	headerRe  = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
	statusRe  = regexp.MustCompile(`^[1-5][0-9][0-9]$`)
	classRe   = regexp.MustCompile(`^[1-5]xx$`)
	sampleRef = regexp.MustCompile(`\{([^{}]*)\}`)
)

// errorKinds are the non-status error keys.
var errorKinds = map[string]bool{"timeout": true, "unlinked": true, "vault": true, "missing": true, "default": true}

func (ck *checker) validate(cfg *Config) {
	if cfg.Version != 1 {
		ck.errf("version", "must be 1")
	}
	ck.server(cfg)
	ck.alexa(cfg)
	ck.vault(cfg)
	for _, name := range sortedKeys(cfg.Services) {
		ck.service(cfg, name, cfg.Services[name])
	}
	if len(cfg.Skills) == 0 {
		ck.errf("skills", "no skills configured")
	}
	for _, name := range sortedKeys(cfg.Skills) {
		ck.skill(cfg, name, cfg.Skills[name])
	}
	// Gateway-wide error speech answers every skill: no slot, no extract.
	extracts := map[string]bool{}
	for _, sk := range cfg.Skills {
		for _, n := range sk.ExtractRefs {
			extracts[n] = true
		}
	}
	for _, k := range sortedKeys(cfg.Errors) {
		for _, s := range cfg.Errors[k].variants() {
			ck.checkRefs("server.errors."+k, s.T, &scope{
				noSlots:    "server.errors answer every skill and see no slot; use it in an intent's own errors:",
				noExtracts: "server.errors answer every skill and see no extract; use it in an intent's own errors:",
				known:      extracts,
			})
		}
	}
	needsVault := false
	for _, name := range sortedKeys(cfg.Services) {
		svc := cfg.Services[name]
		if t := svc.Auth.Type; t == AuthLinked || t == AuthSecret {
			needsVault = true
		}
		if svc.OAuth2 != nil && svc.Auth.Type == AuthLinked && cfg.Server.PublicURL == "" {
			ck.warnf("services."+name+".oauth2", "server.public_url is not set: users cannot link %s through /link", name)
		}
	}
	if cfg.Vault == nil && needsVault {
		path := "vault"
		if !ck.has(path) {
			path = ""
		}
		ck.warnf(path, "no vault configured: linked services answer \"unlinked\" and secret services answer \"vault\"")
	}
	ck.mcp(cfg)
	refs := map[string]bool{}
	for _, r := range ck.sessionRefs {
		refs[r] = true
	}
	cfg.SessionRefs = sortedKeys(refs)
}

func (ck *checker) duration(path string, d *Duration, def time.Duration) {
	if d.Raw == "" {
		d.D = def
		return
	}
	v, err := time.ParseDuration(d.Raw)
	if err != nil {
		ck.errf(path, "invalid duration %q (use e.g. 500ms, 2s, 1m)", d.Raw)
		return
	}
	if v <= 0 {
		ck.errf(path, "must be positive")
		return
	}
	d.D = v
}

func (ck *checker) server(cfg *Config) {
	s := &cfg.Server
	if s.Listen == "" {
		s.Listen = DefaultListen
	}
	if s.PublicURL != "" {
		ck.absURL("server.public_url", s.PublicURL)
		s.PublicURL = strings.TrimRight(s.PublicURL, "/")
	}
	if s.MaxBodyBytes == 0 {
		s.MaxBodyBytes = DefaultMaxBodyBytes
	} else if s.MaxBodyBytes < 1024 {
		ck.errf("server.max_body_bytes", "must be at least 1024")
	}
	ck.duration("server.deadline", &s.Deadline, DefaultDeadline)
	if s.Deadline.D > 8*time.Second {
		ck.warnf("server.deadline", "Alexa gives up after 8s; a longer deadline answers too late")
	}
	ck.duration("server.progressive_after", &s.ProgressiveAfter, DefaultProgressiveAfter)
	s.TrustedNets = nil
	for i, raw := range s.TrustedProxies {
		_, n, err := net.ParseCIDR(raw)
		if err != nil {
			if ip := net.ParseIP(raw); ip != nil {
				bits := 128
				if ip.To4() != nil {
					bits = 32
				}
				ck.errf(fmt.Sprintf("server.trusted_proxies[%d]", i), "%q is an address, not a CIDR: write %s/%d", raw, raw, bits)
			} else {
				ck.errf(fmt.Sprintf("server.trusted_proxies[%d]", i), "%q is not a CIDR such as 10.0.0.0/8 or fd00::/8", raw)
			}
			continue
		}
		s.TrustedNets = append(s.TrustedNets, n)
	}
	for _, l := range []struct{ key, addr string }{{"server.metrics_listen", s.MetricsListen}, {"server.debug_listen", s.DebugListen}} {
		if l.addr == "" {
			continue
		}
		host, _, err := net.SplitHostPort(l.addr)
		switch {
		case err != nil:
			ck.errf(l.key, "%q is not a host:port address", l.addr)
		case l.addr == s.Listen:
			ck.errf(l.key, "must differ from server.listen")
		case l.key == "server.debug_listen" && !LoopbackHost(host):
			ck.warnf(l.key, "profiles are served on %q, not only on loopback: anyone who reaches it can read memory contents", l.addr)
		}
	}
	if s.DebugListen != "" && s.DebugListen == s.MetricsListen {
		ck.errf("server.debug_listen", "must differ from server.metrics_listen")
	}
	// References are checked once every skill's extracts are known.
	cfg.Errors = ck.errorSpeech("server.errors", s.Errors, nil)
}

func (ck *checker) alexa(cfg *Config) {
	ck.duration("alexa.timestamp_tolerance", &cfg.Alexa.TimestampTolerance, DefaultTimestampTolerance)
	if !cfg.Alexa.Verifying() {
		ck.warnf("alexa.verify", "request verification is off: use only for local testing")
	}
}

func (ck *checker) vault(cfg *Config) {
	v := cfg.Vault
	if v == nil {
		return
	}
	if v.Address == "" {
		cfg.Vault = nil
		return
	}
	ck.absURL("vault.address", v.Address)
	switch v.Auth.Method {
	case "", "token":
		v.Auth.Method = "token"
	case "approle":
		if v.Auth.RoleID == "" {
			ck.errf("vault.auth.role_id", "required for approle")
		}
		if v.Auth.SecretIDFile == "" {
			ck.errf("vault.auth.secret_id_file", "required for approle")
		}
	default:
		ck.errf("vault.auth.method", "must be token or approle, not %q", v.Auth.Method)
	}
	if v.KVMount == "" {
		v.KVMount = DefaultKVMount
	}
	v.KVMount = strings.Trim(v.KVMount, "/")
	if v.Prefix == "" {
		v.Prefix = DefaultPrefix
	}
	v.Prefix = strings.Trim(v.Prefix, "/")
	ck.duration("vault.cache_ttl", &v.CacheTTL, DefaultCacheTTL)
	ck.duration("vault.timeout", &v.Timeout, DefaultVaultTimeout)
}

func (ck *checker) absURL(path, raw string) *url.URL {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		ck.errf(path, "must be an absolute http or https URL, not %q", raw)
		return nil
	}
	return u
}

func (ck *checker) service(cfg *Config, name string, s *Service) {
	p := "services." + name
	if s == nil {
		ck.errf(p, "empty service: its keys (base_url:, …) go on the lines below, indented under it")
		cfg.Services[name] = &Service{Name: name}
		return
	}
	s.Name = name
	if !nameRe.MatchString(name) {
		ck.errf(p, "service names use letters, digits, - and _ only")
	}
	if s.BaseURL == "" {
		ck.errf(p+".base_url", "required")
	} else if u := ck.absURL(p+".base_url", s.BaseURL); u != nil {
		if u.RawQuery != "" || u.Fragment != "" {
			ck.errf(p+".base_url", "must not have a query or fragment")
		}
		u.Path = strings.TrimRight(u.Path, "/")
		u.RawPath = strings.TrimRight(u.RawPath, "/")
		s.URL, s.Base = u, u.String()
	}
	ck.duration(p+".timeout", &s.Timeout, DefaultServiceTimeout)
	if s.Retries < 0 || s.Retries > 5 {
		ck.errf(p+".retries", "must be between 0 and 5")
	}
	if s.MaxResponseBytes == 0 {
		s.MaxResponseBytes = DefaultMaxResponseBytes
	} else if s.MaxResponseBytes < 0 {
		ck.errf(p+".max_response_bytes", "must be positive")
	}
	ck.staticHeaders(p+".headers", s.Headers)
	a := &s.Auth
	ap := p + ".auth"
	switch a.Type {
	case "", AuthNone:
		a.Type = AuthNone
	case AuthLinked, AuthAlexa:
	case AuthSecret:
		if a.Field == "" {
			ck.errf(ap+".field", "required for type secret")
		}
	default:
		ck.errf(ap+".type", "must be none, linked, secret or alexa, not %q", a.Type)
	}
	if a.Type != AuthSecret && a.Field != "" {
		ck.errf(ap+".field", "only for type secret")
	}
	if a.Header == "" {
		a.Header = "Authorization"
	} else if !headerRe.MatchString(a.Header) {
		ck.errf(ap+".header", "invalid header name %q", a.Header)
	}
	if a.Format == "" {
		a.Format = "Bearer {{ .token }}"
		if a.Query != "" {
			a.Format = "{{ .token }}"
		}
	}
	if t := ck.template(ap+".format", a.Format, render.Text); t != nil {
		for _, r := range t.Refs() {
			if r[0] != "token" && r[0] != "fields" {
				ck.errf(ap+".format", "unknown field .%s (use .token or .fields.NAME)", strings.Join(r, "."))
			}
		}
		s.Format = t
	}
	if s.OAuth2 != nil {
		op := p + ".oauth2"
		if a.Type != AuthLinked {
			ck.errf(op, "only for auth type linked")
		}
		if s.OAuth2.AuthURL == "" {
			ck.errf(op+".auth_url", "required")
		} else {
			ck.absURL(op+".auth_url", s.OAuth2.AuthURL)
		}
		if s.OAuth2.TokenURL == "" {
			ck.errf(op+".token_url", "required")
		} else {
			ck.absURL(op+".token_url", s.OAuth2.TokenURL)
		}
		if s.OAuth2.ClientID == "" {
			ck.errf(op+".client_id", "required")
		}
	}
}

func (ck *checker) staticHeaders(path string, h map[string]string) {
	for _, k := range sortedKeys(h) {
		if !headerRe.MatchString(k) {
			ck.errf(path+"."+k, "invalid header name")
		}
		if strings.ContainsAny(h[k], "\r\n\x00") {
			ck.errf(path+"."+k, "header values cannot contain CR, LF or NUL")
		}
	}
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
