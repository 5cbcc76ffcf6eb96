package auth_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/auth"
	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/gateway/inmem"
)

const user = "amzn1.ask.account.TEST"

// flakyStore wraps an in-memory store; it counts reads and can hold them
// until released. (Faults are tested against the real Vault behind
// faultproxy: vault_test.go.)
type flakyStore struct {
	*inmem.Store
	reads atomic.Int32
	hold  chan struct{}
	in    chan struct{}
}

func (s *flakyStore) Read(ctx context.Context, path string) (*gateway.Entry, error) {
	s.reads.Add(1)
	if s.in != nil {
		s.in <- struct{}{}
	}
	if s.hold != nil {
		<-s.hold
	}
	return s.Store.Read(ctx, path)
}

func svc(name, typ, field string) *config.Service {
	return &config.Service{Name: name, Auth: config.ServiceAuth{Type: typ, Field: field}}
}

func TestGet(t *testing.T) {
	store := inmem.New(map[string]map[string]string{
		"services/keyed":         {"api_key": "k", "other": "o"},
		"services/nofield":       {"other": "o"},
		"users/" + user + "/gh":  {"access_token": "t"},
		"users/" + user + "/bad": {"refresh_token": "r"},
	})
	tests := []struct {
		name    string
		store   gateway.SecretStore
		svc     *config.Service
		turn    gateway.Turn
		want    string // token; "" with wantErr nil means no credential
		wantErr error
	}{
		{name: "none", store: store, svc: svc("x", config.AuthNone, "")},
		{name: "alexa token", store: store, svc: svc("x", config.AuthAlexa, ""), turn: gateway.Turn{AccessToken: "at"}, want: "at"},
		{name: "alexa without token", store: store, svc: svc("x", config.AuthAlexa, ""), wantErr: auth.ErrUnlinked},
		{name: "secret field", store: store, svc: svc("keyed", config.AuthSecret, "api_key"), want: "k"},
		{name: "secret without the field", store: store, svc: svc("nofield", config.AuthSecret, "api_key"), wantErr: auth.ErrVault},
		{name: "secret path missing", store: store, svc: svc("nothere", config.AuthSecret, "api_key"), wantErr: auth.ErrVault},
		{name: "linked token", store: store, svc: svc("gh", config.AuthLinked, ""), turn: gateway.Turn{UserID: user}, want: "t"},
		{name: "linked without access_token", store: store, svc: svc("bad", config.AuthLinked, ""), turn: gateway.Turn{UserID: user}, wantErr: auth.ErrUnlinked},
		{name: "linked, no entry", store: store, svc: svc("gh", config.AuthLinked, ""), turn: gateway.Turn{UserID: "amzn1.ask.account.NOBODY"}, wantErr: auth.ErrUnlinked},
		{name: "linked, malformed user id never reaches the store", store: &flakyStore{Store: store}, svc: svc("gh", config.AuthLinked, ""),
			turn: gateway.Turn{UserID: "amzn1.ask.account.TEST/../../services/keyed"}, wantErr: auth.ErrUnlinked},
		{name: "no store: linked is unlinked", svc: svc("gh", config.AuthLinked, ""), turn: gateway.Turn{UserID: user}, wantErr: auth.ErrUnlinked},
		{name: "no store: secret is vault", svc: svc("keyed", config.AuthSecret, "api_key"), wantErr: auth.ErrVault},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := auth.New(tc.store, time.Minute)
			cred, err := p.Get(context.Background(), tc.svc, &tc.turn)
			if fs, ok := tc.store.(*flakyStore); ok && fs.reads.Load() != 0 {
				t.Errorf("the store was read")
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("error %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == "" {
				if cred != nil {
					t.Fatalf("credential %v, want none", cred.Token)
				}
				return
			}
			if cred == nil || cred.Token.Reveal() != tc.want {
				t.Fatalf("credential %v, want %q", cred, tc.want)
			}
			if s := fmt.Sprintf("%v %+v %#v", cred.Token, cred.Token, cred.Token); s != "[redacted] [redacted] \"[redacted]\"" {
				t.Errorf("token prints as %s", s)
			}
		})
	}
}

// TestSharedMiss: concurrent misses of one path share one store read.
func TestSharedMiss(t *testing.T) {
	fs := &flakyStore{
		Store: inmem.New(map[string]map[string]string{"services/keyed": {"api_key": "k"}}),
		hold:  make(chan struct{}),
		in:    make(chan struct{}, 100),
	}
	p := auth.New(fs, time.Minute)
	s := svc("keyed", config.AuthSecret, "api_key")
	const n = 16
	var ready, done sync.WaitGroup
	ready.Add(n)
	done.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			defer done.Done()
			ready.Done()
			if cred, err := p.Get(context.Background(), s, &gateway.Turn{}); err != nil || cred.Token.Reveal() != "k" {
				t.Errorf("Get: %v %v", cred, err)
			}
		}()
	}
	ready.Wait()
	<-fs.in
	time.Sleep(50 * time.Millisecond) // let the others join the read
	close(fs.hold)
	done.Wait()
	if got := fs.reads.Load(); got != 1 {
		t.Errorf("store read %d times, want 1", got)
	}
}

// TestRejected: after a 401 the provider re-reads; it returns a new
// credential only when the store holds a different one.
func TestRejected(t *testing.T) {
	store := inmem.New(map[string]map[string]string{
		"services/keyed":        {"api_key": "old"},
		"users/" + user + "/gh": {"access_token": "t1"},
	})
	tests := []struct {
		name   string
		svc    *config.Service
		turn   gateway.Turn
		path   string
		field  string
		rotate string
		want   string // "" for no retry
	}{
		{name: "secret rotated", svc: svc("keyed", config.AuthSecret, "api_key"), path: "services/keyed", field: "api_key", rotate: "new", want: "new"},
		{name: "secret not rotated", svc: svc("keyed", config.AuthSecret, "api_key")},
		{name: "linked token replaced", svc: svc("gh", config.AuthLinked, ""), turn: gateway.Turn{UserID: user}, path: "users/" + user + "/gh", field: "access_token", rotate: "t2", want: "t2"},
		{name: "alexa token has nothing to re-read", svc: svc("x", config.AuthAlexa, ""), turn: gateway.Turn{AccessToken: "at"}},
	}
	p := auth.New(store, time.Minute)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			cred, err := p.Get(ctx, tc.svc, &tc.turn)
			if err != nil {
				t.Fatal(err)
			}
			if tc.rotate != "" {
				if _, err := store.Write(ctx, tc.path, gateway.SecretData{tc.field: gateway.Secret(tc.rotate)}, -1); err != nil {
					t.Fatal(err)
				}
				// Still cached: Get alone does not see the rotation.
				if again, _ := p.Get(ctx, tc.svc, &tc.turn); again.Token != cred.Token {
					t.Fatalf("cache did not hold the old credential")
				}
			}
			fresh, err := p.Rejected(ctx, tc.svc, &tc.turn, cred, 401)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.want == "" && fresh != nil:
				t.Errorf("Rejected returned %v, want nil", fresh.Token)
			case tc.want != "" && (fresh == nil || fresh.Token.Reveal() != tc.want):
				t.Errorf("Rejected returned %v, want %q", fresh, tc.want)
			}
		})
	}
}

// TestDeadLinkedToken: a linked token that still gets a 401 after the
// re-read and has no refresh token is unlinked (the user hears how to
// link again); a 403 is no such proof and is spoken as it is.
func TestDeadLinkedToken(t *testing.T) {
	store := inmem.New(map[string]map[string]string{"users/" + user + "/gh": {"access_token": "dead"}})
	gh := svc("gh", config.AuthLinked, "")
	gh.OAuth2 = &config.OAuth2{TokenURL: "http://127.0.0.1:9/token"}
	for _, tc := range []struct {
		name    string
		status  int
		wantErr error
	}{
		{name: "401", status: 401, wantErr: auth.ErrUnlinked},
		{name: "403", status: 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := auth.New(store, time.Minute)
			turn := &gateway.Turn{UserID: user}
			cred, err := p.Get(context.Background(), gh, turn)
			if err != nil {
				t.Fatal(err)
			}
			fresh, err := p.Rejected(context.Background(), gh, turn, cred, tc.status)
			if fresh != nil || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Errorf("Rejected after %d = %v, %v; want nil, %v", tc.status, fresh, err, tc.wantErr)
			}
		})
	}
}
