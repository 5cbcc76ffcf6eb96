package main

// End to end through serve's wiring (deps.runtime, server.New) with
// request verification on and a real Vault dev server whose token has
// exactly scripts/voicegw-policy.hcl: skill events (SPEC 12).

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/voicegw/voicegw/gateway/alexa"
	"github.com/voicegw/voicegw/gateway/alexa/alexatest"
	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/gateway/server"
	"github.com/voicegw/voicegw/gateway/vault"
	"github.com/voicegw/voicegw/gateway/vault/vaulttest"
)

const eventsAppID = "amzn1.ask.skill.events"

// eventsConfig has three linked services (one with account linking, so
// an unlinked user gets a pending link code) and a secret one.
const eventsConfig = `version: 1
server:
  public_url: https://voice.example.com
  deadline: 5s
alexa:
  timestamp_tolerance: 150s
vault:
  address: ${VAULT_ADDR}
  prefix: voicegw
services:
  github: { base_url: "http://127.0.0.1:9", auth: { type: linked } }
  gitlab: { base_url: "http://127.0.0.1:9", auth: { type: linked } }
  jira:
    base_url: "http://127.0.0.1:9"
    auth: { type: linked }
    oauth2: { auth_url: "https://jira.example.com/authorize", token_url: "https://jira.example.com/token", client_id: voicegw }
  weather: { base_url: "http://127.0.0.1:9", auth: { type: secret, field: api_key } }
skills:
  events:
    application_id: ` + eventsAppID + `
    invocation: event test
    intents:
      Issues:
        samples: ["my issues"]
        call: { service: jira, path: /issues }
        say: You have issues.
`

// skillEvent is an AlexaSkillEvent envelope as Amazon sends it: context,
// no session, the event's own times and body.
func skillEvent(typ, user string, ts time.Time) []byte {
	at := ts.UTC().Format(time.RFC3339)
	return fmt.Appendf(nil, `{"version":"1.0","context":{"System":{"application":{"applicationId":%q},"user":{"userId":%q},`+
		`"apiEndpoint":"https://api.amazonalexa.com","apiAccessToken":"eyJ0eXAiOiJKV1Qi.event"}},`+
		`"request":{"type":%q,"requestId":"amzn1.echo-api.request.%d","timestamp":%q,"eventCreationTime":%q,"eventPublishingTime":%q,`+
		`"body":{"userInformationPersistenceStatus":"NOT_PERSISTED"}}}`,
		eventsAppID, user, typ, ts.UnixNano(), at, at, at)
}

// TestServeSkillDisabled: AlexaSkillEvent.SkillDisabled deletes every
// linked token of the user in all versions and their pending link code,
// and nothing of anyone else; skill events are accepted up to an hour
// old, other requests only within timestamp_tolerance; other skill
// events are acknowledged; no token reaches the logs.
func TestServeSkillDisabled(t *testing.T) {
	v := vaulttest.Start(t)
	root := v.Client()
	policyToken := v.PolicyToken(t, "../../scripts/voicegw-policy.hcl")
	const (
		gone = "amzn1.ask.account.GONE"
		stay = "amzn1.ask.account.STAYS"
	)
	tokens := []string{"gho_first_version_1111", "gho_second_version_2222", "glpat_gone_3333", "gho_stays_4444", "api-key-5555"}
	v.Put(t, "voicegw/users/"+gone+"/github", map[string]any{"access_token": tokens[0]})
	v.Put(t, "voicegw/users/"+gone+"/github", map[string]any{"access_token": tokens[1], "refresh_token": "ghr_refresh_6666"})
	v.Put(t, "voicegw/users/"+gone+"/gitlab", map[string]any{"access_token": tokens[2]})
	v.Put(t, "voicegw/users/"+stay+"/github", map[string]any{"access_token": tokens[3]})
	v.Put(t, "voicegw/services/weather", map[string]any{"api_key": tokens[4]})

	cfg, problems := config.Parse("events.yaml", []byte(eventsConfig), func(k string) (string, bool) {
		if k == "VAULT_ADDR" {
			return v.Addr, true
		}
		return "", false
	})
	if cfg == nil {
		t.Fatal(problems.Err())
	}
	logs := &syncBuffer{}
	log := newLogger(logs, slog.LevelDebug)
	store, err := vault.New(cfg.Vault, vault.Options{Logger: log, Token: policyToken})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	pki := alexatest.MustPKI(t)
	d := newDeps(log)
	d.verify = alexa.VerifierConfig{Roots: pki.Roots, Fetcher: alexatest.NewFetcher(pki)}
	srv := e2eServeLog(t, d.runtime(cfg, store), log)
	post := func(body []byte) (int, string) {
		t.Helper()
		h := alexatest.Header(alexatest.CanonicalURL, alexatest.Sign(t, pki.LeafKey, body))
		status, out := e2ePost(t, srv.Client(), srv.URL+"/alexa", h, body)
		return status, string(out)
	}

	// The user asks for a service they have not linked: a pending code.
	status, out := post(alexa.BuildRequest(alexa.RequestSpec{ApplicationID: eventsAppID, UserID: gone,
		Type: "IntentRequest", Intent: "Issues", NewSession: true}))
	if status != http.StatusOK || !strings.Contains(out, "enter code") {
		t.Fatalf("unlinked turn: HTTP %d %s", status, out)
	}
	pending := readVault(t, v, "link-codes/pending/"+gone+"/jira")
	code, _ := pending["code"].(string)
	if code == "" || readVault(t, v, "link-codes/"+code) == nil {
		t.Fatalf("no pending link code: %v", pending)
	}

	// Stale requests: an IntentRequest 30 minutes old is refused, a skill
	// event that old is not; one 2 hours old is refused.
	if status, out := post(e2eQuoteLike(stay, time.Now().Add(-30*time.Minute))); status != http.StatusBadRequest {
		t.Fatalf("IntentRequest 30 minutes old: HTTP %d %s, want 400", status, out)
	}
	if status, out := post(skillEvent(alexa.SkillDisabled, gone, time.Now().Add(-2*time.Hour))); status != http.StatusBadRequest {
		t.Fatalf("skill event 2 hours old: HTTP %d %s, want 400", status, out)
	}
	if readVault(t, v, "users/"+gone+"/github") == nil {
		t.Fatal("a refused event deleted the token")
	}

	status, out = post(skillEvent(alexa.SkillDisabled, gone, time.Now().Add(-30*time.Minute)))
	if status != http.StatusOK || out != `{"version":"1.0","response":{}}` {
		t.Fatalf("SkillDisabled: HTTP %d %s, want 200 and an empty response", status, out)
	}
	// Gone in every version: no metadata, no version 1, no pending code.
	// (The deletions run in the background, after the acknowledgement.)
	for _, p := range []string{"users/" + gone + "/github", "users/" + gone + "/gitlab", "link-codes/pending/" + gone + "/jira", "link-codes/" + code} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			m, err := root.Logical().Read("secret/metadata/voicegw/" + p)
			if err == nil && m == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: metadata left after SkillDisabled (%v), want none", p, err)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if old, err := root.Logical().ReadWithData("secret/data/voicegw/users/"+gone+"/github", map[string][]string{"version": {"1"}}); err != nil || old != nil {
		t.Errorf("version 1 of the token left after SkillDisabled (%v), want none", err)
	}
	if readVault(t, v, "users/"+stay+"/github") == nil || readVault(t, v, "services/weather") == nil {
		t.Error("SkillDisabled deleted another user's token or a service secret")
	}

	// Other skill events are acknowledged and change nothing.
	for _, typ := range []string{"AlexaSkillEvent.SkillEnabled", "AlexaSkillEvent.SkillAccountLinked",
		"AlexaSkillEvent.SkillPermissionAccepted", "AlexaSkillEvent.ProactiveSubscriptionChanged"} {
		status, out := post(skillEvent(typ, stay, time.Now().Add(-50*time.Minute)))
		if status != http.StatusOK || out != `{"version":"1.0","response":{}}` {
			t.Errorf("%s: HTTP %d %s, want 200 and an empty response", typ, status, out)
		}
	}
	if readVault(t, v, "users/"+stay+"/github") == nil {
		t.Error("another skill event deleted a token")
	}

	text := logs.String()
	if !strings.Contains(text, `"msg":"user forgotten"`) || !strings.Contains(text, `"result":"done"`) {
		t.Errorf("no log line for the forgotten user:\n%s", lastChars(text, 3000))
	}
	for _, s := range append(tokens, "ghr_refresh_6666", policyToken, v.Token, code, "eyJ0eXAiOiJKV1Qi.event") {
		if strings.Contains(text, s) {
			t.Errorf("the logs hold a secret (%s…)", s[:4])
		}
	}
}

// e2eQuoteLike is an IntentRequest of the events skill sent at ts.
func e2eQuoteLike(user string, ts time.Time) []byte {
	return alexa.BuildRequest(alexa.RequestSpec{ApplicationID: eventsAppID, UserID: user,
		Type: "IntentRequest", Intent: "Issues", Timestamp: ts})
}

// e2eServeLog is e2eServe with the given logger.
func e2eServeLog(tb testing.TB, rt *server.Runtime, log *slog.Logger) *httptest.Server {
	tb.Helper()
	srv := httptest.NewServer(server.New(rt, nil, log).Handler())
	tb.Cleanup(srv.Close)
	return srv
}
