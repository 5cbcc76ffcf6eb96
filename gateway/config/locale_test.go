package config_test

import (
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/voicegw/voicegw/gateway/config"
)

func TestLocalizedIn(t *testing.T) {
	var plain, per config.Text
	if err := yaml.Unmarshal([]byte(`Hello`), &plain); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(`{ de-DE: Hallo, en-US: Hello, en-GB: Hello there }`), &per); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, locale, plain, per string
	}{
		{"exact", "en-GB", "Hello", "Hello there"},
		{"exact, first given", "de-DE", "Hello", "Hallo"},
		{"same language", "de-AT", "Hello", "Hallo"},
		{"same language, the first of it", "en-AU", "Hello", "Hello"},
		{"another language: the first given", "fr-FR", "Hello", "Hallo"},
		{"none", "", "Hello", "Hallo"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := plain.In(tc.locale); got != tc.plain {
				t.Errorf("plain: %q, want %q", got, tc.plain)
			}
			if got := per.In(tc.locale); got != tc.per {
				t.Errorf("per locale: %q, want %q", got, tc.per)
			}
		})
	}
	var list config.TextList
	if err := yaml.Unmarshal([]byte("en-US: [a, b]\nde-DE: [c]\n"), &list); err != nil || !list.PerLocale() || len(list.In("de-DE")) != 1 {
		t.Errorf("list %+v: %v", list, err)
	}
	// A mapping whose keys are no locales is a mistake of type.
	var wrong config.Text
	if err := yaml.Unmarshal([]byte(`{ text: Hi }`), &wrong); err == nil {
		t.Error("a mapping without locales decodes as a text")
	}
	sk := &config.Skill{Locales: []string{"en-US", "de-DE"}}
	for in, want := range map[string]string{"de-CH": "de-DE", "en-US": "en-US", "ja-JP": "en-US"} {
		if got := sk.LocaleFor(in); got != want {
			t.Errorf("LocaleFor(%s) = %s, want %s", in, got, want)
		}
	}
}
