package alexa_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/engine"
	"github.com/voicegw/voicegw/gateway/inmem"
)

// deafStore is a secret store stuck on a read whatever the context says,
// as a client with its own long timeout is: the handler, not the store,
// must keep the turn's deadline.
type deafStore struct {
	gateway.SecretStore
	release chan struct{}
}

func (s *deafStore) Read(ctx context.Context, path string) (*gateway.Entry, error) {
	<-s.release
	return s.SecretStore.Read(ctx, path)
}

const deafConfig = `
version: 1
alexa:
  verify: false
services:
  api:
    base_url: ${VOICEGW_TEST_UPSTREAM}
    auth: { type: secret, field: api_key }
skills:
  deaf:
    application_id: amzn1.ask.skill.deaf
    errors:
      timeout: The service is slow right now.
    intents:
      Get:
        samples: ["get"]
        call: { service: api, path: /thing }
        say: "Done."
`

// syncWriter is a log sink safe for the handler's and a late turn's
// goroutines.
type syncWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// stuckEngine holds every turn until released, whatever its context
// says: a dependency that ignores the deadline (or a template that runs
// for long) as the handler sees it.
type stuckEngine struct {
	*engine.Engine
	release chan struct{}
}

func (e *stuckEngine) Turn(ctx context.Context, t *gateway.Turn) *gateway.Reply {
	<-e.release
	return e.Engine.Turn(ctx, t)
}

// TestHandlerKeepsDeadline: when the engine is held past the request's
// deadline, the handler answers with the intent's timeout speech within
// the deadline and 250 ms, and logs the overrun.
func TestHandlerKeepsDeadline(t *testing.T) {
	MustUpstream(t, jsonHandler(200, `{}`))
	logs := &syncWriter{}
	h := MustPipeline(t, deafConfig, nil)
	h.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	stuck := &stuckEngine{Engine: h.Engine.(*engine.Engine), release: make(chan struct{})}
	h.Engine = stuck
	// Released long after the deadline, so that a handler that waits for
	// the engine fails here instead of hanging.
	time.AfterFunc(2*time.Second, func() { close(stuck.release) })
	body := buildIntent("amzn1.ask.skill.deaf", "Get", nil)
	const budget = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	start := time.Now()
	status, out := h.Serve(ctx, "", nil, body)
	took := time.Since(start)
	r := MustDecodeResponse(t, status, out)
	if r.Speech() != "The service is slow right now." {
		t.Errorf("speech %q, want the timeout speech", r.Speech())
	}
	if took > budget+250*time.Millisecond {
		t.Errorf("answered after %v, want within %v", took, budget+250*time.Millisecond)
	}
	if !strings.Contains(logs.String(), "turn overran its deadline") {
		t.Errorf("no log line for the overrun: %s", logs.String())
	}
}

// TestDeafStoreKeepsDeadline: a secret store stuck on a read whatever the
// context says holds no turn past its deadline: the credential read gives
// up at the deadline and the user hears the vault speech in time (SPEC 10).
func TestDeafStoreKeepsDeadline(t *testing.T) {
	MustUpstream(t, jsonHandler(200, `{}`))
	store := &deafStore{SecretStore: inmem.New(nil), release: make(chan struct{})}
	time.AfterFunc(2*time.Second, func() { close(store.release) })
	h := MustPipeline(t, deafConfig, store)
	body := buildIntent("amzn1.ask.skill.deaf", "Get", nil)
	const budget = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	start := time.Now()
	status, out := h.Serve(ctx, "", nil, body)
	took := time.Since(start)
	r := MustDecodeResponse(t, status, out)
	if !strings.Contains(r.Speech(), "secure storage") && r.Speech() != "The service is slow right now." {
		t.Errorf("speech %q, want the vault (or timeout) speech", r.Speech())
	}
	if took > budget+250*time.Millisecond {
		t.Errorf("answered after %v, want within %v", took, budget+250*time.Millisecond)
	}
}
