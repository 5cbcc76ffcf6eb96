package gateway_test

import (
	"strings"
	"testing"

	"github.com/voicegw/voicegw/gateway"
)

func TestValidUser(t *testing.T) {
	for _, tc := range []struct {
		id          string
		mcp, stored bool
	}{
		{"mcp.0123456789abcdef", true, true},
		{"mcp." + strings.Repeat("a", 64), true, true},
		{"mcp." + strings.Repeat("a", 65), false, false},
		{"mcp.short", false, false},
		{"mcp.0123456789abcdef/../x", false, false},
		{"mcp.0123456789abcde.", false, false},
		{"amzn1.ask.account.X", false, true},
		{"", false, false},
	} {
		if got := gateway.ValidMCPSubject(tc.id); got != tc.mcp {
			t.Errorf("ValidMCPSubject(%q) = %v, want %v", tc.id, got, tc.mcp)
		}
		if got := gateway.ValidUser(tc.id); got != tc.stored {
			t.Errorf("ValidUser(%q) = %v, want %v", tc.id, got, tc.stored)
		}
		if gateway.ValidUserID(tc.id) && gateway.ValidMCPSubject(tc.id) {
			t.Errorf("%q is both an Alexa userId and an MCP subject", tc.id)
		}
	}
}
