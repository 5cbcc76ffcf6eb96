package mcp_test

import (
	"context"
	"net/http/httptest"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/voicegw/voicegw/gateway/inmem"
	"github.com/voicegw/voicegw/gateway/mcp"
)

// TestMultiValueTool: a slot with multiple: true is a list argument whose
// items resolve as Alexa resolves each value.
func TestMultiValueTool(t *testing.T) {
	cfg := MustConfig(t, `version: 1
skills:
  shop:
    types:
      GROCERY:
        - { id: CHEESE, value: cheese, synonyms: [cheddar] }
        - { id: HAM, value: ham }
    intents:
      AddItems:
        samples: ["add {Items}"]
        slots: { Items: { type: GROCERY, multiple: true, required: true, prompt: "What should I add?" } }
        say: Added {{ sayList .slots.Items }} ({{ join "," .slot_ids.Items }}).
mcp: { enabled: true, auth: none, skills: [shop] }
`, "")
	srv := httptest.NewServer(mcp.NewHandler(cfg, MustEngine(cfg, inmem.New(nil)), mcp.Options{}))
	defer srv.Close()
	cs := MustSession(t, srv.URL, nil)
	tools, err := cs.ListTools(context.Background(), nil)
	if err != nil || len(tools.Tools) != 1 {
		t.Fatalf("tools: %v %v", tools, err)
	}
	schema, _ := tools.Tools[0].InputSchema.(map[string]any)
	items, _ := schema["properties"].(map[string]any)["Items"].(map[string]any)
	if items["type"] != "array" {
		t.Errorf("Items schema %v, want an array", items)
	}
	for _, tc := range []struct {
		name    string
		args    map[string]any
		want    string
		isError bool
	}{
		{"a list", map[string]any{"Items": []any{"cheddar", "ham"}}, "Added cheese and ham (CHEESE,HAM).", false},
		{"an empty list is no value", map[string]any{"Items": []any{}}, "What should I add?", true},
		{"an item outside the enum", map[string]any{"Items": []any{"cheese", "bread"}}, "The argument Items must be one of: cheese, ham.", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "shop_AddItems", Arguments: tc.args})
			if err != nil {
				t.Fatal(err)
			}
			if got := text(res); got != tc.want || res.IsError != tc.isError {
				t.Errorf("%q (error %v), want %q (error %v)", got, res.IsError, tc.want, tc.isError)
			}
		})
	}
}
