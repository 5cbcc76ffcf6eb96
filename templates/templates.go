// Package templates embeds the HTML pages of the account-linking flow, so
// the binary serves them with no files beside it, and says which headers
// those pages are served with.
package templates

import (
	"embed"
	"net/http"
)

// FS holds the page templates (*.html).
//
//go:embed *.html
var FS embed.FS

// StrictCSP is the Content-Security-Policy of a page with no form.
const StrictCSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"

// SecurityHeaders sets the headers that every page under /link carries,
// error pages included; csp is the page's Content-Security-Policy.
func SecurityHeaders(h http.Header, csp string) {
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", csp)
}
