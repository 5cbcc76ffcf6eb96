package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// runCLI runs voicegw with args in-process.
func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCLI(t *testing.T) {
	example := filepath.Join("..", "..", "config.example.yaml")
	t.Setenv("VAULT_ADDR", "")
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	src, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, bytes.Replace(src, []byte("service: forecast"), []byte("service: forcast"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		args    []string
		code    int
		stdout  []string // substrings
		stderr  []string
		jsonOut bool
	}{
		{name: "version", args: []string{"version"}, stdout: []string{"voicegw dev", runtime.Version()}},
		{name: "no command", args: nil, code: 2, stderr: []string{"usage: voicegw"}},
		{name: "unknown command", args: []string{"frobnicate"}, code: 2, stderr: []string{`unknown command "frobnicate"`}},
		{name: "check ok with warnings", args: []string{"check", "-c", example},
			stdout: []string{"config.example.yaml:", ": warning: ", "ok (2 skills, 3 services)"}},
		{name: "check error", args: []string{"check", "-c", bad}, code: 1,
			stdout: []string{"bad.yaml:", `skills.weather.intents.GetWeather.calls[1].service: no service "forcast"`}},
		{name: "check missing file", args: []string{"check", "-c", "/nonexistent.yaml"}, code: 1, stdout: []string{"/nonexistent.yaml:1:1:"}},
		{name: "invoke launch", args: []string{"invoke", "-c", example, "--skill", "weather", "--launch"},
			stdout: []string{"Welcome to weather buddy. Which city?"}},
		{name: "invoke intent with slot and session", args: []string{"invoke", "-c", example, "--skill", "weather",
			"--intent", "AMAZON.HelpIntent", "--slot", "City=Berlin", "--session", "last_city=Paris", "--user", "amzn1.ask.account.CLI"},
			stdout: []string{"Ask me, what is the weather in Berlin."}},
		{name: "invoke json", args: []string{"invoke", "-c", example, "--skill", "weather", "--intent", "AboutIntent", "--json"}, jsonOut: true,
			stdout: []string{`"outputSpeech"`, `"shouldEndSession": false`}},
		{name: "invoke needs a skill", args: []string{"invoke", "-c", example, "--intent", "X"}, code: 2, stderr: []string{"need --skill"}},
		{name: "invoke launch or intent", args: []string{"invoke", "-c", example, "--skill", "weather", "--launch", "--intent", "X"}, code: 2},
		{name: "invoke unknown skill", args: []string{"invoke", "-c", example, "--skill", "nope", "--launch"}, code: 1, stderr: []string{`no skill "nope"`}},
		{name: "invoke bad user", args: []string{"invoke", "-c", example, "--skill", "weather", "--launch", "--user", "../x"}, code: 1, stderr: []string{"HTTP 400"}},
		{name: "invoke bad slot flag", args: []string{"invoke", "-c", example, "--skill", "weather", "--intent", "X", "--slot", "novalue"}, code: 2},
		{name: "test examples", args: []string{"test", "-c", example}, stdout: []string{"ok   ", "3 passed, 0 failed"}},
		{name: "model", args: []string{"model", "-c", example, "--skill", "github"}, jsonOut: true, stdout: []string{`"invocationName": "git buddy"`}},
		{name: "test the shop example (multi-value slots, CanFulfill, two locales)", args: []string{"test", "-c", "../../examples/shop/config.yaml"},
			stdout: []string{"ok   ../../examples/shop/scenarios/shop-de.yaml", "ok   ../../examples/shop/scenarios/shop-en.yaml", "2 passed, 0 failed"}},
		{name: "model de-DE", args: []string{"model", "-c", example, "--skill", "weather", "--locale", "de-DE"}, jsonOut: true,
			stdout: []string{`"invocationName": "wetter freund"`, `"wie ist das wetter in {City}"`, `"value": "Welche Stadt?"`}},
		{name: "model en-US", args: []string{"model", "-c", example, "--skill", "weather", "--locale", "en-US"}, jsonOut: true,
			stdout: []string{`"invocationName": "weather buddy"`, `"what is the weather in {City}"`, `"value": "Which city?"`}},
		{name: "model of a locale the skill lacks", args: []string{"model", "-c", example, "--skill", "weather", "--locale", "en-GB"}, jsonOut: true,
			stdout: []string{`"invocationName": "weather buddy"`}, stderr: []string{"has no locale en-GB", "printing the en-US model"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errOut)
			}
			for _, s := range tc.stdout {
				if !strings.Contains(out, s) {
					t.Errorf("stdout lacks %q:\n%s", s, out)
				}
			}
			for _, s := range tc.stderr {
				if !strings.Contains(errOut, s) {
					t.Errorf("stderr lacks %q:\n%s", s, errOut)
				}
			}
			if tc.jsonOut && !json.Valid([]byte(out)) {
				t.Errorf("stdout is not JSON:\n%s", out)
			}
		})
	}
}
