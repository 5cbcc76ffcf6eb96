package config

import (
	"fmt"
	"strconv"
	"strings"
)

// SyntaxProblem turns a yaml.v3 syntax error in data into a problem at the
// offending token: a tab is named as a tab, and a line whose indentation
// breaks the structure is named as an indentation error at that line (the
// parser itself reports where the broken block starts, often many lines
// earlier).
func SyntaxProblem(file string, data []byte, err error) *Problem {
	p := syntaxProblem(file, err)
	lines := strings.Split(string(data), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\r")
	}
	diagnose(p, lines)
	p.Line, p.Col = max(p.Line, 1), max(p.Col, 1)
	if p.Line >= 1 && p.Line <= len(lines) && p.Col == 1 {
		if line := lines[p.Line-1]; strings.TrimSpace(line) != "" {
			p.Col = len(line) - len(strings.TrimLeft(line, " ")) + 1
		}
	}
	return p
}

// diagnose replaces yaml.v3's message with a plainer one at the token that
// causes it, when the text shows what that is.
func diagnose(p *Problem, lines []string) {
	// A tab in the indentation breaks YAML wherever it is.
	tabby := strings.Contains(p.Msg, "tab") || strings.Contains(p.Msg, "cannot start any token")
	for n, l := range lines {
		if !tabby && n > p.Line && p.Line > 0 {
			break
		}
		indent := l[:len(l)-len(strings.TrimLeft(l, " \t"))]
		if i := strings.IndexByte(indent, '\t'); i >= 0 && strings.TrimSpace(l) != "" {
			p.Line, p.Col, p.Path = n+1, i+1, guessPath(lines, n)
			p.Msg = "a tab indents this line: YAML indents with spaces only; replace the tab with spaces"
			return
		}
	}
	if strings.HasPrefix(p.Msg, "found character that cannot start any token") && p.Line >= 1 && p.Line <= len(lines) {
		if i := strings.IndexByte(lines[p.Line-1], '\t'); i >= 0 {
			p.Col = i + 1
			p.Msg = "a tab character: YAML allows no tabs here; use spaces"
			return
		}
	}
	switch {
	case strings.HasPrefix(p.Msg, "did not find expected key") && strayQuoteAt(p, lines):
		return
	case strings.HasPrefix(p.Msg, "did not find expected key"),
		strings.HasPrefix(p.Msg, "did not find expected '-' indicator"),
		strings.HasPrefix(p.Msg, "mapping values are not allowed"),
		strings.HasPrefix(p.Msg, "block sequence entries are not allowed"),
		strings.HasPrefix(p.Msg, "could not find expected ':'"):
		if b, ok := indentBreak(lines); ok && b.line >= p.Line-1 {
			p.Line, p.Col, p.Path, p.Msg = b.line, b.col, b.path, b.msg
			return
		}
	case strings.HasPrefix(p.Msg, "did not find expected node content"),
		strings.HasPrefix(p.Msg, "did not find expected ',' or"):
		if l, c, open, ok := unclosedFlow(lines); ok {
			p.Line, p.Col, p.Path = l, c, guessPath(lines, l-1)
			p.Msg = fmt.Sprintf("unclosed %c: add the closing %c (in a [ ] or { } list, quote text that contains \": \", \" #\" or \"${\")", open, closer(open))
			return
		}
	case strings.HasPrefix(p.Msg, "found unexpected end of stream"):
		if l, c, q, ok := unclosedQuote(lines); ok {
			p.Line, p.Col, p.Path = l, c, guessPath(lines, l-1)
			p.Msg = fmt.Sprintf("unclosed quote: add the closing %c", q)
			return
		}
	}
	if strings.HasPrefix(p.Msg, "mapping values are not allowed") {
		// "key: a: b" on one line.
		for n := max(p.Line, 1) - 1; n < len(lines); n++ {
			k, v, ok := splitKey(strings.TrimSpace(stripComment(lines[n])))
			if !ok || v == "" || v[0] == '"' || v[0] == '\'' || v[0] == '[' || v[0] == '{' {
				continue
			}
			if j := strings.Index(v, ": "); j >= 0 || strings.HasSuffix(v, ":") {
				col := strings.Index(lines[n], v) + 1
				p.Line, p.Col, p.Path = n+1, col, guessPath(lines, n)
				p.Msg = fmt.Sprintf("the value of %s contains \": \", which YAML reads as a new key: quote the value, e.g. %s: %q", k, k, v)
				return
			}
		}
	}
	if strings.HasPrefix(p.Msg, "could not find expected ':'") && p.Line >= 1 && p.Line <= len(lines) {
		p.Msg = "this line is neither a key (name: value) nor a list item (- value): add the colon, or indent it under the key whose value it continues"
		return
	}
	// Plainer words for what is left.
	for prefix, plain := range plainYAML {
		if strings.HasPrefix(p.Msg, prefix) {
			p.Msg = plain
			return
		}
	}
}

// plainYAML rewords yaml.v3 messages that no diagnosis above placed.
var plainYAML = map[string]string{
	"did not find expected key":                      "the block structure breaks here: keys of one mapping must line up, with spaces (check the indentation of the lines that follow)",
	"did not find expected '-' indicator":            "a list item (\"- …\") is due here: items of one list must line up (check the indentation of the lines that follow)",
	"mapping values are not allowed in this context": "unexpected \": \": quote a value that contains a colon, or fix the indentation",
	"block sequence entries are not allowed":         "a list item (\"- …\") cannot start here: put it on its own line under its key",
	"found unexpected end of stream":                 "the file ends inside a quoted value or a [ ] or { } list: close it",
	"did not find expected node content":             "a value is missing here",
}

// guessPath is the key path the key on line n (0-based) most likely has:
// a child of the line above when that one opens a block, else its sibling.
func guessPath(lines []string, n int) string {
	content := strings.TrimLeft(lines[n], " \t")
	key, _, ok := splitKey(strings.TrimPrefix(content, "- "))
	if !ok {
		return ""
	}
	paths := keyPaths(lines[:n])
	for i := n - 1; i >= 0; i-- {
		prev, ok := paths[i]
		if !ok {
			continue
		}
		_, v, _ := splitKey(strings.TrimSpace(stripComment(strings.TrimPrefix(strings.TrimLeft(lines[i], " "), "- "))))
		if v == "" {
			return prev + "." + key
		}
		if j := strings.LastIndexByte(prev, '.'); j >= 0 {
			return prev[:j] + "." + key
		}
		return key
	}
	return key
}

// keyPaths gives the key path of each key line, for lines indented with
// spaces (list items count as [i]).
func keyPaths(lines []string) map[int]string {
	type open struct {
		indent int
		path   string
		items  int
	}
	out := map[int]string{}
	var stack []*open
	for n, l := range lines {
		content := strings.TrimLeft(l, " ")
		if content == "" || content[0] == '#' || strings.HasPrefix(content, "\t") {
			continue
		}
		indent := len(l) - len(content)
		for len(stack) > 0 && stack[len(stack)-1].indent > indent {
			stack = stack[:len(stack)-1]
		}
		parent := ""
		if len(stack) > 0 {
			parent = stack[len(stack)-1].path
		}
		if strings.HasPrefix(content, "- ") || content == "-" {
			if len(stack) > 0 && stack[len(stack)-1].indent == indent {
				stack[len(stack)-1].items++
			} else {
				stack = append(stack, &open{indent: indent, path: parent, items: 1})
			}
			item := fmt.Sprintf("%s[%d]", stack[len(stack)-1].path, stack[len(stack)-1].items-1)
			inner := strings.TrimLeft(content[1:], " ")
			if key, _, ok := splitKey(inner); ok {
				innerIndent := indent + len(content) - len(inner)
				out[n] = join(item, key)
				stack = append(stack, &open{indent: innerIndent, path: item})
			}
			continue
		}
		key, _, ok := splitKey(stripComment(content))
		if !ok {
			continue
		}
		if len(stack) > 0 && stack[len(stack)-1].indent == indent {
			stack = stack[:len(stack)-1]
			if len(stack) > 0 {
				parent = stack[len(stack)-1].path
			} else {
				parent = ""
			}
		}
		out[n] = join(parent, key)
		stack = append(stack, &open{indent: indent, path: out[n]})
	}
	return out
}

// indentation is a line whose indentation breaks the block structure.
type indentation struct {
	line, col int
	path, msg string
}

// level is one open block: a mapping or a list at an indentation.
type level struct {
	indent int
	seq    bool
	// compact marks a list at the same indentation as its key.
	compact bool
	// key is the last key of a mapping level, line where it is.
	key  string
	line int
	// items counts the entries of a list level.
	items int
}

// indentBreak finds the first line whose indentation matches no open
// block, or that starts a key where a list item is due (or the reverse).
func indentBreak(lines []string) (indentation, bool) {
	var stack []*level
	var prevOpens, prevValue bool
	prevKey, prevLine, prevIndent := "", 0, 0
	// bare is the last line when it is a scalar with no key: fine as a
	// value, wrong when a key follows at its indentation.
	type bareLine struct {
		line, indent int
		text         string
	}
	var bare *bareLine
	// lastList is the list a dedent just closed, to name it when a stray
	// item follows.
	var lastList *level
	skipDeeper := -1 // block scalar: skip lines indented deeper than this
	flowDepth := 0
	path := func(upto int, key string) string {
		upto = min(max(upto, 0), len(stack))
		var parts []string
		for _, l := range stack[:upto] {
			if l.seq {
				if len(parts) > 0 {
					parts[len(parts)-1] += fmt.Sprintf("[%d]", max(l.items-1, 0))
				}
				continue
			}
			parts = append(parts, l.key)
		}
		if key != "" {
			parts = append(parts, key)
		}
		return strings.Join(parts, ".")
	}
	for n, raw := range lines {
		text := strings.TrimRight(raw, " ")
		content := strings.TrimLeft(text, " ")
		indent := len(text) - len(content)
		if flowDepth > 0 {
			flowDepth += bracketDepth(stripComment(content))
			continue
		}
		if content == "" || content[0] == '#' {
			continue
		}
		if skipDeeper >= 0 {
			if indent > skipDeeper {
				continue
			}
			skipDeeper = -1
		}
		if content == "---" || content == "..." || strings.HasPrefix(content, "%") {
			stack, prevOpens = nil, false
			continue
		}
		content = stripComment(content)
		isItem := content == "-" || strings.HasPrefix(content, "- ")
		inner, innerIndent := content, indent
		if isItem {
			inner = strings.TrimLeft(strings.TrimPrefix(content, "-"), " ")
			innerIndent = indent + len(content) - len(inner)
		}
		key, value, isKey := splitKey(inner)
		fail := func(msg string, args ...any) (indentation, bool) {
			return indentation{line: n + 1, col: indent + 1, msg: "indentation: " + fmt.Sprintf(msg, args...)}, true
		}
		if len(stack) > 0 {
			top := stack[len(stack)-1]
			switch {
			case indent > top.indent:
				if !prevOpens {
					if bare != nil && isKey {
						return indentation{line: bare.line, col: bare.indent + 1, path: path(len(stack)-1, bareKey(bare.text)), msg: notAKey(bare.text)}, true
					}
					if isKey && prevValue {
						b, _ := fail("%s is indented deeper than %s (line %d), whose value is already given: line it up with %s (%d spaces)", key, prevKey, prevLine, prevKey, prevIndent)
						b.path = path(len(stack)-1, key)
						return b, true
					}
					// a plain scalar continued on the next line
					continue
				}
				stack = append(stack, &level{indent: indent, seq: isItem})
			case indent < top.indent:
				var deeper *level
				for len(stack) > 0 && stack[len(stack)-1].indent > indent {
					deeper = stack[len(stack)-1]
					if deeper.seq {
						lastList = deeper
					}
					stack = stack[:len(stack)-1]
				}
				if len(stack) == 0 || stack[len(stack)-1].indent != indent {
					outer := "the top level"
					if len(stack) > 0 {
						o := stack[len(stack)-1]
						outer = fmt.Sprintf("%d (like %s on line %d)", o.indent, describe(o), o.line)
					}
					what := "this line"
					if isKey {
						what = key
					}
					b, _ := fail("%s is indented %d spaces, which matches no block around it: indent it %d spaces (like %s on line %d) or %s",
						what, indent, deeper.indent, describe(deeper), deeper.line, outer)
					stack = append(stack, deeper)
					if isKey && deeper.seq {
						b.path = path(len(stack)-2, key)
					} else if isKey {
						b.path = path(len(stack)-1, key)
					}
					return b, true
				}
			}
			top = stack[len(stack)-1]
			if top.seq && !isItem {
				if top.compact {
					stack = stack[:len(stack)-1]
					top = stack[len(stack)-1]
				} else {
					what := "this line"
					if isKey {
						what = key
					}
					b, _ := fail("%s is at the indentation of the list items above it (line %d): indent the list under its key, or make this a list item with \"- \"", what, top.line)
					b.path = path(len(stack)-1, "")
					return b, true
				}
			}
			if bare != nil && isKey && indent == bare.indent {
				return indentation{line: bare.line, col: bare.indent + 1, path: path(len(stack)-1, bareKey(bare.text)), msg: notAKey(bare.text)}, true
			}
			if !top.seq && !isItem && !isKey && top.line > 0 {
				return indentation{line: n + 1, col: indent + 1, path: path(len(stack)-1, bareKey(inner)), msg: notAKey(inner)}, true
			}
			if !top.seq && isItem {
				switch {
				case prevOpens && prevIndent == indent:
					stack = append(stack, &level{indent: indent, seq: true, compact: true})
				case lastList != nil && lastList.indent > indent:
					b, _ := fail("this list item is indented %d spaces, less than the items above it (%d spaces, line %d): line it up with them", indent, lastList.indent, lastList.line)
					b.path = path(len(stack), "")
					return b, true
				default:
					return fail("a list item at the indentation of the keys around it (%s on line %d): indent it under the key it belongs to", describe(top), top.line)
				}
			}
		} else {
			stack = append(stack, &level{indent: indent, seq: isItem})
		}
		bare, lastList = nil, nil
		if !isKey && !isItem {
			bare = &bareLine{line: n + 1, indent: indent, text: inner}
		}
		top := stack[len(stack)-1]
		top.line = n + 1
		if isItem {
			top.items++
			if isKey {
				stack = append(stack, &level{indent: innerIndent, key: key, line: n + 1})
			}
		} else if isKey {
			top.key = key
		}
		prevLine, prevIndent, prevKey = n+1, innerIndent, key
		switch {
		case isKey:
			prevOpens = value == "" || value[0] == '&' || value[0] == '!'
			prevValue = !prevOpens
		case isItem:
			prevOpens = inner == ""
			prevValue = !prevOpens
		default:
			prevOpens, prevValue = false, true
		}
		if isItem && inner != "" && !isKey {
			value = inner
		}
		switch {
		case strings.HasPrefix(value, "|") || strings.HasPrefix(value, ">"):
			skipDeeper = innerIndent
			if !isKey {
				skipDeeper = indent
			}
			prevOpens, prevValue = false, true
		case strings.HasPrefix(value, "[") || strings.HasPrefix(value, "{"):
			flowDepth = bracketDepth(value)
		}
	}
	return indentation{}, false
}

func describe(l *level) string {
	if l.seq {
		return "the list item"
	}
	return l.key + ":"
}

// splitKey splits "key: value" (or "key:") at the colon that ends a key:
// the first one followed by a space or the end, outside quotes.
func splitKey(s string) (key, value string, ok bool) {
	if s == "" || s[0] == '[' || s[0] == '{' || s[0] == '|' || s[0] == '>' {
		return "", "", false
	}
	i := 0
	if s[0] == '"' || s[0] == '\'' {
		j := strings.IndexByte(s[1:], s[0])
		if j < 0 {
			return "", "", false
		}
		i = j + 2
	}
	for ; i < len(s); i++ {
		if s[i] == ':' && (i+1 == len(s) || s[i+1] == ' ') {
			k := strings.TrimSpace(s[:i])
			if uq, err := strconv.Unquote(k); err == nil {
				k = uq
			} else {
				k = strings.Trim(k, "'")
			}
			return k, strings.TrimSpace(s[i+1:]), true
		}
	}
	return "", "", false
}

// stripComment removes a trailing " #" comment outside quotes.
func stripComment(s string) string {
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else if c == '\\' && quote == '"' {
				i++
			}
		case c == '"' || c == '\'':
			if i == 0 || s[i-1] == ' ' || s[i-1] == '[' || s[i-1] == '{' || s[i-1] == ',' || s[i-1] == ':' {
				quote = c
			}
		case c == '#' && (i == 0 || s[i-1] == ' '):
			return strings.TrimRight(s[:i], " ")
		}
	}
	return s
}

// bracketDepth is the change of [ { nesting over s, outside quotes.
func bracketDepth(s string) int {
	d := 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '[' || c == '{':
			d++
		case c == ']' || c == '}':
			d--
		}
	}
	return d
}

// unclosedQuote finds a value that opens a quote and never closes it.
func unclosedQuote(lines []string) (line, col int, q byte, ok bool) {
	for n, l := range lines {
		content := strings.TrimLeft(l, " ")
		if content == "" || content[0] == '#' {
			continue
		}
		_, v, isKey := splitKey(strings.TrimPrefix(content, "- "))
		if !isKey || v == "" || (v[0] != '"' && v[0] != '\'') {
			continue
		}
		rest := v[1:]
		closed := false
		for i := 0; i < len(rest); i++ {
			if rest[i] == '\\' && v[0] == '"' {
				i++
				continue
			}
			if rest[i] == v[0] {
				closed = true
				break
			}
		}
		if !closed {
			return n + 1, strings.LastIndex(l, v) + 1, v[0], true
		}
	}
	return 0, 0, 0, false
}

// unclosedFlow finds a [ or { that is still open at the end of the file.
func unclosedFlow(lines []string) (line, col int, open byte, ok bool) {
	type pos struct {
		line, col int
		c         byte
	}
	var stack []pos
	for n, l := range lines {
		content := strings.TrimLeft(l, " ")
		if content == "" || content[0] == '#' {
			continue
		}
		if len(stack) == 0 {
			// Only values that start a flow collection open one.
			_, v, isKey := splitKey(strings.TrimPrefix(content, "- "))
			if !isKey {
				v = strings.TrimPrefix(content, "- ")
			}
			if v == "" || (v[0] != '[' && v[0] != '{') {
				continue
			}
		}
		s := stripComment(l)
		var quote byte
		for i := 0; i < len(s); i++ {
			c := s[i]
			switch {
			case quote != 0:
				if c == quote {
					quote = 0
				}
			case c == '"' || c == '\'':
				if len(stack) > 0 {
					quote = c
				}
			case c == '[' || c == '{':
				stack = append(stack, pos{n + 1, i + 1, c})
			case c == ']' || c == '}':
				if len(stack) > 0 {
					stack = stack[:len(stack)-1]
				}
			}
		}
	}
	if len(stack) == 0 {
		return 0, 0, 0, false
	}
	p := stack[0]
	return p.line, p.col, p.c, true
}

// bareKey is the key a line without "key: " most likely meant.
func bareKey(text string) string {
	if k, _, ok := strings.Cut(text, ":"); ok {
		return k
	}
	return text
}

// notAKey explains a line that is neither a key nor a list item.
func notAKey(text string) string {
	if k, v, ok := strings.Cut(text, ":"); ok && k != "" && v != "" && v[0] != ' ' {
		return fmt.Sprintf("%s is not a key: YAML needs a space after the colon (%s: %s)", text, k, v)
	}
	return fmt.Sprintf("%s is not a key: write it with a colon (%s:), or indent it under the key whose value it continues", text, text)
}

// strayQuote finds a quoted value followed by more text on its line, as
// in say: "He said "hi"": the quote ends early.
func strayQuote(lines []string) (line, col int, q byte, ok bool) {
	for n, l := range lines {
		content := strings.TrimLeft(l, " ")
		if content == "" || content[0] == '#' {
			continue
		}
		_, v, isKey := splitKey(strings.TrimPrefix(content, "- "))
		if !isKey || v == "" || (v[0] != '"' && v[0] != '\'') {
			continue
		}
		end := -1
		for i := 1; i < len(v); i++ {
			if v[0] == '"' && v[i] == '\\' {
				i++
				continue
			}
			if v[i] == v[0] {
				if v[0] == '\'' && i+1 < len(v) && v[i+1] == '\'' {
					i++
					continue
				}
				end = i
				break
			}
		}
		if end < 0 {
			continue
		}
		rest := strings.TrimSpace(v[end+1:])
		if rest != "" && rest[0] != '#' {
			return n + 1, strings.LastIndex(l, v) + end + 1, v[0], true
		}
	}
	return 0, 0, 0, false
}

// strayQuoteAt places p at a quote that ends its value early, when there
// is one at or after the line yaml.v3 names.
func strayQuoteAt(p *Problem, lines []string) bool {
	l, c, q, ok := strayQuote(lines)
	if !ok || l < p.Line-1 {
		return false
	}
	p.Line, p.Col, p.Path = l, c, guessPath(lines, l-1)
	if q == '"' {
		p.Msg = `this quote ends the value, and text follows it: write inner quotes as \" or quote the whole value with ' '`
	} else {
		p.Msg = `this quote ends the value, and text follows it: write an inner ' as '' or quote the whole value with " "`
	}
	return true
}
