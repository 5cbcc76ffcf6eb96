package inmem_test

import (
	"context"
	"errors"
	"testing"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/inmem"
)

func TestStore(t *testing.T) {
	ctx := context.Background()
	s := inmem.New(map[string]map[string]string{"services/a": {"k": "v"}})
	steps := []struct {
		name    string
		do      func() (int, error)
		want    int
		wantErr error
	}{
		{"seeded entry is version 1", func() (int, error) { e, err := s.Read(ctx, "services/a"); return version(e), err }, 1, nil},
		{"missing entry", func() (int, error) { e, err := s.Read(ctx, "users/x/y"); return version(e), err }, 0, gateway.ErrNotFound},
		{"create with cas 0", func() (int, error) { return s.Write(ctx, "users/x/y", gateway.SecretData{"t": "1"}, 0) }, 1, nil},
		{"create again with cas 0 conflicts", func() (int, error) { return s.Write(ctx, "users/x/y", gateway.SecretData{"t": "2"}, 0) }, 0, gateway.ErrConflict},
		{"update with the current version", func() (int, error) { return s.Write(ctx, "users/x/y", gateway.SecretData{"t": "2"}, 1) }, 2, nil},
		{"update with a stale version conflicts", func() (int, error) { return s.Write(ctx, "users/x/y", gateway.SecretData{"t": "3"}, 1) }, 0, gateway.ErrConflict},
		{"unconditional write", func() (int, error) { return s.Write(ctx, "users/x/y", gateway.SecretData{"t": "3"}, -1) }, 3, nil},
		{"delete", func() (int, error) { return 0, s.Delete(ctx, "users/x/y") }, 0, nil},
		{"deleted entry is gone", func() (int, error) { e, err := s.Read(ctx, "users/x/y"); return version(e), err }, 0, gateway.ErrNotFound},
	}
	for _, tc := range steps {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.do()
			if !errors.Is(err, tc.wantErr) || got != tc.want {
				t.Fatalf("got %d, %v; want %d, %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
	// Reads return copies: changing one does not change the store.
	e, _ := s.Read(ctx, "services/a")
	e.Data["k"] = "changed"
	if e2, _ := s.Read(ctx, "services/a"); e2.Data["k"].Reveal() != "v" {
		t.Fatal("a read shares its map with the store")
	}
	if s.Reads() != 5 {
		t.Fatalf("Reads() = %d, want 5", s.Reads())
	}
}

func version(e *gateway.Entry) int {
	if e == nil {
		return 0
	}
	return e.Version
}
