package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

// This file checks extract paths against gjson's path syntax
// (https://github.com/tidwall/gjson/blob/master/SYNTAX.md) at load time, so
// that a path gjson cannot use is a `check` error instead of a value that
// is silently absent at run time. It also recognises the JSONPath habits
// ($., [0], [*], .., [?(...)]) a new author is most likely to bring, and
// names the gjson spelling.

// stockModifiers are gjson's built-in modifiers, for messages; whether a
// modifier exists is asked of gjson itself (gjson.ModifierExists), so a
// modifier added with gjson.AddModifier is accepted too.
var stockModifiers = []string{
	"reverse", "ugly", "pretty", "this", "valid", "flatten", "join",
	"keys", "values", "tostr", "fromstr", "group", "dig",
}

// checkGJSONPath returns "" when path is a gjson path voicegw accepts, else
// a message that says what is wrong and how to write it.
func checkGJSONPath(path string) string {
	if strings.TrimSpace(path) == "" {
		return "empty gjson path"
	}
	err := parseGJSONPath(path, true)
	if err == nil {
		return ""
	}
	msg := err.Error()
	if err.habit {
		if fixed, ok := fromJSONPath(path); ok && fixed != path {
			msg += "; write " + fixed
		}
	}
	return msg
}

// pathError is a problem in a gjson path; habit marks JSONPath syntax.
type pathError struct {
	msg   string
	habit bool
}

func (e *pathError) Error() string { return e.msg }

func perr(format string, args ...any) *pathError {
	return &pathError{msg: fmt.Sprintf(format, args...)}
}

func habit(format string, args ...any) *pathError {
	return &pathError{msg: fmt.Sprintf(format, args...), habit: true}
}

const recursiveDescent = `".." (JSONPath's recursive descent) is not gjson: name each level (.#. for every element of an array), or search any depth with @dig:NAME`

// parseGJSONPath parses a whole path: components separated by . or |.
// top is false inside queries and multipaths, where the JSON Lines prefix
// ".." has no meaning.
func parseGJSONPath(s string, top bool) *pathError {
	if s == "" {
		return perr("empty gjson path")
	}
	i := 0
	if s == "$" || strings.HasPrefix(s, "$.") || strings.HasPrefix(s, "$[") {
		return habit(`"$" is JSONPath: a gjson path starts at the root without it`)
	}
	if top && len(s) > 1 && s[0] == '.' && s[1] != '.' {
		return habit("a gjson path has no leading dot")
	}
	if strings.HasPrefix(s, "..") {
		if !top {
			return habit("%s", recursiveDescent)
		}
		// JSON Lines: ..# , ..0 , ..#.name
		i = 2
		if i == len(s) {
			return perr(`".." (JSON Lines) needs a path after it, e.g. ..# or ..0.name`)
		}
	}
	for {
		next, err := component(s, i)
		if err != nil {
			return err
		}
		i = next
		if i == len(s) {
			return nil
		}
		switch s[i] {
		case '.', '|':
			if i+1 == len(s) {
				return perr("the path ends with %c: remove it or name the field after it", s[i])
			}
			if s[i] == '.' && s[i+1] == '.' {
				return habit("%s", recursiveDescent)
			}
			if s[i+1] == '.' || s[i+1] == '|' {
				return perr("empty path component at %s", s[i:i+2])
			}
			i++
		default:
			return perr("unexpected %c after %s: separate path components with . or |", s[i], s[:i])
		}
	}
}

// component parses one path component starting at s[i] and returns the
// index after it.
func component(s string, i int) (int, *pathError) {
	switch c := s[i]; {
	case c == '@':
		return modifier(s, i)
	case c == '!':
		return literal(s, i)
	case c == '[' || c == '{':
		return multipath(s, i)
	case c == '#':
		if i+1 < len(s) && (s[i+1] == '(' || s[i+1] == '[') {
			return query(s, i)
		}
		return i + 1, nil
	}
	return key(s, i)
}

// key parses an object key or array index with \ escapes and the * and ?
// wildcards.
func key(s string, i int) (int, *pathError) {
	start := i
	for ; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			if i+1 == len(s) {
				return 0, perr(`the path ends with a lone \: escape a character after it, e.g. fav\.movie`)
			}
			i++
		case '.', '|':
			return i, nil
		case '[':
			if j := matchClose(s, i); j > 0 {
				if e := jsonPathBracket(s[i:j+1], s[i+1:j]); e != nil {
					return 0, e
				}
			}
			return 0, perr(`unexpected [ in %s: a multipath [a,b] starts a component, and a literal [ in a key is written \[`, s[start:])
		case ']', '(', ')', '{', '}':
			return 0, perr("unexpected %c in %s: a literal %c in a key is written \\%c", c, s[start:], c, c)
		}
	}
	return i, nil
}

// jsonPathBracket returns the hint for br, a bracket written as JSONPath
// would write it (inner is its content), or nil when it is none.
func jsonPathBracket(br, inner string) *pathError {
	switch {
	case inner == "*":
		return habit(`"[*]" is JSONPath: gjson takes a field of every element with .#.`)
	case isIndex(inner):
		return habit(`"%s" is JSONPath: gjson indexes arrays with .%s`, br, inner)
	case strings.HasPrefix(inner, "?"):
		return habit(`"%s" is a JSONPath filter: gjson queries arrays with #(field=="value")`, br)
	case len(inner) >= 2 && (inner[0] == '\'' || inner[0] == '"') && inner[len(inner)-1] == inner[0]:
		return habit(`"%s" is JSONPath: gjson names a field with .name (escape a dot in it as \.)`, br)
	}
	return nil
}

func isIndex(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// modifier parses @name or @name:arg.
func modifier(s string, i int) (int, *pathError) {
	j := i + 1
	for j < len(s) && s[j] != '.' && s[j] != '|' && s[j] != ':' {
		j++
	}
	name := s[i+1 : j]
	if name == "" {
		return 0, perr(`"@" needs a modifier name, e.g. @reverse`)
	}
	if !gjson.ModifierExists(name, nil) {
		msg := fmt.Sprintf("unknown gjson modifier @%s", name)
		if near := closest(name, stockModifiers); near != "" {
			msg += fmt.Sprintf(" (did you mean @%s?)", near)
		} else {
			msg += " (gjson has @" + strings.Join(stockModifiers, ", @") + ")"
		}
		msg += fmt.Sprintf("; a key that starts with @ is written \\@%s", name)
		return 0, perr("%s", msg)
	}
	if j == len(s) || s[j] != ':' {
		return j, nil
	}
	j++
	if j == len(s) {
		return 0, perr("@%s: needs an argument after the colon, or no colon", name)
	}
	switch s[j] {
	case '{', '[', '"':
		end, err := value(s, j)
		if err != nil {
			return 0, err
		}
		return end, nil
	}
	// A plain argument runs to the next | (gjson's rule), with brackets
	// and quotes balanced.
	for j < len(s) && s[j] != '|' {
		switch s[j] {
		case '{', '[', '(', '"':
			end, err := value(s, j)
			if err != nil {
				return 0, err
			}
			j = end
			continue
		case ']', ')', '}':
			return 0, perr("unbalanced %c in the argument of @%s", s[j], name)
		}
		j++
	}
	return j, nil
}

// literal parses a JSON literal: !true, !"text", !{"a":1}, !42.
func literal(s string, i int) (int, *pathError) {
	j := i + 1
	if j == len(s) {
		return 0, perr(`"!" needs a JSON literal after it, e.g. !true or !"text"`)
	}
	switch c := s[j]; {
	case c == '{' || c == '[' || c == '"':
		return value(s, j)
	case c == '-' || c == '+' || (c >= '0' && c <= '9'):
		k := j
		for k < len(s) && s[k] != '.' && s[k] != '|' && s[k] != ',' && s[k] != ']' && s[k] != '}' {
			k++
		}
		// a number may hold a dot: take the longest prefix that parses
		for e := len(s); e > j; e-- {
			if _, err := strconv.ParseFloat(s[j:e], 64); err == nil {
				return e, nil
			}
		}
		return 0, perr("invalid JSON literal %s", s[i:k])
	}
	k := j
	for k < len(s) && s[k] != '.' && s[k] != '|' {
		k++
	}
	switch strings.ToLower(s[j:k]) {
	case "true", "false", "null", "nan", "inf":
		return k, nil
	}
	return 0, perr(`invalid JSON literal %s (use !true, !false, !null, a number or a quoted string)`, s[i:k])
}

// value scans a bracketed or quoted JSON-like value at s[i] and returns
// the index after it.
func value(s string, i int) (int, *pathError) {
	if s[i] == '"' {
		j := closeQuote(s, i)
		if j < 0 {
			return 0, perr(`unbalanced quote in %s: add the closing "`, s[i:])
		}
		return j + 1, nil
	}
	j := matchClose(s, i)
	if j < 0 {
		return 0, unbalanced(s, i, i)
	}
	return j + 1, nil
}

// multipath parses [path,path] or {path,"name":path}.
func multipath(s string, i int) (int, *pathError) {
	j := matchClose(s, i)
	if j < 0 {
		return 0, unbalanced(s, i, i)
	}
	inner := s[i+1 : j]
	// [*], [0], ['name'] and [?(…)] are JSONPath, not multipaths; in
	// braces only * and ? can be.
	if s[i] == '[' || inner == "*" || strings.HasPrefix(inner, "?") {
		if e := jsonPathBracket(s[i:j+1], inner); e != nil {
			return 0, e
		}
	}
	for _, sel := range splitTop(inner, ',') {
		sel = strings.TrimSpace(sel)
		if sel == "" {
			return 0, perr("empty path in the multipath %s", s[i:j+1])
		}
		if s[i] == '{' {
			if name, rest, ok := selectorName(sel); ok {
				if name == "" {
					return 0, perr("empty key name in the multipath %s", s[i:j+1])
				}
				sel = strings.TrimSpace(rest)
				if sel == "" {
					return 0, perr("no path after %s in the multipath %s", name+":", s[i:j+1])
				}
			}
		}
		if err := parseGJSONPath(sel, false); err != nil {
			return 0, err
		}
	}
	return j + 1, nil
}

// selectorName splits "name":path or name:path inside {...}: the colon is
// the first one outside quotes and brackets that does not follow a
// modifier name.
func selectorName(sel string) (name, rest string, ok bool) {
	if sel[0] == '"' {
		j := closeQuote(sel, 0)
		if j > 0 && j+1 < len(sel) && sel[j+1] == ':' {
			return sel[1:j], sel[j+2:], true
		}
		return "", "", false
	}
	for i := 0; i < len(sel); i++ {
		switch sel[i] {
		case '\\':
			i++
		case '@', '[', '{', '(', '"', '!':
			return "", "", false
		case ':':
			return sel[:i], sel[i+1:], true
		}
	}
	return "", "", false
}

// query parses #(...) or #(...)# (and the older #[...]).
func query(s string, i int) (int, *pathError) {
	open := i + 1
	j := matchClose(s, open)
	if j < 0 {
		return 0, unbalanced(s, i, open)
	}
	inner := strings.TrimSpace(s[open+1 : j])
	if inner == "" {
		return 0, perr(`empty query %s: write a condition, e.g. #(id=="r1")`, s[i:j+1])
	}
	if strings.HasPrefix(inner, "?") || strings.HasPrefix(inner, "@") {
		return 0, habit(`%s holds a JSONPath filter: gjson queries are written #(field=="value")`, s[i:j+1])
	}
	left, op, right := splitQuery(inner)
	if left != "" {
		if err := parseGJSONPath(left, false); err != nil {
			return 0, err
		}
	}
	if op != "" || right != "" {
		switch op {
		case "==", "=", "!=", "<", "<=", ">", ">=", "%", "!%":
		default:
			return 0, perr(`unknown query operator in %s (use ==, !=, <, <=, >, >=, %% or !%%)`, s[i:j+1])
		}
		if err := queryValue(s[i:j+1], op, right); err != nil {
			return 0, err
		}
	}
	end := j + 1
	if end < len(s) && s[end] == '#' {
		end++
	}
	return end, nil
}

// splitQuery splits a query body at its first operator outside quotes
// and brackets, as gjson does.
func splitQuery(q string) (left, op, right string) {
	depth := 0
	for i := 0; i < len(q); i++ {
		switch c := q[i]; c {
		case '\\':
			i++
		case '"':
			if j := closeQuote(q, i); j > 0 {
				i = j
			} else {
				i = len(q)
			}
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			depth--
		case '!', '=', '<', '>', '%':
			if depth != 0 {
				continue
			}
			rest := q[i:]
			n := 1
			if len(rest) > 1 && (rest[:2] == "==" || rest[:2] == "!=" || rest[:2] == "<=" || rest[:2] == ">=" || rest[:2] == "!%") {
				n = 2
			}
			op = rest[:n]
			return strings.TrimSpace(q[:i]), op, strings.TrimSpace(q[i+n:])
		}
	}
	return strings.TrimSpace(q), "", ""
}

var numberRe = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$`)

func queryValue(q, op, v string) *pathError {
	switch {
	case v == "":
		return perr(`the query %s has no value after %s: write e.g. #(id=="r1")`, q, op)
	case v[0] == '"':
		j := closeQuote(v, 0)
		if j < 0 {
			return perr(`unbalanced quote in the query %s: add the closing "`, q)
		}
		if j != len(v)-1 {
			return perr("unexpected %s after the quoted value in the query %s", v[j+1:], q)
		}
		return nil
	case v[0] == '\'':
		return habit(`the query %s quotes with ': gjson strings use double quotes, e.g. #(id=="r1")`, q)
	case v == "~true" || v == "~false" || v == "~null" || v == "~*":
		return nil
	case v[0] == '~':
		return perr(`unknown query operator in %s: gjson has no regular expressions (match patterns with %%"D*"; ~true, ~false, ~null and ~* test truth)`, q)
	case v == "true" || v == "false" || v == "null" || numberRe.MatchString(v):
		return nil
	case op == "%" || op == "!%":
		return perr(`the pattern in the query %s must be quoted, e.g. %%"D*"`, q)
	}
	return perr(`the value %s in the query %s must be quoted as "%s"`, v, q, v)
}

// matchClose returns the index of the bracket closing the one at s[i],
// skipping quoted strings and escaped characters, or -1.
func matchClose(s string, i int) int {
	var stack []byte
	for j := i; j < len(s); j++ {
		switch c := s[j]; c {
		case '\\':
			j++
		case '"':
			k := closeQuote(s, j)
			if k < 0 {
				return -1
			}
			j = k
		case '(', '[', '{':
			stack = append(stack, closer(c))
		case ')', ']', '}':
			if len(stack) == 0 || stack[len(stack)-1] != c {
				return -1
			}
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return j
			}
		}
	}
	return -1
}

func closer(c byte) byte {
	switch c {
	case '(':
		return ')'
	case '[':
		return ']'
	}
	return '}'
}

// closeQuote returns the index of the quote closing the one at s[i], or -1.
func closeQuote(s string, i int) int {
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case '"':
			return j
		}
	}
	return -1
}

// unbalanced explains why the bracket at s[i] has no match.
func unbalanced(s string, from, i int) *pathError {
	// An unterminated string inside is the likelier cause.
	for j := i + 1; j < len(s); j++ {
		if s[j] == '\\' {
			j++
			continue
		}
		if s[j] == '"' {
			k := closeQuote(s, j)
			if k < 0 {
				return perr(`unbalanced quote in %s: add the closing "`, s[from:])
			}
			j = k
		}
	}
	return perr("unbalanced %c in %s: add the closing %c", s[i], s[from:], closer(s[i]))
}

// splitTop splits s at sep outside quotes and brackets.
func splitTop(s string, sep byte) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			i++
		case '"':
			if j := closeQuote(s, i); j > 0 {
				i = j
			}
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			depth--
		case sep:
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

var (
	jpRoot    = regexp.MustCompile(`^\$\.?`)
	jpSingle  = regexp.MustCompile(`(#\([^)']*?(?:==|!=|<=|>=|<|>|=|%))\s*'([^']*)'`)
	jpDescent = regexp.MustCompile(`^\$\.\.([A-Za-z0-9_]+)$`)
	jpIndex   = regexp.MustCompile(`\.?\[(\d+|\*)\]`)
	jpName    = regexp.MustCompile(`\.?\[\s*['"]([^'"]*)['"]\s*\]`)
	jpFilter  = regexp.MustCompile(`\.?\[\?\(\s*@\.([A-Za-z0-9_]+)\s*(==|!=|<=|>=|<|>)\s*['"]?([^'")]*)['"]?\s*\)\]`)
)

// fromJSONPath rewrites a JSONPath expression in gjson syntax, when the
// result is a valid gjson path.
func fromJSONPath(p string) (string, bool) {
	s := p
	if m := jpDescent.FindStringSubmatch(s); m != nil {
		return "@dig:" + m[1], true
	}
	s = jpRoot.ReplaceAllString(s, "")
	s = jpSingle.ReplaceAllString(s, `$1"$2"`)
	s = jpFilter.ReplaceAllStringFunc(s, func(m string) string {
		g := jpFilter.FindStringSubmatch(m)
		v := g[3]
		if !numberRe.MatchString(v) && v != "true" && v != "false" && v != "null" {
			v = strconv.Quote(v)
		}
		op := g[2]
		return ".#(" + g[1] + op + v + ")#"
	})
	s = jpName.ReplaceAllStringFunc(s, func(m string) string {
		name := jpName.FindStringSubmatch(m)[1]
		return "." + strings.ReplaceAll(name, ".", `\.`)
	})
	s = jpIndex.ReplaceAllStringFunc(s, func(m string) string {
		if strings.HasSuffix(m, "[*]") {
			return ".#"
		}
		return "." + strings.Trim(m, ".[]")
	})
	for strings.Contains(s, "..") {
		s = strings.Replace(s, "..", ".#.", 1)
	}
	s = strings.TrimPrefix(s, ".")
	if s == "" || parseGJSONPath(s, false) != nil {
		return "", false
	}
	return s, true
}
