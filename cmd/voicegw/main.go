// Command voicegw is a declarative voice gateway: YAML maps Alexa intents
// to templated HTTP API calls and spoken replies. See README.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/voicegw/voicegw/gateway/alexa"
	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/gateway/engine"
	"github.com/voicegw/voicegw/gateway/inmem"
	"github.com/voicegw/voicegw/gateway/mcp"
	"github.com/voicegw/voicegw/gateway/scenario"
)

// Set by the linker: -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText())
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return cmdServe(rest, stdout, stderr)
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
		if len(rest) > 0 && isHelp(rest[0]) {
			c, _ := lookupCommand("version")
			fmt.Fprintf(stdout, "usage: voicegw %s\n\n%s\n", c.synopsis, c.summary)
			return 0
		}
		fmt.Fprintf(stdout, "voicegw %s (commit %s, %s)\n", version, commit, runtime.Version())
		return 0
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 && !isHelp(rest[0]) {
			if _, ok := lookupCommand(rest[0]); !ok {
				fmt.Fprintf(stderr, "voicegw help: unknown command %q\n\n%s", rest[0], usageText())
				return 2
			}
			return run([]string{rest[0], "-h"}, stdout, stderr)
		}
		fmt.Fprint(stdout, usageText())
		return 0
	}
	fmt.Fprintf(stderr, "voicegw: unknown command %q\n\n%s", cmd, usageText())
	return 2
}

func defaultConfig() string {
	if c := os.Getenv("VOICEGW_CONFIG"); c != "" {
		return c
	}
	return "config.yaml"
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
	if code, ok := parse(fs, args, stdout); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "check: unexpected argument %q (the config is -c FILE)\n", fs.Arg(0))
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

func cmdServe(args []string, stdout, stderr io.Writer) int {
	fs, path := newFlags("serve", stderr)
	secrets := fs.String("secrets", "", "load secrets from this YAML `file` into memory and use them in place of Vault (local development)")
	watch := fs.Bool("watch", false, "reload the configuration when its file changes, as SIGHUP does")
	if code, ok := parse(fs, args, stdout); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "serve: unexpected argument %q\n", fs.Arg(0))
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
	if *secrets != "" {
		store, problems := loadSecrets(*secrets)
		for _, p := range problems {
			log.Error("secrets", "problem", p.Error())
		}
		if store == nil {
			return 1
		}
		d.useSecrets(store, *secrets)
		log.Warn("secrets are not in Vault: serving them from memory, loaded from "+*secrets+", for local development only; links made through /link last until the process stops",
			"file", *secrets)
	}
	rt, err := d.serveRuntime(cfg)
	if err != nil {
		log.Error("start", "error", err.Error())
		return 1
	}
	srv := d.server(rt, cfg)
	ln, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		log.Error("listen", "error", err.Error())
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if addr := cfg.Server.MetricsListen; addr != "" {
		mln, err := net.Listen("tcp", addr)
		if err != nil {
			log.Error("listen for metrics", "error", err.Error())
			return 1
		}
		go serveOn(ctx, mln, metricsMux(d.metrics.Handler()), log)
		log.Info("serving metrics", "addr", mln.Addr().String())
	}
	if addr := cfg.Server.DebugListen; addr != "" {
		dln, err := net.Listen("tcp", addr)
		if err != nil {
			log.Error("listen for profiles", "error", err.Error())
			return 1
		}
		go serveOn(ctx, dln, debugMux(), log)
		log.Warn("serving profiles (net/http/pprof)", "addr", dln.Addr().String())
	}
	go (&reloader{path: *path, d: d, srv: srv, log: log}).run(ctx, *watch)
	log.Info("serving", "addr", ln.Addr().String(), "config", *path, "skills", len(cfg.Skills), "version", version)
	if err := srv.Serve(ctx, ln); err != nil {
		log.Error("serve", "error", err.Error())
		return 1
	}
	log.Info("stopped")
	return 0
}

// metricsMux serves /metrics alone (server.metrics_listen).
func metricsMux(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	return mux
}

// debugMux serves net/http/pprof under /debug/pprof/ (server.debug_listen).
func debugMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// serveOn serves h on ln until ctx is done: the metrics and profiling
// listeners beside the main one.
func serveOn(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) {
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = hs.Close()
	}()
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("serve", "addr", ln.Addr().String(), "error", err.Error())
	}
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

// repeatedKV is a K=V flag that remembers every value of a key, in
// order, for a multi-value slot given as --slot K=a --slot K=b.
type repeatedKV struct {
	kvFlag
	all map[string][]string
}

func (f repeatedKV) Set(s string) error {
	if err := f.kvFlag.Set(s); err != nil {
		return err
	}
	k, v, _ := strings.Cut(s, "=")
	f.all[k] = append(f.all[k], v)
	return nil
}

func cmdInvoke(args []string, stdout, stderr io.Writer) int {
	fs, path := newFlags("invoke", stderr)
	skill := fs.String("skill", "", "skill `name` (a key under skills:)")
	launch := fs.Bool("launch", false, "send a LaunchRequest")
	intent := fs.String("intent", "", "send an IntentRequest for this intent `name`")
	user := fs.String("user", "amzn1.ask.account.INVOKE", "Alexa `userId` of the caller")
	token := fs.String("access-token", "", "Alexa-managed account-linking `token` (auth type alexa)")
	locale := fs.String("locale", "en-US", "request `locale`, e.g. de-DE")
	confirm := fs.String("confirm", "", "answer the intent's confirmation with `yes|no`")
	secrets := fs.String("secrets", "", "load secrets from this YAML `file` into memory and use them in place of Vault")
	asJSON := fs.Bool("json", false, "print the whole Alexa response instead of the speech")
	session := kvFlag{}
	slotFlag := repeatedKV{kvFlag: kvFlag{}, all: map[string][]string{}}
	slots := slotFlag.kvFlag
	fs.Var(slotFlag, "slot", "slot value `K=V` (repeatable; repeat K for a slot with multiple: true)")
	fs.Var(session, "session", "session attribute `K=V` (repeatable)")
	if code, ok := parse(fs, args, stdout); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "invoke: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *skill == "" || (*launch == (*intent != "")) {
		fmt.Fprintln(stderr, "invoke: need --skill and exactly one of --launch or --intent")
		return 2
	}
	confirmation := ""
	switch strings.ToLower(*confirm) {
	case "":
	case "yes", "y", "confirmed":
		confirmation = "CONFIRMED"
	case "no", "n", "denied":
		confirmation = "DENIED"
	default:
		fmt.Fprintf(stderr, "invoke: --confirm is yes or no, not %q\n", *confirm)
		return 2
	}
	if !localeRe.MatchString(*locale) {
		fmt.Fprintf(stderr, "invoke: invalid locale %q (want e.g. en-US)\n", *locale)
		return 2
	}
	if *launch && (len(slots) > 0 || confirmation != "") {
		fmt.Fprintln(stderr, "invoke: --slot and --confirm go with --intent, not --launch")
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
	if *intent != "" {
		if msg := checkInvokeIntent(sk, *intent, slots); msg != "" {
			fmt.Fprintf(stderr, "invoke: %s\n", msg)
			return 2
		}
		for _, k := range slices.Sorted(maps.Keys(slotFlag.all)) {
			if in := sk.Intents[*intent]; len(slotFlag.all[k]) > 1 && (in == nil || in.Slots[k] == nil || !in.Slots[k].Multiple) {
				fmt.Fprintf(stderr, "invoke: slot %s takes one value: give --slot %s=V once, or set multiple: true on the slot\n", k, k)
				return 2
			}
		}
	}
	log := newLogger(stderr, slog.LevelWarn)
	d := newDeps(log)
	if *secrets != "" {
		store, problems := loadSecrets(*secrets)
		for _, p := range problems {
			fmt.Fprintln(stderr, p.Error())
		}
		if store == nil {
			return 1
		}
		d.useSecrets(store, *secrets)
	}
	outcome := &outcomeRecorder{}
	d.observe = outcome
	store, err := d.store(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "invoke: %v\n", err)
		return 1
	}
	defer d.closeVault()
	h := d.handler(cfg, store, false)
	spec := alexa.RequestSpec{
		ApplicationID: sk.ApplicationID, UserID: *user, AccessToken: *token,
		Type: "LaunchRequest", Locale: *locale, NewSession: true, Confirmation: confirmation,
	}
	var resolved map[string]scenario.Resolution
	var lists map[string][]scenario.Value
	if *intent != "" {
		spec.Type, spec.Intent = "IntentRequest", *intent
		given := make(map[string]scenario.Slot, len(slots))
		for k, v := range slots {
			given[k] = scenario.Slot{Value: v}
			if in := sk.Intents[*intent]; in != nil && in.Slots[k] != nil && in.Slots[k].Multiple {
				list := []scenario.Slot{}
				for _, item := range slotFlag.all[k] {
					list = append(list, scenario.Slot{Value: item})
				}
				given[k] = scenario.Slot{List: list}
			}
		}
		spec.Slots, resolved, lists = scenario.ResolveSlots(sk, *intent, *locale, given)
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
	status, body := h.Serve(context.Background(), *skill, nil, scenario.WithSlots(alexa.BuildRequest(spec), resolved, lists))
	if status != 200 {
		fmt.Fprintf(stderr, "invoke: HTTP %d: %s\n", status, body)
		return 1
	}
	if *asJSON {
		var pretty any
		_ = json.Unmarshal(body, &pretty)
		out, _ := json.MarshalIndent(pretty, "", "  ")
		fmt.Fprintln(stdout, string(out))
	} else {
		var resp alexa.Response
		if err := json.Unmarshal(body, &resp); err != nil {
			fmt.Fprintf(stderr, "invoke: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, resp.Speech())
	}
	if o := outcome.get(); o != "" && o != "ok" {
		fmt.Fprintf(stderr, "invoke: the turn ended in error speech (outcome %s)\n", o)
		return 1
	}
	return 0
}

// checkInvokeIntent returns a usage error for an intent the skill does
// not have, or a slot its intent does not have. A built-in intent the
// skill does not configure has no slots of its own; a slot of any intent
// of the skill is let through, as Alexa would send it in a dialog.
func checkInvokeIntent(sk *config.Skill, intent string, slots kvFlag) string {
	in := sk.Intents[intent]
	if in == nil && !slices.Contains(config.BuiltinIntents, intent) {
		known := append(config.IntentNames(sk), config.BuiltinIntents...)
		msg := fmt.Sprintf("skill %s has no intent %q", sk.Name, intent)
		if near := config.Closest(intent, known); near != "" {
			return msg + fmt.Sprintf(" (did you mean %s?)", near)
		}
		return msg + " (its intents: " + strings.Join(known, ", ") + ")"
	}
	names := make([]string, 0, len(slots))
	for k := range slots {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		if in != nil {
			if in.Slots[name] != nil {
				continue
			}
			msg := fmt.Sprintf("intent %s has no slot %q", intent, name)
			if near := config.Closest(name, config.SlotNames(in)); near != "" {
				return msg + fmt.Sprintf(" (did you mean %s?)", near)
			}
			if len(in.Slots) == 0 {
				return msg + " (it has no slots)"
			}
			return msg + " (its slots: " + strings.Join(config.SlotNames(in), ", ") + ")"
		}
		found := false
		for _, other := range sk.Intents {
			if other != nil && other.Slots[name] != nil {
				found = true
			}
		}
		if !found {
			return fmt.Sprintf("no intent of skill %s has a slot %q", sk.Name, name)
		}
	}
	return ""
}

// outcomeRecorder records the outcome of the last turn ("ok", "timeout",
// ...) and passes every report on.
type outcomeRecorder struct {
	next    engine.Observer
	mu      sync.Mutex
	outcome string
}

// Turn implements engine.Observer.
func (o *outcomeRecorder) Turn(skill, intent, outcome string, took time.Duration) {
	o.mu.Lock()
	o.outcome = outcome
	o.mu.Unlock()
	if o.next != nil {
		o.next.Turn(skill, intent, outcome, took)
	}
}

// Call implements engine.Observer.
func (o *outcomeRecorder) Call(service string, status int, took time.Duration) {
	if o.next != nil {
		o.next.Call(service, status, took)
	}
}

func (o *outcomeRecorder) get() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.outcome
}

func cmdTest(args []string, stdout, stderr io.Writer) int {
	fs, path := newFlags("test", stderr)
	verbose := fs.Bool("v", false, "log gateway warnings while the scenarios run")
	files, err := parseInterspersed(fs, args)
	if code, ok := parseResult(fs, err, stdout); !ok {
		return code
	}
	cfg := loadConfig(*path, stderr, false)
	if cfg == nil {
		return 1
	}
	if len(files) == 0 {
		files = scenario.ForConfig(cfg, scenario.Discover(*path))
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
		// MCP turns run the same pipeline behind the MCP adapter.
		MCP: func(cfg *config.Config, store *inmem.Store) http.Handler {
			return mcp.NewHandler(cfg, d.handler(cfg, store, false).Engine, mcp.Options{Logger: d.log, UserHeader: scenario.UserHeader})
		},
		Out: stdout,
	}
	failed := r.Run(files)
	if failed > 0 {
		return 1
	}
	return 0
}
