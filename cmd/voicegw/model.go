package main

import (
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"github.com/voicegw/voicegw/gateway/model"
)

// localeRe is the shape of an Alexa locale such as en-US or pt-BR.
var localeRe = regexp.MustCompile(`^[a-z]{2}-[A-Z]{2}$`)

// cmdModel prints the Alexa interaction model of one skill for --locale:
// that locale's samples, prompts, type values and invocation name. A locale
// the skill does not list gets the texts of the skill's locale that would
// answer it (same language, else the first), with a note on stderr.
func cmdModel(args []string, stdout, stderr io.Writer) int {
	fs, path := newFlags("model", stderr)
	skill := fs.String("skill", "", "skill `name` (a key under skills:)")
	locale := fs.String("locale", model.DefaultLocale, "Alexa `locale` the model is for")
	if code, ok := parse(fs, args, stdout); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "model: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *skill == "" {
		fmt.Fprintln(stderr, "model: need --skill")
		return 2
	}
	if !localeRe.MatchString(*locale) {
		fmt.Fprintf(stderr, "model: invalid locale %q (want e.g. en-US)\n", *locale)
		return 2
	}
	cfg := loadConfig(*path, stderr, false)
	if cfg == nil {
		return 1
	}
	sk, ok := cfg.Skills[*skill]
	if !ok || sk == nil {
		fmt.Fprintf(stderr, "model: no skill %q in %s\n", *skill, *path)
		return 1
	}
	if !slices.Contains(sk.Locales, *locale) {
		fmt.Fprintf(stderr, "model: skill %s has no locale %s (its locales: %s): printing the %s model\n",
			*skill, *locale, strings.Join(sk.Locales, ", "), sk.LocaleFor(*locale))
	}
	if err := model.Build(sk, *locale).WriteJSON(stdout); err != nil {
		fmt.Fprintf(stderr, "model: %v\n", err)
		return 1
	}
	return 0
}
