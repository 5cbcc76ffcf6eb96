package config

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

// This file holds the rules of Amazon's interaction-model build that
// `check` applies, so that a model that passes `check` deploys (SPEC 8).
//
// Invocation names: "Invocation name requirements" in
// https://developer.amazon.com/en-US/docs/alexa/custom-skills/choose-the-invocation-name-for-a-custom-skill.html
// Sample utterances: "Rules for sample utterances" in
// https://developer.amazon.com/en-US/docs/alexa/interaction-model-design/best-practices-for-sample-utterances-and-custom-slot-type-values.html
// and https://developer.amazon.com/en-US/docs/alexa/custom-skills/create-intents-utterances-and-slots.html
// Built-in slot types: amazon_slot_types.go.

// invocationForbidden are words an invocation name must not contain:
// Alexa's wake words, the launch phrases a user says before the name, and
// the words "skill" and "app".
var invocationForbidden = map[string]string{
	"alexa":    "a wake word",
	"amazon":   "a wake word",
	"echo":     "a wake word",
	"computer": "a wake word",
	"ziggy":    "a wake word",
	"ask":      "a launch phrase (\"Alexa, ask …\")",
	"begin":    "a launch phrase (\"Alexa, begin …\")",
	"enable":   "a launch phrase (\"Alexa, enable …\")",
	"launch":   "a launch phrase (\"Alexa, launch …\")",
	"load":     "a launch phrase (\"Alexa, load …\")",
	"open":     "a launch phrase (\"Alexa, open …\")",
	"resume":   "a launch phrase (\"Alexa, resume …\")",
	"start":    "a launch phrase (\"Alexa, start …\")",
	"tell":     "a launch phrase (\"Alexa, tell …\")",
	"skill":    "not allowed in an invocation name",
	"app":      "not allowed in an invocation name",
}

// connectingWords may not start an invocation name: "Alexa, talk to my
// tasks" would hear "to my tasks" as a launch phrase and the rest.
var connectingWords = setOf("to", "from", "in", "using", "with", "about", "for", "that", "by", "if", "and", "whether")

// invocation checks an invocation name against Amazon's requirements.
func (ck *checker) invocation(path, name string) {
	if name == "" {
		return
	}
	if strings.TrimSpace(name) != name || strings.Contains(name, "  ") {
		ck.errf(path, "extra spaces: write %q", strings.Join(strings.Fields(name), " "))
	}
	lower := strings.ToLower(name)
	if lower != name {
		ck.errf(path, "Alexa invocation names are lower case: write %q", strings.Join(strings.Fields(lower), " "))
	}
	var digits, symbols []string
	for _, r := range name {
		switch {
		case unicode.IsDigit(r):
			digits = append(digits, string(r))
		case unicode.IsLetter(r), r == ' ', r == '\'', r == '.':
		default:
			symbols = append(symbols, fmt.Sprintf("%q", r))
		}
	}
	if len(digits) > 0 {
		ck.errf(path, "digits are not allowed in an invocation name: spell numbers out (%s)", spellDigits(name))
	}
	if len(symbols) > 0 {
		ck.errf(path, "%s not allowed in an invocation name: only letters, spaces, apostrophes (possessives) and periods (abbreviations like \"a. b. c.\")", plural(uniq(symbols), "is", "are"))
	}
	words := strings.FieldsFunc(lower, func(r rune) bool { return r == ' ' || r == '.' })
	for _, w := range words {
		w = strings.TrimSuffix(strings.TrimSuffix(w, "'s"), "'")
		if why, ok := invocationForbidden[w]; ok {
			ck.errf(path, "%q is %s: choose an invocation name without it", w, why)
		}
	}
	if len(words) > 0 && connectingWords[words[0]] {
		ck.errf(path, "an invocation name may not start with the connecting word %q: drop it", words[0])
	}
	if n := len([]rune(name)); n < 2 || n > 50 {
		ck.errf(path, "an invocation name has 2 to 50 characters, not %d", n)
	}
}

// spellDigits writes the numbers in s out in words, as Alexa hears them.
func spellDigits(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] < '0' || s[i] > '9' {
			b.WriteByte(s[i])
			i++
			continue
		}
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		b.WriteString(numberWords(s[i:j]))
		i = j
	}
	return fmt.Sprintf("%q", b.String())
}

var (
	smallNumbers = []string{"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
		"ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"}
	tens = []string{"", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"}
)

// numberWords spells a run of digits: as a number below ten thousand,
// else digit by digit.
func numberWords(d string) string {
	n, err := strconv.Atoi(d)
	if err != nil || n >= 10000 || len(d) > 1 && d[0] == '0' {
		words := make([]string, len(d))
		for i := range d {
			words[i] = smallNumbers[d[i]-'0']
		}
		return strings.Join(words, " ")
	}
	var parts []string
	if n >= 1000 {
		parts = append(parts, smallNumbers[n/1000], "thousand")
		n %= 1000
	}
	if n >= 100 {
		parts = append(parts, smallNumbers[n/100], "hundred")
		n %= 100
	}
	switch {
	case n >= 20 && n%10 != 0:
		parts = append(parts, tens[n/10]+"-"+smallNumbers[n%10])
	case n >= 20:
		parts = append(parts, tens[n/10])
	case n > 0 || len(parts) == 0:
		parts = append(parts, smallNumbers[n])
	}
	return strings.Join(parts, " ")
}

func uniq(list []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range list {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

func plural(items []string, one, many string) string {
	if len(items) == 1 {
		return items[0] + " " + one
	}
	return strings.Join(items, ", ") + " " + many
}

// sampleText checks one sample utterance's characters and braces, and
// that no slot appears twice in it.
func (ck *checker) sampleText(path, s string) {
	if strings.TrimSpace(s) == "" {
		ck.errf(path, "empty sample utterance")
		return
	}
	depth := 0
	var digits, symbols []string
	for _, r := range s {
		switch {
		case r == '{':
			if depth > 0 {
				ck.errf(path, "a { inside {…}: slot references do not nest")
				return
			}
			depth++
		case r == '}':
			if depth == 0 {
				ck.errf(path, "unbalanced }: a slot reference is written {Name}")
				return
			}
			depth--
		case depth > 0:
		case unicode.IsDigit(r):
			digits = append(digits, string(r))
		case unicode.IsLetter(r), unicode.IsSpace(r), r == '\'', r == '.', r == '-':
		default:
			symbols = append(symbols, fmt.Sprintf("%q", r))
		}
	}
	if depth > 0 {
		i := strings.LastIndex(s, "{")
		name := strings.FieldsFunc(s[i+1:], func(r rune) bool { return !isIdentRune(r) })
		fix := "{Name}"
		if len(name) > 0 {
			fix = "{" + name[0] + "}"
		}
		ck.errf(path, "unbalanced {: close the slot reference, e.g. %s", fix)
	}
	if len(digits) > 0 {
		ck.errf(path, "digits are not allowed in a sample utterance: spell numbers out (%s) or use an AMAZON.NUMBER slot", spellDigits(s))
	}
	if len(symbols) > 0 {
		ck.errf(path, "%s not allowed in a sample utterance: only letters, spaces, apostrophes, periods and hyphens; remove it", plural(uniq(symbols), "is", "are"))
	}
	seen := map[string]bool{}
	for _, m := range sampleRef.FindAllStringSubmatch(s, -1) {
		if m[1] != "" && seen[m[1]] {
			ck.errf(path, "{%s} appears twice: a slot can be used once per sample", m[1])
		}
		seen[m[1]] = true
	}
}

func isIdentRune(r rune) bool {
	return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r)
}

// sampleKey is how Amazon compares utterances: case and spacing aside.
func sampleKey(s string) string {
	return strings.Join(strings.Fields(strings.ToLower(s)), " ")
}

// builtinSlotType checks an AMAZON.* slot type against the built-in list.
func (ck *checker) builtinSlotType(path, typ string) {
	if builtinSlotTypes[typ] {
		return
	}
	names := sortedKeys(builtinSlotTypes)
	for _, n := range names {
		if strings.EqualFold(n, typ) {
			ck.errf(path, "no built-in slot type %s: names are case-sensitive, write %s", typ, n)
			return
		}
	}
	suffixes := make([]string, len(names))
	for i, n := range names {
		suffixes[i] = strings.TrimPrefix(n, "AMAZON.")
	}
	if near := closest(strings.TrimPrefix(typ, "AMAZON."), suffixes); near != "" {
		ck.errf(path, "no built-in slot type %s: did you mean AMAZON.%s?", typ, near)
		return
	}
	ck.errf(path, "no built-in slot type %s (see Amazon's slot type reference; custom types go under types:)", typ)
}
