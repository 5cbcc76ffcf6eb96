package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// command is one voicegw command as its help shows it.
type command struct {
	name, synopsis, summary string
}

// commands lists every command, in the order the usage shows them.
var commands = []command{
	{"serve", "serve -c FILE [--secrets FILE] [--watch]", "run the HTTP server (SIGHUP or, with --watch, saving the file reloads the config; SIGINT/SIGTERM stop gracefully)"},
	{"check", "check -c FILE", "validate a configuration offline: every problem as FILE:LINE:COL: key.path: message"},
	{"invoke", "invoke -c FILE --skill S (--launch | --intent I [--slot K=V]...) [flags]", "run one turn through the serve pipeline and print the speech"},
	{"model", "model -c FILE --skill S [--locale en-US]", "print the Alexa interaction model JSON of a skill"},
	{"test", "test -c FILE [SCENARIO.yaml...]", "run conversation scenarios against stubbed upstreams"},
	{"link", "link put|show|rm --user U --service S [flags]", "operator access to linked tokens in Vault"},
	{"version", "version", "print version, commit and Go version"},
	{"help", "help [COMMAND]", "show this help, or a command's flags"},
}

func usageText() string {
	var b strings.Builder
	b.WriteString("usage: voicegw COMMAND [flags]\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-8s %s\n", c.name, c.summary)
	}
	b.WriteString("\nThe config file defaults to $VOICEGW_CONFIG, else config.yaml.\n")
	b.WriteString("Run 'voicegw help COMMAND' or 'voicegw COMMAND -h' for a command's flags.\n")
	return b.String()
}

func lookupCommand(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// newFlags returns a flag set for the command name with -c.
func newFlags(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	cfg := fs.String("c", defaultConfig(), "configuration `file` (default: $VOICEGW_CONFIG, else config.yaml)")
	return fs, cfg
}

// printHelp writes a command's synopsis, summary and flags to w.
func printHelp(fs *flag.FlagSet, w io.Writer) {
	name := fs.Name()
	if c, ok := lookupCommand(strings.Fields(name)[0]); ok {
		fmt.Fprintf(w, "usage: voicegw %s\n\n%s\n\nflags:\n", c.synopsis, c.summary)
	}
	out := fs.Output()
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(out)
}

// parse parses args. -h and --help print the command's help to stdout
// (exit 0); a bad flag says so and how to get help (exit 2). ok is false
// when the command should return code.
func parse(fs *flag.FlagSet, args []string, stdout io.Writer) (code int, ok bool) {
	err := fs.Parse(args)
	return parseResult(fs, err, stdout)
}

func parseResult(fs *flag.FlagSet, err error, stdout io.Writer) (int, bool) {
	switch {
	case errors.Is(err, flag.ErrHelp):
		printHelp(fs, stdout)
		return 0, false
	case err != nil:
		fmt.Fprintf(fs.Output(), "run 'voicegw %s -h' for its flags\n", strings.Fields(fs.Name())[0])
		return 2, false
	}
	return 0, true
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}
