// Package scenario runs conversation scenarios (SPEC 9): turns sent
// through the same pipeline as serve, against stub upstreams that are real
// local HTTP servers and an in-memory secret store, with expectations on
// the speech, card, session, directives and the upstream requests.
package scenario

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/gateway/inmem"
)

// DefaultUser is the userId of turns that do not name one.
const DefaultUser = "amzn1.ask.account.TEST"

// Handler serves one Alexa request; see alexa.Handler.
type Handler interface {
	Serve(ctx context.Context, skill string, header http.Header, body []byte) (int, []byte)
}

// Scenario is one scenario file.
type Scenario struct {
	// Skill is the name of a skill of the config.
	Skill string `yaml:"skill" jsonschema:"required"`
	// Stubs are the upstream answers, matched by service, method, path
	// and query.
	Stubs []*Stub `yaml:"stubs"`
	// Secrets stand in for Vault: a path of SPEC 4 (e.g.
	// services/NAME, users/USERID/NAME) to its fields.
	Secrets map[string]map[string]string `yaml:"secrets"`
	// Turns are the requests of the conversation, run in order in one
	// session.
	Turns []*Turn `yaml:"turns" jsonschema:"required"`
}

// Stub is a canned upstream answer.
type Stub struct {
	// Service is the name of a service of the config.
	Service string `yaml:"service" jsonschema:"required"`
	// Method matches the request method when set.
	Method string `yaml:"method"`
	// Path matches the request path exactly, as sent (escaped), without
	// the query.
	Path string `yaml:"path" jsonschema:"required"`
	// Query lists query values that must match.
	Query map[string]string `yaml:"query"`
	// Status is the answer's HTTP status (default 200).
	Status int `yaml:"status"`
	// Body is a YAML value sent as JSON.
	Body yaml.Node `yaml:"body"`
	// Raw is a body sent as is.
	Raw *string `yaml:"raw"`
	// Headers are the answer's headers.
	Headers map[string]string `yaml:"headers"`
	// Delay holds the answer back, to test timeouts.
	Delay config.Duration `yaml:"delay"`

	body []byte
	line int
	at   string
}

// Turn is one request of the conversation.
type Turn struct {
	// Launch sends a LaunchRequest.
	Launch bool `yaml:"launch"`
	// Intent sends an IntentRequest for an intent the skill configures
	// or has built in.
	Intent string `yaml:"intent"`
	// Slots are the intent's slot values.
	Slots map[string]Slot `yaml:"slots"`
	// User is the userId (default amzn1.ask.account.TEST).
	User string `yaml:"user"`
	// AccessToken is the Alexa-managed account-linking token.
	AccessToken string `yaml:"access_token"`
	// Confirmation is CONFIRMED or DENIED: the user's answer to confirm.
	Confirmation string `yaml:"confirmation" jsonschema:"enum=CONFIRMED,enum=DENIED,enum=NONE"`
	// Locale is the request's locale (default en-US).
	Locale string `yaml:"locale"`
	// CanFulfill sends the intent and slots as a CanFulfillIntentRequest
	// (Alexa asking whether the skill could answer them) instead of an
	// IntentRequest.
	CanFulfill bool `yaml:"can_fulfill"`
	// Expect lists what must hold after the turn.
	Expect Expect `yaml:"expect"`
	// Tool and Arguments make an MCP turn (SPEC 13) in place of intent
	// and slots: a tools/call of <skill>_<Intent>.
	Tool      string         `yaml:"tool"`
	Arguments map[string]any `yaml:"arguments"`

	line int
	// lines of each expect key
	lines map[string]int
	// at holds the line and column of the intent value and of each slot
	// key ("slots.NAME"), for scenario errors.
	at map[string][2]int
}

// Slot is a slot value as a turn sends it: a string (the spoken value), or
// {value, id, name} with the entity resolution Alexa adds when the value
// matched a value of the slot's custom type, or a list of those for a
// slot with multiple: true.
type Slot struct {
	Value string
	ID    string
	Name  string
	// List holds the values of a multi-value slot; nil for one value.
	List []Slot
}

// UnmarshalYAML accepts a string, a {value, id, name} mapping or a list
// of them.
func (s *Slot) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.SequenceNode:
		s.List = []Slot{}
		var errs []string
		for _, c := range n.Content {
			if c.Kind == yaml.SequenceNode {
				errs = append(errs, fmt.Sprintf("line %d: cannot unmarshal !!seq into scenario.Slot", c.Line))
				continue
			}
			var item Slot
			if err := item.UnmarshalYAML(c); err != nil {
				var te *yaml.TypeError
				if errors.As(err, &te) {
					errs = append(errs, te.Errors...)
					continue
				}
				return err
			}
			s.List = append(s.List, item)
		}
		if len(errs) > 0 {
			return &yaml.TypeError{Errors: errs}
		}
		return nil
	case yaml.ScalarNode:
		s.Value = n.Value
		return nil
	case yaml.MappingNode:
		var errs []string
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if v.Kind != yaml.ScalarNode {
				errs = append(errs, fmt.Sprintf("line %d: cannot unmarshal !!%s into string", v.Line, kindTag(v)))
				continue
			}
			switch k.Value {
			case "value":
				s.Value = v.Value
			case "id":
				s.ID = v.Value
			case "name":
				s.Name = v.Value
			default:
				errs = append(errs, fmt.Sprintf("line %d: field %s not found in type scenario.Slot", k.Line, k.Value))
			}
		}
		if len(errs) > 0 {
			return &yaml.TypeError{Errors: errs}
		}
		return nil
	}
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: cannot unmarshal !!%s into scenario.Slot", n.Line, kindTag(n))}}
}

func kindTag(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "seq"
	case yaml.MappingNode:
		return "map"
	}
	return "str"
}

// Expect lists what must hold after a turn; every key is optional.
type Expect struct {
	// Say is the exact speech, SSML tags included.
	Say *string `yaml:"say"`
	// SayContains is text the speech contains.
	SayContains *string `yaml:"say_contains"`
	// Reprompt is the exact reprompt.
	Reprompt *string `yaml:"reprompt"`
	// Card matches the card.
	Card *CardExpect `yaml:"card"`
	// EndSession is whether the response ends the session.
	EndSession *bool `yaml:"end_session"`
	// Directive is the first directive's type, e.g. Dialog.ElicitSlot.
	Directive *string `yaml:"directive"`
	// Session lists attributes that must be present with these values.
	Session map[string]any `yaml:"session"`
	// Request is a subset match against the turn's last upstream request.
	Request *RequestExpect `yaml:"request"`
	// NoRequest says that the turn made no upstream request.
	NoRequest bool `yaml:"no_request"`
	// CanFulfillIntent is a subset match against the response's
	// canFulfillIntent, in Amazon's names: {canFulfill: YES, slots:
	// {Name: {canUnderstand: YES, canFulfill: YES}}}.
	CanFulfillIntent map[string]any `yaml:"can_fulfill_intent"`
	// IsError and Values are for MCP turns: the result's isError and a
	// subset of its structuredContent.
	IsError *bool          `yaml:"is_error"`
	Values  map[string]any `yaml:"values"`
}

// CardExpect matches the card of a response.
type CardExpect struct {
	Type  *string `yaml:"type"`
	Title *string `yaml:"title"`
	Text  *string `yaml:"text"`
}

// RequestExpect is a subset match against the turn's last upstream request.
type RequestExpect struct {
	Method  string            `yaml:"method"`
	Path    string            `yaml:"path"`
	Query   map[string]string `yaml:"query"`
	Headers map[string]string `yaml:"headers"`
	Body    yaml.Node         `yaml:"body"`
}

// Parse reads a scenario file strictly and records the line of each turn
// and expectation, for failure messages. Its errors are FILE:LINE:COL:
// key.path: message, one a line, with no Go type names.
func Parse(file string, data []byte) (*Scenario, error) {
	var sc Scenario
	if ps := config.DecodeStrict(file, data, &sc); len(ps) > 0 {
		return nil, problemsError(ps)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %v", file, err)
	}
	doc := root.Content[0]
	pos := func(n *yaml.Node) string { return fmt.Sprintf("%s:%d:%d", file, n.Line, n.Column) }
	turnNodes := child(doc, "turns")
	if turns := turnNodes; turns != nil {
		for i, tn := range turns.Content {
			if i >= len(sc.Turns) || sc.Turns[i] == nil {
				continue
			}
			t := sc.Turns[i]
			t.line = tn.Line
			t.lines = map[string]int{}
			t.at = map[string][2]int{"": {tn.Line, tn.Column}}
			if in := child(tn, "intent"); in != nil {
				t.at["intent"] = [2]int{in.Line, in.Column}
			}
			if sl := child(tn, "slots"); sl != nil && sl.Kind == yaml.MappingNode {
				for j := 0; j+1 < len(sl.Content); j += 2 {
					t.at["slots."+sl.Content[j].Value] = [2]int{sl.Content[j].Line, sl.Content[j].Column}
				}
			}
			if ex := child(tn, "expect"); ex != nil {
				t.lines["expect"] = ex.Line
				for j := 0; j+1 < len(ex.Content); j += 2 {
					t.lines[ex.Content[j].Value] = ex.Content[j].Line
				}
			}
		}
	}
	if stubs := child(doc, "stubs"); stubs != nil {
		for i, sn := range stubs.Content {
			if i < len(sc.Stubs) && sc.Stubs[i] != nil {
				sc.Stubs[i].line = sn.Line
				sc.Stubs[i].at = pos(sn)
			}
		}
	}
	if sc.Skill == "" {
		return nil, fmt.Errorf("%s:%d:%d: skill is required (the name of a skill of the config)", file, doc.Line, doc.Column)
	}
	if len(sc.Turns) == 0 {
		return nil, fmt.Errorf("%s:%d:%d: no turns", file, doc.Line, doc.Column)
	}
	for i, t := range sc.Turns {
		if t != nil && t.Tool != "" {
			if t.Launch || t.Intent != "" || len(t.Slots) > 0 || t.Confirmation != "" || t.AccessToken != "" || t.CanFulfill {
				return nil, fmt.Errorf("%s:%d: turn %d is an MCP turn (tool): it takes arguments, not launch, intent, slots, confirmation or access_token", file, lineOf(t), i+1)
			}
			continue
		}
		if t != nil && len(t.Arguments) > 0 {
			return nil, fmt.Errorf("%s:%d: turn %d: arguments belong to an MCP turn (tool), slots to an intent", file, lineOf(t), i+1)
		}
		if t == nil || (t.Launch == (t.Intent != "")) {
			at := fmt.Sprintf("%s:%d:%d", file, doc.Line, doc.Column)
			if turnNodes != nil && i < len(turnNodes.Content) {
				at = pos(turnNodes.Content[i])
			}
			return nil, fmt.Errorf("%s: turns[%d]: turn %d needs exactly one of `launch: true` and `intent`", at, i, i+1)
		}
		switch t.Confirmation {
		case "", "NONE", "CONFIRMED", "DENIED":
		default:
			return nil, fmt.Errorf("%s:%d:%d: turns[%d].confirmation: must be CONFIRMED or DENIED, not %q", file, t.line, 1, i, t.Confirmation)
		}
	}
	for i, s := range sc.Stubs {
		if s == nil || s.Service == "" || s.Path == "" {
			at := fmt.Sprintf("%s:%d:%d", file, doc.Line, doc.Column)
			if s != nil && s.at != "" {
				at = s.at
			}
			return nil, fmt.Errorf("%s: stubs[%d]: every stub needs service and path", at, i)
		}
		if err := s.prepare(); err != nil {
			return nil, fmt.Errorf("%s: stubs[%d]: %s", s.at, i, oneLine(err))
		}
	}
	return &sc, nil
}

// oneLine flattens a yaml.v3 error (which may list several problems on
// lines of their own) into one line.
func oneLine(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return strings.Join(te.Errors, "; ")
	}
	return strings.Join(strings.Fields(strings.TrimPrefix(err.Error(), "yaml: ")), " ")
}

// problemsError joins problems into one error, a problem a line. An
// unknown key names the key and, when there is one, the likely key.
func problemsError(ps config.Problems) error {
	lines := make([]string, len(ps))
	for i, p := range ps {
		if strings.HasPrefix(p.Msg, "unknown key") {
			key := p.Path[strings.LastIndexAny(p.Path, ".]")+1:]
			p.Msg = fmt.Sprintf("field %s not found in %s%s", key, where(p.Path), strings.TrimPrefix(p.Msg, "unknown key"))
		}
		lines[i] = p.Error()
	}
	return errors.New(strings.Join(lines, "\n"))
}

// where names the mapping that holds the key at path, for messages.
func where(path string) string {
	i := strings.LastIndexByte(path, '.')
	if i < 0 {
		return "a scenario"
	}
	parent := path[:i]
	if j := strings.LastIndexByte(parent, '.'); j >= 0 {
		parent = parent[j+1:]
	}
	switch {
	case strings.HasPrefix(parent, "turns["):
		return "a turn"
	case strings.HasPrefix(parent, "stubs["):
		return "a stub"
	}
	return strings.TrimSuffix(parent, "]")
}

func lineOf(t *Turn) int {
	if t == nil {
		return 0
	}
	return t.line
}

func child(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func (s *Stub) prepare() error {
	if s.Status == 0 {
		s.Status = http.StatusOK
	}
	s.Method = strings.ToUpper(s.Method)
	if s.Delay.Raw != "" {
		d, err := time.ParseDuration(s.Delay.Raw)
		if err != nil {
			return fmt.Errorf("delay: invalid duration %q", s.Delay.Raw)
		}
		s.Delay.D = d
	}
	switch {
	case s.Raw != nil:
		s.body = []byte(*s.Raw)
	case s.Body.Kind != 0:
		v, err := nodeValue(&s.Body)
		if err != nil {
			return err
		}
		s.body, _ = json.Marshal(v)
	}
	return nil
}

// nodeValue decodes a YAML node into JSON-compatible values.
func nodeValue(n *yaml.Node) (any, error) {
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, err
	}
	return normalize(v), nil
}

// normalize turns YAML-decoded values into what JSON decoding would give,
// so that expectations compare equal to decoded responses.
func normalize(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}

// Discover lists scenario files next to a config: examples/*.yaml and
// scenarios/*.yaml in its directory.
func Discover(configPath string) []string {
	dir := filepath.Dir(configPath)
	var files []string
	for _, sub := range []string{"examples", "scenarios"} {
		m, _ := filepath.Glob(filepath.Join(dir, sub, "*.yaml"))
		files = append(files, m...)
	}
	return files
}

// ForConfig keeps the files whose scenario names a skill of cfg, so that
// scenarios written for another configuration next to it do not run. A
// file whose skill cannot be read is kept, to report its error.
func ForConfig(cfg *config.Config, files []string) []string {
	var out []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			out = append(out, f)
			continue
		}
		var head struct {
			Skill string `yaml:"skill"`
		}
		if err := yaml.Unmarshal(data, &head); err != nil || head.Skill == "" {
			out = append(out, f)
			continue
		}
		if _, ok := cfg.Skills[head.Skill]; ok {
			out = append(out, f)
		}
	}
	return out
}

// Runner runs scenario files against a configuration.
type Runner struct {
	// Config is the configuration file, loaded afresh for each scenario.
	Config string
	// Build wires the pipeline for a config whose service URLs point at
	// the stubs, over the scenario's in-memory secrets.
	Build func(cfg *config.Config, store *inmem.Store) Handler
	Out   io.Writer

	// warnings of the file being run, printed under its result line.
	warnings []string
	// MCP, when set, wires the MCP endpoint of turns with `tool:`, over
	// the same stubs and secrets; the user of a call is in the UserHeader
	// request header.
	MCP func(cfg *config.Config, store *inmem.Store) http.Handler
}

// UserHeader carries the user of an MCP turn to the handler Runner.MCP
// wires (mcp.Options.UserHeader).
const UserHeader = "X-Voicegw-Scenario-User"

// Run runs each file, prints a line per scenario and the closing
// "N passed, N failed", and returns the number that failed.
func (r *Runner) Run(files []string) int {
	passed, failed := 0, 0
	for _, f := range files {
		r.warnings = nil
		problems := r.runFile(f)
		if len(problems) == 0 {
			passed++
			fmt.Fprintf(r.Out, "ok   %s\n", f)
		} else {
			failed++
			fmt.Fprintf(r.Out, "FAIL %s\n", f)
		}
		for _, p := range problems {
			fmt.Fprintf(r.Out, "     %s\n", p)
		}
		for _, w := range r.warnings {
			fmt.Fprintf(r.Out, "     warning: %s\n", w)
		}
	}
	fmt.Fprintf(r.Out, "%d passed, %d failed\n", passed, failed)
	return failed
}

func (r *Runner) runFile(file string) []string {
	data, err := os.ReadFile(file)
	if err != nil {
		return []string{err.Error()}
	}
	sc, err := Parse(file, data)
	if err != nil {
		return strings.Split(err.Error(), "\n")
	}
	cfg, problems := config.Load(r.Config)
	if cfg == nil {
		return []string{problems.Err().Error()}
	}
	return r.runScenario(file, sc, cfg)
}
