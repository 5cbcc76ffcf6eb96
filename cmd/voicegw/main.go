// Command voicegw is a declarative voice gateway: YAML maps Alexa intents
// to templated HTTP API calls and spoken replies. See README.md.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strings"
	"syscall"

	"github.com/voicegw/voicegw/gateway/alexa"
	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/gateway/inmem"
	"github.com/voicegw/voicegw/gateway/scenario"
)

// Set by the linker: -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

const usage = `usage: voicegw COMMAND [flags]

commands:
  serve   -c FILE                          run the HTTP server
  check   -c FILE                          validate a configuration offline
  invoke  -c FILE --skill S (--launch | --intent I [--slot K=V]...) [--user U] [--session K=V]... [--json]
  model   -c FILE --skill S [--locale en-US] print the Alexa interaction model
  test    -c FILE [SCENARIO.yaml...]       run conversation scenarios
  link    put|show|rm --user U --service S  manage linked tokens in Vault
  version                                  print version information

The config file defaults to $VOICEGW_CONFIG, else config.yaml.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return cmdServe(rest, stderr)
	case "check":
		return cmdCheck(rest, stdout, stderr)
	case "invoke":
		return cmdInvoke(rest, stdout, stderr)
	case "test":
		return cmdTest(rest, stdout, stderr)
	case "model":
		return cmdModel(rest, stdout, stderr)
	case "link":
		return cmdLink(rest, stdout, stderr)
	case "version":
		fmt.Fprintf(stdout, "voicegw %s (commit %s, %s)\n", version, commit, runtime.Version())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "voicegw: unknown command %q\n\n%s", cmd, usage)
	return 2
}

func defaultConfig() string {
	if c := os.Getenv("VOICEGW_CONFIG"); c != "" {
		return c
	}
	return "config.yaml"
}

// flags returns a flag set with -c and a parse helper that reports errors
// and accepts flags after positional arguments.
func newFlags(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := fs.String("c", defaultConfig(), "configuration `file`")
	return fs, cfg
}

// parseInterspersed parses flags that may follow positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// loadConfig loads path and prints its problems to w.
func loadConfig(path string, w io.Writer, warnings bool) *config.Config {
	cfg, problems := config.Load(path)
	for _, p := range problems {
		if p.Warning && !warnings {
			continue
		}
		fmt.Fprintln(w, p.Error())
	}
	return cfg
}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs, path := newFlags("check", stderr)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg := loadConfig(*path, stdout, true)
	if cfg == nil {
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok (%d skills, %d services)\n", *path, len(cfg.Skills), len(cfg.Services))
	return 0
}

func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

func cmdServe(args []string, stderr io.Writer) int {
	fs, path := newFlags("serve", stderr)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := newLogger(stderr, slog.LevelInfo)
	cfg, problems := config.Load(*path)
	for _, p := range problems {
		if p.Warning {
			log.Warn("config", "problem", p.Error())
		} else {
			log.Error("config", "problem", p.Error())
		}
	}
	if cfg == nil {
		return 1
	}
	d := newDeps(log)
	rt, err := d.serveRuntime(cfg)
	if err != nil {
		log.Error("start", "error", err.Error())
		return 1
	}
	srv := d.server(rt)
	ln, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		log.Error("listen", "error", err.Error())
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			next, problems := config.Load(*path)
			if next == nil {
				for _, p := range problems.Errors() {
					log.Error("reload failed, keeping the running configuration", "problem", p.Error())
				}
				continue
			}
			rt, err := d.serveRuntime(next)
			if err != nil {
				log.Error("reload failed, keeping the running configuration", "error", err.Error())
				continue
			}
			srv.Swap(rt)
			log.Info("configuration reloaded", "file", *path, "skills", len(next.Skills))
		}
	}()
	log.Info("serving", "addr", ln.Addr().String(), "config", *path, "skills", len(cfg.Skills), "version", version)
	if err := srv.Serve(ctx, ln); err != nil {
		log.Error("serve", "error", err.Error())
		return 1
	}
	log.Info("stopped")
	return 0
}

// kvFlag collects repeated K=V flags.
type kvFlag map[string]string

func (f kvFlag) String() string { return "" }

func (f kvFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want K=V, got %q", s)
	}
	f[k] = v
	return nil
}

func cmdInvoke(args []string, stdout, stderr io.Writer) int {
	fs, path := newFlags("invoke", stderr)
	skill := fs.String("skill", "", "skill `name`")
	launch := fs.Bool("launch", false, "send a LaunchRequest")
	intent := fs.String("intent", "", "intent `name`")
	user := fs.String("user", "amzn1.ask.account.INVOKE", "Alexa `userId`")
	token := fs.String("access-token", "", "Alexa-managed account-linking `token`")
	locale := fs.String("locale", "en-US", "request `locale`")
	asJSON := fs.Bool("json", false, "print the whole Alexa response")
	slots, session := kvFlag{}, kvFlag{}
	fs.Var(slots, "slot", "slot value `K=V` (repeatable)")
	fs.Var(session, "session", "session attribute `K=V` (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *skill == "" || (*launch == (*intent != "")) {
		fmt.Fprintln(stderr, "invoke: need --skill and exactly one of --launch or --intent")
		return 2
	}
	cfg := loadConfig(*path, stderr, false)
	if cfg == nil {
		return 1
	}
	sk, ok := cfg.Skills[*skill]
	if !ok {
		fmt.Fprintf(stderr, "invoke: no skill %q in %s\n", *skill, *path)
		return 1
	}
	log := newLogger(stderr, slog.LevelWarn)
	d := newDeps(log)
	store, err := d.store(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "invoke: %v\n", err)
		return 1
	}
	defer d.closeVault()
	h := d.handler(cfg, store, false)
	spec := alexa.RequestSpec{
		ApplicationID: sk.ApplicationID, UserID: *user, AccessToken: *token,
		Type: "LaunchRequest", Locale: *locale, NewSession: true,
	}
	if *intent != "" {
		spec.Type, spec.Intent, spec.Slots = "IntentRequest", *intent, slots
	}
	if len(session) > 0 {
		spec.Session = map[string]any{}
		for k, v := range session {
			spec.Session[k] = v
		}
	}
	if spec.ApplicationID == "" {
		spec.ApplicationID = "amzn1.ask.skill.invoke"
	}
	status, body := h.Serve(context.Background(), *skill, nil, alexa.BuildRequest(spec))
	if status != 200 {
		fmt.Fprintf(stderr, "invoke: HTTP %d: %s\n", status, body)
		return 1
	}
	if *asJSON {
		var pretty any
		_ = json.Unmarshal(body, &pretty)
		out, _ := json.MarshalIndent(pretty, "", "  ")
		fmt.Fprintln(stdout, string(out))
		return 0
	}
	var resp alexa.Response
	if err := json.Unmarshal(body, &resp); err != nil {
		fmt.Fprintf(stderr, "invoke: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, resp.Speech())
	return 0
}

func cmdTest(args []string, stdout, stderr io.Writer) int {
	fs, path := newFlags("test", stderr)
	verbose := fs.Bool("v", false, "log gateway warnings")
	files, err := parseInterspersed(fs, args)
	if err != nil {
		return 2
	}
	cfg := loadConfig(*path, stderr, false)
	if cfg == nil {
		return 1
	}
	if len(files) == 0 {
		files = scenario.Discover(*path)
		sort.Strings(files)
	}
	if len(files) == 0 {
		fmt.Fprintln(stderr, "test: no scenario files given or found next to the config (examples/*.yaml, scenarios/*.yaml)")
		return 1
	}
	level := slog.LevelError + 4
	if *verbose {
		level = slog.LevelWarn
	}
	log := newLogger(stderr, level)
	d := newDeps(log)
	r := &scenario.Runner{
		Config: *path,
		Build: func(cfg *config.Config, store *inmem.Store) scenario.Handler {
			return d.handler(cfg, store, false)
		},
		Out: stdout,
	}
	failed := r.Run(files)
	if failed > 0 {
		return 1
	}
	return 0
}
