// Package templates embeds the HTML pages of the account-linking flow, so
// the binary serves them with no files beside it.
package templates

import "embed"

// FS holds the page templates (*.html).
//
//go:embed *.html
var FS embed.FS
