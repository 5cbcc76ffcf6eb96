package config

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// MCP auth modes.
const (
	MCPAuthRequired = "required"
	MCPAuthNone     = "none"
)

// MCP exposes the configured intents of some skills as tools of a Model
// Context Protocol server at POST /mcp (SPEC 13).
type MCP struct {
	// Enabled serves /mcp and, with auth required, the OAuth endpoints.
	Enabled bool `yaml:"enabled"`
	// Skills lists the skills whose configured intents become tools
	// named <skill>_<Intent>.
	Skills []string `yaml:"skills"`
	// Auth is required (the default: every call needs a bearer token that
	// voicegw issued) or none.
	Auth string `yaml:"auth"`
	// Clients are statically registered OAuth clients, such as Alexa+;
	// each one's secret is the Vault field
	// services/mcp-clients/<id>.client_secret.
	Clients map[string]*MCPClient `yaml:"clients"`
}

// MCPClient is a statically registered OAuth client of the MCP endpoint.
type MCPClient struct {
	// RedirectURIs are the only URIs an authorization may return to
	// (exact match).
	RedirectURIs []string `yaml:"redirect_uris"`
}

// On reports whether /mcp is served.
func (m *MCP) On() bool { return m != nil && m.Enabled }

// AuthRequired reports whether /mcp needs voicegw's bearer token.
func (m *MCP) AuthRequired() bool { return m == nil || m.Auth != MCPAuthNone }

// MCPTool reports whether intent name of a skill is exposed as a tool:
// every configured intent but the built-in AMAZON.* ones, which answer
// conversation, not questions.
func MCPTool(name string) bool { return !strings.HasPrefix(name, "AMAZON.") }

// MCPLinkedServices returns the names of the linked services that the
// exposed tools call, sorted: the accounts an MCP user links while
// authorizing.
func (c *Config) MCPLinkedServices() []string {
	if !c.MCP.On() {
		return nil
	}
	seen := map[string]bool{}
	for _, skill := range c.MCP.Skills {
		sk := c.Skills[skill]
		if sk == nil {
			continue
		}
		for name, in := range sk.Intents {
			if in == nil || !MCPTool(name) {
				continue
			}
			for _, call := range in.allCalls() {
				if call == nil {
					continue
				}
				if svc := c.Services[call.Service]; svc != nil && svc.Auth.Type == AuthLinked {
					seen[svc.Name] = true
				}
			}
		}
	}
	return sortedKeys(seen)
}

// mcp checks the mcp section: listed skills exist, auth none exposes no
// linked service, static clients have exact, absolute redirect URIs.
func (ck *checker) mcp(cfg *Config) {
	m := cfg.MCP
	if m == nil {
		return
	}
	switch m.Auth {
	case "", MCPAuthRequired, MCPAuthNone:
	default:
		ck.errf("mcp.auth", "must be required or none, not %q", m.Auth)
	}
	if m.Enabled && len(m.Skills) == 0 {
		ck.errf("mcp.skills", "list the skills whose intents become tools")
	}
	seen := map[string]bool{}
	for i, name := range m.Skills {
		p := fmt.Sprintf("mcp.skills[%d]", i)
		switch {
		case cfg.Skills[name] == nil:
			msg := fmt.Sprintf("no skill %q", name)
			if near := closest(name, sortedKeys(cfg.Skills)); near != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", near)
			}
			ck.errf(p, "%s", msg)
		case seen[name]:
			ck.errf(p, "skill %q is listed twice", name)
		}
		seen[name] = true
	}
	if !m.Enabled {
		return
	}
	for i, name := range m.Skills {
		sk := cfg.Skills[name]
		if sk == nil {
			continue
		}
		for _, in := range sortedKeys(sk.Intents) {
			// The MCP specification's limit on tool names.
			if MCPTool(in) && len(name)+1+len(in) > 128 {
				ck.errf(fmt.Sprintf("mcp.skills[%d]", i), "the tool name %s_%s is longer than 128 characters", name, in)
			}
		}
	}
	linked := cfg.MCPLinkedServices()
	if m.Auth == MCPAuthNone {
		if len(linked) > 0 {
			ck.errf("mcp.auth", "none cannot serve tools that call the linked service %s: every caller would need an account of their own (use required)", strings.Join(linked, ", "))
		} else {
			ck.warnf("mcp.auth", "none: anyone who reaches /mcp calls the exposed tools, spending the services' secrets")
		}
	}
	if m.AuthRequired() {
		if cfg.Server.PublicURL == "" {
			ck.errf("mcp", "auth required needs server.public_url: MCP clients discover the authorization server there")
		}
		if cfg.Vault == nil {
			ck.warnf("mcp", "no vault configured: MCP clients, codes and tokens can only live in the --secrets store of one process")
		}
	}
	for _, id := range sortedKeys(m.Clients) {
		p := "mcp.clients." + id
		cl := m.Clients[id]
		if !nameRe.MatchString(id) {
			ck.errf(p, "client ids use letters, digits, _ and - (at most 64)")
		}
		if cl == nil || len(cl.RedirectURIs) == 0 {
			ck.errf(p+".redirect_uris", "at least one redirect URI is required")
			continue
		}
		for i, raw := range cl.RedirectURIs {
			if msg := checkRedirectURI(raw); msg != "" {
				ck.errf(fmt.Sprintf("%s.redirect_uris[%d]", p, i), "%s", msg)
			}
		}
	}
	if !m.AuthRequired() && len(m.Clients) > 0 {
		ck.warnf("mcp.clients", "has no effect with auth none")
	}
}

// checkRedirectURI returns what is wrong with an OAuth redirect URI, or
// "": OAuth 2.1 wants absolute URIs without a fragment, https except on a
// loopback host.
func checkRedirectURI(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return fmt.Sprintf("%q is not an absolute URI", raw)
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return fmt.Sprintf("%q has a fragment", raw)
	}
	if u.Scheme == "http" && !LoopbackHost(u.Hostname()) {
		return fmt.Sprintf("%q: use https (http only for localhost)", raw)
	}
	if (u.Scheme == "http" || u.Scheme == "https") && u.Host == "" {
		return fmt.Sprintf("%q has no host", raw)
	}
	return ""
}

// CheckRedirectURI is checkRedirectURI for dynamic client registration.
func CheckRedirectURI(raw string) string { return checkRedirectURI(raw) }

// LoopbackHost reports whether host is localhost or a loopback address.
func LoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
