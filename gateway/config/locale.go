package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// localeShape is what a locale key looks like, in any case.
var localeShape = regexp.MustCompile(`^[A-Za-z]{2}[-_][A-Za-z]{2}$`)

// DefaultLocale is the locale of a skill without locales:.
const DefaultLocale = "en-US"

// AlexaLocales are the locales a custom skill can be published in.
var AlexaLocales = []string{
	"ar-SA", "de-DE", "en-AU", "en-CA", "en-GB", "en-IN", "en-US", "es-ES", "es-MX", "es-US",
	"fr-CA", "fr-FR", "hi-IN", "it-IT", "ja-JP", "nl-NL", "pt-BR",
}

// Localized is a value that a skill of several locales may give per
// locale: a plain value serves every locale, a mapping {en-US: …, de-DE:
// …} gives each locale its own.
type Localized[T any] struct {
	// Plain is the value given for every locale.
	Plain T
	// ByLocale holds the values given per locale; nil for a plain value.
	ByLocale map[string]T
	// Order lists the keys of ByLocale as the file gives them.
	Order []string
}

// Text is a string that may be given per locale.
type Text = Localized[string]

// TextList is a list of strings (sample utterances, synonyms) that may be
// given per locale.
type TextList = Localized[[]string]

// Plain returns a Localized that holds v for every locale.
func Plain[T any](v T) Localized[T] { return Localized[T]{Plain: v} }

// PerLocale reports whether the value was given per locale.
func (l Localized[T]) PerLocale() bool { return l.ByLocale != nil }

// In returns the value for locale: the plain value, or the one given for
// that exact locale, else for the first locale of the same language, else
// for the first locale given.
func (l Localized[T]) In(locale string) T {
	if l.ByLocale == nil {
		return l.Plain
	}
	if v, ok := l.ByLocale[locale]; ok {
		return v
	}
	if k := pickLocale(locale, l.Order); k != "" {
		return l.ByLocale[k]
	}
	var zero T
	return zero
}

// UnmarshalYAML accepts the plain value, or a mapping of locales to values.
func (l *Localized[T]) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return n.Decode(&l.Plain)
	}
	// A mapping whose keys are no locale at all is a mistake of the
	// value's type, reported as such.
	looksLocalized := len(n.Content) == 0
	for i := 0; i < len(n.Content); i += 2 {
		if localeShape.MatchString(n.Content[i].Value) {
			looksLocalized = true
		}
	}
	if !looksLocalized {
		return n.Decode(&l.Plain)
	}
	l.ByLocale = map[string]T{}
	var errs []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		var val T
		if err := v.Decode(&val); err != nil {
			if te, ok := err.(*yaml.TypeError); ok {
				errs = append(errs, te.Errors...)
				continue
			}
			return err
		}
		if _, dup := l.ByLocale[k.Value]; !dup {
			l.Order = append(l.Order, k.Value)
		}
		l.ByLocale[k.Value] = val
	}
	if len(errs) > 0 {
		return &yaml.TypeError{Errors: errs}
	}
	return nil
}

// pickLocale chooses among locales for a request's locale: the same
// locale, else the first of the same language, else the first one.
func pickLocale(locale string, locales []string) string {
	if len(locales) == 0 {
		return ""
	}
	if slices.Contains(locales, locale) {
		return locale
	}
	lang, _, _ := strings.Cut(locale, "-")
	for _, l := range locales {
		if ll, _, _ := strings.Cut(l, "-"); lang != "" && strings.EqualFold(ll, lang) {
			return l
		}
	}
	return locales[0]
}

// LocaleFor picks the skill's locale that answers a request's locale: the
// same locale, else the first of the same language, else the first.
func (sk *Skill) LocaleFor(locale string) string {
	if len(sk.Locales) == 0 {
		return DefaultLocale
	}
	return pickLocale(locale, sk.Locales)
}

// locales checks skills.S.locales and sets its default.
func (ck *checker) locales(p string, sk *Skill) {
	if sk.Locales == nil {
		sk.Locales = []string{DefaultLocale}
		ck.skillLocales = sk.Locales
		return
	}
	if len(sk.Locales) == 0 {
		ck.errf(p, "list at least one locale, e.g. [%s]", DefaultLocale)
		sk.Locales = []string{DefaultLocale}
	}
	seen := map[string]bool{}
	var ok []string
	for i, l := range sk.Locales {
		lp := fmt.Sprintf("%s[%d]", p, i)
		if msg := localeProblem(l); msg != "" {
			ck.errf(lp, "%s", msg)
			// A locale in the wrong case is still meant: check the rest
			// of the skill with it, so that one mistake is one message.
			if fixed := caseFix(l); fixed != "" && !seen[fixed] {
				seen[fixed] = true
				ok = append(ok, fixed)
			}
			continue
		}
		if seen[l] {
			ck.errf(lp, "%s is listed twice", l)
			continue
		}
		seen[l] = true
		ok = append(ok, l)
	}
	if len(ok) == 0 {
		ok = []string{DefaultLocale}
	}
	sk.Locales = ok
	ck.skillLocales = ok
}

// localeProblem says why l is not an Alexa locale, or returns "".
func localeProblem(l string) string {
	if slices.Contains(AlexaLocales, l) {
		return ""
	}
	if a := caseFix(l); a != "" {
		return fmt.Sprintf("%q is not an Alexa locale: write %s", l, a)
	}
	msg := fmt.Sprintf("%q is not an Alexa locale (%s)", l, strings.Join(AlexaLocales, ", "))
	if near := closest(l, AlexaLocales); near != "" {
		msg = fmt.Sprintf("%q is not an Alexa locale; did you mean %s?", l, near)
	}
	return msg
}

// caseFix returns the Alexa locale that l spells in another case or
// with an underscore, or "".
func caseFix(l string) string {
	for _, a := range AlexaLocales {
		if strings.EqualFold(strings.ReplaceAll(l, "_", "-"), a) {
			return a
		}
	}
	return ""
}

// localized checks the locales of a value given per locale: inside a
// skill, every locale of the skill and no other; in the gateway-wide
// sections, Alexa locales. It returns the locales to compile, in order:
// nil for a plain value.
func localized[T any](ck *checker, path string, l Localized[T]) []string {
	if !l.PerLocale() {
		return nil
	}
	var keys []string
	for _, k := range l.Order {
		kp := path + "." + k
		switch {
		case ck.skillLocales != nil && !slices.Contains(ck.skillLocales, k):
			if msg := localeProblem(k); msg != "" {
				ck.errAtKey(kp, "%s", msg)
			} else {
				ck.errAtKey(kp, "%s is not a locale of skill %s (its locales: %s): add it to locales: or remove this text", k, ck.skillName, strings.Join(ck.skillLocales, ", "))
			}
			continue
		case ck.skillLocales == nil:
			if msg := localeProblem(k); msg != "" {
				ck.errAtKey(kp, "%s", msg)
				continue
			}
		}
		keys = append(keys, k)
	}
	var missing []string
	for _, want := range ck.skillLocales {
		if _, ok := l.ByLocale[want]; !ok {
			missing = append(missing, want)
		}
	}
	if len(missing) > 0 {
		ck.errAtKey(path, "no %s translation: a text given per locale needs every locale of skill %s (%s)",
			strings.Join(missing, ", "), ck.skillName, strings.Join(ck.skillLocales, ", "))
	}
	return keys
}

// errAtKey records an error at path's key, so that a problem with a whole
// mapping points at its name.
func (ck *checker) errAtKey(path, format string, args ...any) {
	l, c := ck.idx.keyPos(path)
	ck.add(&Problem{Line: l, Col: c, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// Matches reports whether spoken is the value or a synonym of tv in
// locale, ignoring case, as Alexa's entity resolution matches it.
func (tv *TypeValue) Matches(locale, spoken string) bool {
	if tv == nil || spoken == "" {
		return false
	}
	if strings.EqualFold(tv.Value.In(locale), spoken) {
		return true
	}
	return slices.ContainsFunc(tv.Synonyms.In(locale), func(syn string) bool { return strings.EqualFold(syn, spoken) })
}
