package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	sdkauth "github.com/modelcontextprotocol/go-sdk/auth"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/config"
)

// Engine answers turns; see engine.Engine.
type Engine interface {
	// Turn answers a turn; it always returns a reply.
	Turn(ctx context.Context, t *gateway.Turn) *gateway.Reply
}

// Options configure a Handler.
type Options struct {
	Logger *slog.Logger
	// Version is voicegw's version, told to clients at initialization.
	Version string
	// UserHeader, when set, names the request header that gives the user
	// of a tool call without bearer token info: for `voicegw test` only,
	// never for a served endpoint.
	UserHeader string
}

// FallbackSpeech answers a tool call whose engine failed outright (a bug).
const FallbackSpeech = gateway.SayDefault

// UnlinkedText answers a tool call whose user has no (working) token for
// a linked service: the account is linked while authorizing, so the way
// back is to authorize again.
const UnlinkedText = "This tool needs a linked account that is missing or no longer valid. Reconnect voicegw in your assistant to link it again."

// NewHandler returns the Streamable HTTP handler of /mcp for cfg, without
// authentication (see AuthServer.Protect). It is stateless: any replica
// answers any request, and a reload loses no session.
func NewHandler(cfg *config.Config, eng Engine, opts Options) http.Handler {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	version := opts.Version
	if version == "" {
		version = "dev"
	}
	// The SDK logs every stateless request's session at info: only its
	// warnings and errors reach voicegw's log.
	sdkLog := slog.New(minLevel{Handler: log.Handler(), min: slog.LevelWarn})
	srv := sdk.NewServer(&sdk.Implementation{Name: "voicegw", Title: "voicegw", Version: version},
		&sdk.ServerOptions{Capabilities: &sdk.ServerCapabilities{}, Logger: sdkLog})
	for _, t := range Tools(cfg) {
		srv.AddTool(sdkTool(t), (&caller{eng: eng, tool: t, log: log, userHeader: opts.UserHeader}).call)
	}
	max := cfg.Server.MaxBodyBytes
	if max <= 0 {
		max = config.DefaultMaxBodyBytes
	}
	return sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv }, &sdk.StreamableHTTPOptions{
		Stateless:           true,
		JSONResponse:        true,
		Logger:              sdkLog,
		MaxRequestBodyBytes: max,
		// Behind a reverse proxy on the same host every request arrives
		// from localhost with the public Host: the SDK's DNS-rebinding
		// guard would refuse them all. It stays on for a gateway that is
		// itself only reachable on localhost.
		DisableLocalhostProtection: !localOnly(cfg.Server.PublicURL),
	})
}

// minLevel drops records below min.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.Handler.Enabled(ctx, l)
}

func (m minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{Handler: m.Handler.WithAttrs(as), min: m.min}
}

func (m minLevel) WithGroup(name string) slog.Handler {
	return minLevel{Handler: m.Handler.WithGroup(name), min: m.min}
}

func localOnly(publicURL string) bool {
	u, err := url.Parse(publicURL)
	return publicURL == "" || err == nil && config.LoopbackHost(u.Hostname())
}

func sdkTool(t *Tool) *sdk.Tool {
	destructive := t.Destructive
	return &sdk.Tool{
		Name:        t.Name,
		Description: t.Description,
		InputSchema: t.InputSchema,
		Annotations: &sdk.ToolAnnotations{
			ReadOnlyHint:    t.ReadOnly,
			DestructiveHint: &destructive,
		},
	}
}

// caller runs one tool's calls as engine turns.
type caller struct {
	eng        Engine
	tool       *Tool
	log        *slog.Logger
	userHeader string
}

// call turns a tools/call into a turn and the reply into a result.
func (c *caller) call(ctx context.Context, req *sdk.CallToolRequest) (res *sdk.CallToolResult, err error) {
	t, msg := c.turn(req)
	if msg != "" {
		return errorResult(msg), nil
	}
	if ti := tokenInfo(ctx, req); ti != nil {
		t.UserID = ti.UserID
	} else if c.userHeader != "" && req.Extra != nil {
		t.UserID = req.Extra.Header.Get(c.userHeader)
	}
	defer func() {
		if p := recover(); p != nil {
			c.log.LogAttrs(ctx, slog.LevelError, "tool call panicked",
				slog.String("request_id", t.RequestID), slog.String("tool", c.tool.Name),
				slog.String("panic", fmt.Sprint(p)), slog.String("stack", string(debug.Stack())))
			res, err = errorResult(FallbackSpeech), nil
		}
	}()
	return result(c.eng.Turn(ctx, t)), nil
}

func tokenInfo(ctx context.Context, req *sdk.CallToolRequest) *sdkauth.TokenInfo {
	if req.Extra != nil && req.Extra.TokenInfo != nil {
		return req.Extra.TokenInfo
	}
	return sdkauth.TokenInfoFromContext(ctx)
}

// turn decodes the arguments into a neutral turn, or returns what is
// wrong with them.
func (c *caller) turn(req *sdk.CallToolRequest) (*gateway.Turn, string) {
	tool := c.tool
	args := map[string]any{}
	if raw := req.Params.Arguments; len(raw) > 0 && string(raw) != "null" {
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.UseNumber()
		if err := dec.Decode(&args); err != nil {
			return nil, "The arguments must be a JSON object."
		}
	}
	t := &gateway.Turn{
		Skill: tool.Skill, RequestID: "mcp." + randomString(12), Kind: gateway.KindIntent, Type: "tools/call",
		Intent: tool.Intent, Slots: map[string]gateway.Slot{}, Confirmation: gateway.ConfirmNone,
		NewSession: true, Locale: tool.Locale, Timestamp: time.Now(),
	}
	for name, v := range args {
		if name == ConfirmedArg && tool.Confirm {
			b, ok := v.(bool)
			if !ok {
				return nil, fmt.Sprintf("The argument %s must be true or false.", ConfirmedArg)
			}
			t.Confirmation = gateway.ConfirmDenied
			if b {
				t.Confirmation = gateway.ConfirmConfirmed
			}
			continue
		}
		s := tool.Slots[name]
		if s == nil {
			return nil, fmt.Sprintf("The tool %s has no argument %q.", tool.Name, name)
		}
		if list, ok := v.([]any); ok && s.Multiple {
			// A multi-value slot: each item is a value of its own.
			var values []gateway.Slot
			for _, item := range list {
				slot, msg := c.slot(name, s, item)
				if msg != "" {
					return nil, msg
				}
				if slot.Value != "" {
					values = append(values, slot)
				}
			}
			if len(values) > 0 {
				t.Slots[name] = gateway.Slot{Values: values}
			}
			continue
		}
		slot, msg := c.slot(name, s, v)
		if msg != "" {
			return nil, msg
		}
		if slot.Value != "" {
			t.Slots[name] = slot
		}
	}
	return t, ""
}

// slot turns one argument into a slot as Alexa would fill it: a custom
// type's value or synonym resolves to the value and its id.
func (c *caller) slot(name string, s *config.Slot, v any) (gateway.Slot, string) {
	var text string
	switch x := v.(type) {
	case nil:
		return gateway.Slot{}, ""
	case string:
		text = strings.TrimSpace(x)
	case json.Number:
		text = x.String()
	case bool:
		text = strconv.FormatBool(x)
	default:
		return gateway.Slot{}, fmt.Sprintf("The argument %s must be a single value.", name)
	}
	if s.Type == "AMAZON.NUMBER" && text != "" {
		if _, err := strconv.ParseInt(text, 10, 64); err != nil {
			return gateway.Slot{}, fmt.Sprintf("The argument %s must be a whole number.", name)
		}
	}
	values, custom := c.tool.Types[s.Type]
	if !custom || text == "" {
		return gateway.Slot{Value: text}, ""
	}
	var names []string
	for _, tv := range values {
		if tv == nil {
			continue
		}
		names = append(names, tv.Value.In(c.tool.Locale))
		if tv.Matches(c.tool.Locale, text) {
			return gateway.Slot{Value: text, Resolved: tv.Value.In(c.tool.Locale), ID: tv.ID}, ""
		}
	}
	return gateway.Slot{}, fmt.Sprintf("The argument %s must be one of: %s.", name, strings.Join(names, ", "))
}

// result turns the engine's reply into a tool result: the speech as text
// (SSML tags removed), the extracted values as structured content, error
// speech and dialog questions for missing arguments as errors.
func result(r *gateway.Reply) *sdk.CallToolResult {
	text := PlainText(r.Speech)
	for _, d := range r.Directives {
		if d.Type == "Dialog.ElicitSlot" {
			return errorResult(text)
		}
	}
	switch r.Error {
	case "":
	case "unlinked":
		return errorResult(UnlinkedText)
	default:
		return errorResult(text)
	}
	res := &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: text}}}
	if len(r.Values) > 0 {
		res.StructuredContent = r.Values
	}
	return res
}

func errorResult(text string) *sdk.CallToolResult {
	return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: text}}, IsError: true}
}

// PlainText is speech as text: SSML tags removed, entities decoded,
// whitespace collapsed.
func PlainText(s gateway.Speech) string { return s.Plain() }
