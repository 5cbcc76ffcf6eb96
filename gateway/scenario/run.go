package scenario

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/voicegw/voicegw/gateway/alexa"
	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/gateway/inmem"
)

// recorded is an upstream request as a stub server received it.
type recorded struct {
	service string
	method  string
	path    string
	query   url.Values
	header  http.Header
	body    []byte
}

func (r *recorded) String() string {
	s := r.method + " " + r.service + " " + r.path
	if len(r.query) > 0 {
		s += "?" + r.query.Encode()
	}
	return s
}

// stubs serves every service of a config from local HTTP servers.
type stubs struct {
	mu        sync.Mutex
	list      []*Stub
	requests  []*recorded
	unmatched []*recorded
	servers   []*httptest.Server
}

func (st *stubs) start(cfg *config.Config) {
	for name, svc := range cfg.Services {
		if svc.URL == nil {
			continue
		}
		base := svc.URL.EscapedPath()
		srv := httptest.NewServer(st.handler(name, base))
		st.servers = append(st.servers, srv)
		u, _ := url.Parse(srv.URL)
		svc.URL.Scheme, svc.URL.Host = u.Scheme, u.Host
		svc.Base = svc.URL.String()
	}
}

func (st *stubs) close() {
	for _, s := range st.servers {
		s.Close()
	}
}

func (st *stubs) handler(service, base string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		rec := &recorded{service: service, method: r.Method, path: r.URL.EscapedPath(),
			query: r.URL.Query(), header: r.Header.Clone(), body: body}
		st.mu.Lock()
		st.requests = append(st.requests, rec)
		stub := st.match(rec, base)
		if stub == nil {
			st.unmatched = append(st.unmatched, rec)
		}
		st.mu.Unlock()
		if stub == nil {
			http.Error(w, "no stub matches", http.StatusNotImplemented)
			return
		}
		if stub.Delay.D > 0 {
			t := time.NewTimer(stub.Delay.D)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		for k, v := range stub.Headers {
			w.Header().Set(k, v)
		}
		if stub.Raw == nil && w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(stub.Status)
		_, _ = w.Write(stub.body)
	})
}

// match finds the first stub for the request: same service, method (when
// given), path (as sent, with or without the base URL's path) and query
// values (those given).
func (st *stubs) match(rec *recorded, base string) *Stub {
	for _, s := range st.list {
		if s.Service != rec.service || (s.Method != "" && s.Method != rec.method) {
			continue
		}
		if s.Path != rec.path && base+s.Path != rec.path {
			continue
		}
		ok := true
		for k, v := range s.Query {
			if rec.query.Get(k) != v {
				ok = false
			}
		}
		if ok {
			return s
		}
	}
	return nil
}

// since returns the requests recorded after the first n.
func (st *stubs) since(n int) ([]*recorded, []*recorded) {
	st.mu.Lock()
	defer st.mu.Unlock()
	var un []*recorded
	for _, u := range st.unmatched {
		for _, r := range st.requests[n:] {
			if u == r {
				un = append(un, u)
			}
		}
	}
	return append([]*recorded(nil), st.requests[n:]...), un
}

func (st *stubs) count() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.requests)
}

func (r *Runner) runScenario(file string, sc *Scenario, cfg *config.Config) []string {
	sk, ok := cfg.Skills[sc.Skill]
	if !ok {
		return []string{fmt.Sprintf("%s: no skill %q in %s", file, sc.Skill, r.Config)}
	}
	for _, s := range sc.Stubs {
		if _, ok := cfg.Services[s.Service]; !ok {
			return []string{fmt.Sprintf("%s:%d: stub names no service of the config: %q", file, s.line, s.Service)}
		}
	}
	ps, warnings := checkTurns(file, sc, sk)
	r.warnings = append(r.warnings, warnings...)
	if len(ps) > 0 {
		return ps
	}
	st := &stubs{list: sc.Stubs}
	st.start(cfg)
	defer st.close()
	store := inmem.New(sc.Secrets)
	h := r.Build(cfg, store)
	var mcpHandler http.Handler
	appID := sk.ApplicationID
	if appID == "" {
		appID = "amzn1.ask.skill.scenario"
	}
	session := map[string]any{}
	var problems []string
	for i, t := range sc.Turns {
		if t.Tool != "" {
			if mcpHandler == nil && r.MCP != nil {
				mcpHandler = r.MCP(cfg, store)
			}
			problems = append(problems, mcpTurn(mcpHandler, file, i, t, sc.Skill, st)...)
			continue
		}
		spec := alexa.RequestSpec{
			ApplicationID: appID,
			UserID:        t.User,
			AccessToken:   t.AccessToken,
			Type:          "LaunchRequest",
			Session:       session,
			NewSession:    i == 0,
			Locale:        t.Locale,
			Confirmation:  t.Confirmation,
		}
		if spec.UserID == "" {
			spec.UserID = DefaultUser
		}
		var resolved map[string]Resolution
		var lists map[string][]Value
		if !t.Launch {
			spec.Type, spec.Intent = "IntentRequest", t.Intent
			if t.CanFulfill {
				spec.Type = "CanFulfillIntentRequest"
			}
			spec.Slots, resolved, lists = ResolveSlots(sk, t.Intent, t.Locale, t.Slots)
		}
		before := st.count()
		status, body := h.Serve(context.Background(), sc.Skill, nil, WithSlots(alexa.BuildRequest(spec), resolved, lists))
		reqs, unmatched := st.since(before)
		at := func(key string) string {
			line := t.lines[key]
			if line == 0 {
				line = t.line
			}
			return fmt.Sprintf("%s:%d: turn %d", file, line, i+1)
		}
		for _, u := range unmatched {
			problems = append(problems, fmt.Sprintf("%s: no stub matches the upstream request %s", at(""), u))
		}
		if status != http.StatusOK {
			problems = append(problems, fmt.Sprintf("%s: HTTP %d: %s", at(""), status, body))
			continue
		}
		var resp alexa.Response
		if err := json.Unmarshal(body, &resp); err != nil {
			problems = append(problems, fmt.Sprintf("%s: invalid response: %v", at(""), err))
			continue
		}
		fails := check(&t.Expect, &resp, reqs)
		sort.SliceStable(fails, func(a, b int) bool { return t.lines[fails[a].key] < t.lines[fails[b].key] })
		for _, p := range fails {
			problems = append(problems, fmt.Sprintf("%s: %s", at(p.key), p.msg))
		}
		session = resp.SessionAttributes
		if session == nil {
			session = map[string]any{}
		}
	}
	return problems
}

type failure struct {
	key string
	msg string
}

func mismatch(key string, want, got any) failure {
	return failure{key: key, msg: fmt.Sprintf("%s: expected %s, got %s", key, show(want), show(got))}
}

func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func check(ex *Expect, resp *alexa.Response, reqs []*recorded) []failure {
	var out []failure
	speech := resp.Speech()
	if ex.Say != nil && *ex.Say != speech {
		out = append(out, mismatch("say", *ex.Say, speech))
	}
	if ex.SayContains != nil && !strings.Contains(speech, *ex.SayContains) {
		out = append(out, failure{"say_contains", fmt.Sprintf("say_contains: expected speech containing %s, got %s", show(*ex.SayContains), show(speech))})
	}
	if ex.Reprompt != nil && *ex.Reprompt != resp.Reprompt() {
		out = append(out, mismatch("reprompt", *ex.Reprompt, resp.Reprompt()))
	}
	if c := ex.Card; c != nil {
		card := resp.Response.Card
		if card == nil {
			out = append(out, mismatch("card", c, nil))
		} else {
			if c.Type != nil && *c.Type != card.Type {
				out = append(out, mismatch("card", "type "+*c.Type, "type "+card.Type))
			}
			if c.Title != nil && *c.Title != card.Title {
				out = append(out, mismatch("card", "title "+*c.Title, "title "+card.Title))
			}
			if c.Text != nil && *c.Text != card.Content {
				out = append(out, mismatch("card", "text "+*c.Text, "text "+card.Content))
			}
		}
	}
	if ex.EndSession != nil {
		got := resp.Response.ShouldEndSession != nil && *resp.Response.ShouldEndSession
		if got != *ex.EndSession {
			out = append(out, mismatch("end_session", *ex.EndSession, got))
		}
	}
	if ex.Directive != nil {
		got := ""
		if len(resp.Response.Directives) > 0 {
			got = resp.Response.Directives[0].Type
		}
		if got != *ex.Directive {
			out = append(out, mismatch("directive", *ex.Directive, got))
		}
	}
	if len(ex.Session) > 0 {
		want := normalize(ex.Session).(map[string]any)
		keys := make([]string, 0, len(want))
		for k := range want {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			got, ok := resp.SessionAttributes[k]
			if !ok || !reflect.DeepEqual(want[k], normalize(got)) {
				out = append(out, mismatch("session", map[string]any{k: want[k]}, map[string]any{k: got}))
			}
		}
	}
	if len(ex.CanFulfillIntent) > 0 {
		want := normalize(ex.CanFulfillIntent)
		if got := normalize(resp.Response.CanFulfillIntent); !subset(want, got) {
			out = append(out, mismatch("can_fulfill_intent", want, got))
		}
	}
	if ex.NoRequest && len(reqs) > 0 {
		out = append(out, mismatch("no_request", "no upstream request", reqs[0].String()))
	}
	if ex.Request != nil {
		if len(reqs) == 0 {
			out = append(out, mismatch("request", "an upstream request", "none"))
		} else {
			out = append(out, checkRequest(ex.Request, reqs[len(reqs)-1])...)
		}
	}
	return out
}

func checkRequest(ex *RequestExpect, got *recorded) []failure {
	var out []failure
	if ex.Method != "" && !strings.EqualFold(ex.Method, got.method) {
		out = append(out, mismatch("request", "method "+ex.Method, "method "+got.method))
	}
	if ex.Path != "" && ex.Path != got.path {
		out = append(out, mismatch("request", "path "+ex.Path, "path "+got.path))
	}
	for _, k := range sortedKeys(ex.Query) {
		if v, ok := got.query[k]; !ok || v[0] != ex.Query[k] {
			out = append(out, mismatch("request", fmt.Sprintf("query %s=%s", k, ex.Query[k]), fmt.Sprintf("query %s", got.query.Encode())))
		}
	}
	for _, k := range sortedKeys(ex.Headers) {
		if v := got.header.Get(k); v != ex.Headers[k] {
			out = append(out, mismatch("request", fmt.Sprintf("header %s: %s", k, ex.Headers[k]), fmt.Sprintf("header %s: %s", k, v)))
		}
	}
	if ex.Body.Kind != 0 {
		want, err := nodeValue(&ex.Body)
		if err != nil {
			return append(out, failure{"request", "request: body: " + err.Error()})
		}
		if s, ok := want.(string); ok {
			if s != string(got.body) {
				out = append(out, mismatch("request", "body "+s, "body "+string(got.body)))
			}
			return out
		}
		var gotV any
		if err := json.Unmarshal(got.body, &gotV); err != nil {
			if form, ferr := url.ParseQuery(string(got.body)); ferr == nil {
				gotV = formValue(form)
			}
		}
		if !subset(want, gotV) {
			out = append(out, mismatch("request", want, json.RawMessage(orNull(got.body))))
		}
	}
	return out
}

func formValue(f url.Values) map[string]any {
	m := map[string]any{}
	for k, v := range f {
		m[k] = v[0]
	}
	return m
}

func orNull(b []byte) []byte {
	if json.Valid(b) {
		return b
	}
	s, _ := json.Marshal(string(b))
	return s
}

// subset reports whether want is contained in got: maps by key (extra keys
// in got are fine), lists and scalars exactly.
func subset(want, got any) bool {
	wm, ok := want.(map[string]any)
	if !ok {
		return reflect.DeepEqual(want, got)
	}
	gm, ok := got.(map[string]any)
	if !ok {
		return false
	}
	for k, wv := range wm {
		gv, ok := gm[k]
		if !ok || !subset(wv, gv) {
			return false
		}
	}
	return true
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }
