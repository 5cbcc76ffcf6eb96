// Package scenario runs conversation scenarios (SPEC 9): turns sent
// through the same pipeline as serve, against stub upstreams that are real
// local HTTP servers and an in-memory secret store, with expectations on
// the speech, card, session, directives and the upstream requests.
package scenario

import (
	"bytes"
	"context"
	"encoding/json"
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
	Skill   string                       `yaml:"skill"`
	Stubs   []*Stub                      `yaml:"stubs"`
	Secrets map[string]map[string]string `yaml:"secrets"`
	Turns   []*Turn                      `yaml:"turns"`
}

// Stub is a canned upstream answer.
type Stub struct {
	Service string            `yaml:"service"`
	Method  string            `yaml:"method"`
	Path    string            `yaml:"path"`
	Query   map[string]string `yaml:"query"`
	Status  int               `yaml:"status"`
	Body    yaml.Node         `yaml:"body"`
	Raw     *string           `yaml:"raw"`
	Headers map[string]string `yaml:"headers"`
	Delay   config.Duration   `yaml:"delay"`

	body []byte
	line int
}

// Turn is one request of the conversation.
type Turn struct {
	Launch       bool              `yaml:"launch"`
	Intent       string            `yaml:"intent"`
	Slots        map[string]string `yaml:"slots"`
	User         string            `yaml:"user"`
	AccessToken  string            `yaml:"access_token"`
	Confirmation string            `yaml:"confirmation"`
	Locale       string            `yaml:"locale"`
	Expect       Expect            `yaml:"expect"`
	// Tool and Arguments make an MCP turn (SPEC 13) in place of intent
	// and slots: a tools/call of <skill>_<Intent>.
	Tool      string         `yaml:"tool"`
	Arguments map[string]any `yaml:"arguments"`

	line int
	// lines of each expect key
	lines map[string]int
}

// Expect lists what must hold after a turn; every key is optional.
type Expect struct {
	Say         *string        `yaml:"say"`
	SayContains *string        `yaml:"say_contains"`
	Reprompt    *string        `yaml:"reprompt"`
	Card        *CardExpect    `yaml:"card"`
	EndSession  *bool          `yaml:"end_session"`
	Directive   *string        `yaml:"directive"`
	Session     map[string]any `yaml:"session"`
	Request     *RequestExpect `yaml:"request"`
	NoRequest   bool           `yaml:"no_request"`
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
// and expectation, for failure messages.
func Parse(file string, data []byte) (*Scenario, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var sc Scenario
	if err := dec.Decode(&sc); err != nil {
		return nil, fmt.Errorf("%s: %v", file, err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %v", file, err)
	}
	doc := root.Content[0]
	if turns := child(doc, "turns"); turns != nil {
		for i, tn := range turns.Content {
			if i >= len(sc.Turns) || sc.Turns[i] == nil {
				continue
			}
			t := sc.Turns[i]
			t.line = tn.Line
			t.lines = map[string]int{}
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
			}
		}
	}
	if sc.Skill == "" {
		return nil, fmt.Errorf("%s: skill is required", file)
	}
	if len(sc.Turns) == 0 {
		return nil, fmt.Errorf("%s: no turns", file)
	}
	for i, t := range sc.Turns {
		if t != nil && t.Tool != "" {
			if t.Launch || t.Intent != "" || len(t.Slots) > 0 || t.Confirmation != "" || t.AccessToken != "" {
				return nil, fmt.Errorf("%s:%d: turn %d is an MCP turn (tool): it takes arguments, not launch, intent, slots, confirmation or access_token", file, lineOf(t), i+1)
			}
			continue
		}
		if t != nil && len(t.Arguments) > 0 {
			return nil, fmt.Errorf("%s:%d: turn %d: arguments belong to an MCP turn (tool), slots to an intent", file, lineOf(t), i+1)
		}
		if t == nil || (t.Launch == (t.Intent != "")) {
			return nil, fmt.Errorf("%s:%d: turn %d needs exactly one of `launch: true` and `intent`", file, lineOf(t), i+1)
		}
	}
	for _, s := range sc.Stubs {
		if s == nil || s.Service == "" || s.Path == "" {
			return nil, fmt.Errorf("%s: every stub needs service and path", file)
		}
		if err := s.prepare(); err != nil {
			return nil, fmt.Errorf("%s:%d: stub: %v", file, s.line, err)
		}
	}
	return &sc, nil
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

// Runner runs scenario files against a configuration.
type Runner struct {
	// Config is the configuration file, loaded afresh for each scenario.
	Config string
	// Build wires the pipeline for a config whose service URLs point at
	// the stubs, over the scenario's in-memory secrets.
	Build func(cfg *config.Config, store *inmem.Store) Handler
	Out   io.Writer
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
		problems := r.runFile(f)
		if len(problems) == 0 {
			passed++
			fmt.Fprintf(r.Out, "ok   %s\n", f)
			continue
		}
		failed++
		fmt.Fprintf(r.Out, "FAIL %s\n", f)
		for _, p := range problems {
			fmt.Fprintf(r.Out, "     %s\n", p)
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
		return []string{err.Error()}
	}
	cfg, problems := config.Load(r.Config)
	if cfg == nil {
		return []string{problems.Err().Error()}
	}
	return r.runScenario(file, sc, cfg)
}
