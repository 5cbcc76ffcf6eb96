package scenario

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sort"
	"strings"

	"github.com/voicegw/voicegw/gateway/alexa"
)

// mcpResult is the part of a tools/call answer a scenario checks.
type mcpResult struct {
	Result *struct {
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
		StructuredContent map[string]any `json:"structuredContent"`
		IsError           bool           `json:"isError"`
	} `json:"result"`
	Error *struct {
		Message string `json:"message"`
	} `json:"error"`
}

// mcpTurn sends one tools/call to h as an MCP client would and checks the
// expectations: say and say_contains against the result's text, is_error,
// values (a subset of structuredContent), request and no_request.
func mcpTurn(h http.Handler, file string, i int, t *Turn, skill string, st *stubs) []string {
	at := func(key string) string {
		line := t.lines[key]
		if line == 0 {
			line = t.line
		}
		return fmt.Sprintf("%s:%d: turn %d", file, line, i+1)
	}
	if h == nil {
		return []string{at("") + ": this runner cannot send MCP turns (tool:)"}
	}
	user := t.User
	if user == "" {
		user = DefaultUser
	}
	args := t.Arguments
	if args == nil {
		args = map[string]any{}
	}
	body, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": i + 1, "method": "tools/call",
		"params": map[string]any{"name": t.Tool, "arguments": normalize(args)}})
	if err != nil {
		return []string{fmt.Sprintf("%s: arguments: %v", at(""), err)}
	}
	req := httptest.NewRequest(http.MethodPost, "/mcp", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set(UserHeader, user)
	before := st.count()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	reqs, unmatched := st.since(before)
	var problems []string
	for _, u := range unmatched {
		problems = append(problems, fmt.Sprintf("%s: no stub matches the upstream request %s", at(""), u))
	}
	var res mcpResult
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &res) != nil {
		return append(problems, fmt.Sprintf("%s: HTTP %d: %s", at(""), rec.Code, strings.TrimSpace(rec.Body.String())))
	}
	if res.Error != nil || res.Result == nil {
		msg := "no result"
		if res.Error != nil {
			msg = res.Error.Message
		}
		return append(problems, fmt.Sprintf("%s: tool %q: %s (is skill %s in mcp.skills?)", at(""), t.Tool, msg, skill))
	}
	var texts []string
	for _, c := range res.Result.Content {
		if c.Type == "text" {
			texts = append(texts, c.Text)
		}
	}
	// The text stands in for the speech, so say, say_contains, request
	// and no_request are checked as for an Alexa turn.
	var resp alexa.Response
	synth, _ := json.Marshal(map[string]any{"response": map[string]any{
		"outputSpeech": map[string]any{"type": "PlainText", "text": strings.Join(texts, "\n")}}})
	_ = json.Unmarshal(synth, &resp)
	fails := check(&t.Expect, &resp, reqs)
	if ex := t.Expect.IsError; ex != nil && *ex != res.Result.IsError {
		fails = append(fails, mismatch("is_error", *ex, res.Result.IsError))
	}
	if len(t.Expect.Values) > 0 {
		want := normalize(t.Expect.Values).(map[string]any)
		keys := make([]string, 0, len(want))
		for k := range want {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			got, ok := res.Result.StructuredContent[k]
			if !ok || !reflect.DeepEqual(want[k], normalize(got)) {
				fails = append(fails, mismatch("values", map[string]any{k: want[k]}, map[string]any{k: got}))
			}
		}
	}
	sort.SliceStable(fails, func(a, b int) bool { return t.lines[fails[a].key] < t.lines[fails[b].key] })
	for _, p := range fails {
		problems = append(problems, fmt.Sprintf("%s: %s", at(p.key), p.msg))
	}
	return problems
}
