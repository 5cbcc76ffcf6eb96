package engine_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/inmem"
)

// TestReplyValuesAndError: a reply carries the extracted values and, for
// error speech, the error kind, so a platform that answers with data (MCP)
// needs nothing of the engine but the neutral reply.
func TestReplyValuesAndError(t *testing.T) {
	e := MustEngine(t, precedence, precedenceUpstream(t).URL, inmem.New(nil))
	for _, tc := range []struct {
		name, intent, status, wantErr string
		wantValues                    map[string]any
	}{
		{"values", "Call", "200", "", map[string]any{"v": int64(1)}},
		{"status", "Call", "404", "status", nil},
		{"missing", "Call", "missing", "missing", nil},
		{"unlinked", "Linked", "", "unlinked", nil},
		{"no calls, no values", "Keyed", "", "vault", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reply := e.Turn(context.Background(), &gateway.Turn{
				Skill: "s", Kind: gateway.KindIntent, Intent: tc.intent, UserID: "mcp.0123456789abcdef",
				Slots: map[string]gateway.Slot{"Status": {Value: tc.status}},
			})
			if reply.Error != tc.wantErr {
				t.Errorf("Error = %q, want %q", reply.Error, tc.wantErr)
			}
			if !reflect.DeepEqual(reply.Values, tc.wantValues) {
				t.Errorf("Values = %#v, want %#v", reply.Values, tc.wantValues)
			}
		})
	}
}
