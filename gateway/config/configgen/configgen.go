// Package configgen writes synthetic configurations of any size, for the
// benchmarks and size tests of configuration loading: N intents, each
// with two samples, a required slot with a prompt, one call with path and
// query templates, two extracts, say and one error template.
package configgen

import (
	"fmt"
	"strings"
)

// Intents returns a configuration with n intents in one skill.
func Intents(n int) []byte {
	var b strings.Builder
	b.WriteString(`version: 1
server:
  public_url: https://voice.example.com
alexa:
  verify: true
services:
  api:
    base_url: https://api.example.com
    timeout: 2s
skills:
  big:
    application_id: amzn1.ask.skill.big
    invocation: big helper
    types:
      ITEM:
        - { value: apple, synonyms: [apples] }
        - { value: pear }
    intents:
`)
	for i := range n {
		fmt.Fprintf(&b, `      Intent%[1]d:
        samples: ["ask number %[2]s about {Item}", "tell me %[2]s for {Item}"]
        slots:
          Item: { type: ITEM, required: true, prompt: "Which item for %[2]s?" }
        call:
          service: api
          path: /v1/things/{{ .slots.Item }}/n%[1]d
          query: { detail: "{{ .slots.Item | lower }}", n: "%[1]d" }
          extract:
            name: data.name
            price: { path: data.items.0.price, required: true }
        say: "{{ .name }} costs {{ .price }} in set %[2]s."
        errors:
          "404": "I found nothing for {{ .slots.Item }}."
`, i, words(i))
	}
	return []byte(b.String())
}

// words spells i with letters only, since samples may hold no digits.
func words(i int) string {
	const digits = "abcdefghij"
	s := fmt.Sprint(i)
	var out strings.Builder
	for _, c := range s {
		out.WriteString("x" + string(digits[c-'0']))
		out.WriteByte(' ')
	}
	return strings.TrimSpace(out.String())
}
