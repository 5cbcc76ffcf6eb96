// Package inmem is an in-memory gateway.SecretStore with versions and
// check-and-set, for `voicegw test` scenarios and unit tests of code above
// the store. Production uses the vault package.
package inmem

import (
	"context"
	"maps"
	"sync"

	"github.com/voicegw/voicegw/gateway"
)

var _ gateway.SecretStore = (*Store)(nil)

// Store is an in-memory secret store. The zero value is empty and ready.
type Store struct {
	mu      sync.Mutex
	entries map[string]*gateway.Entry
	reads   int
}

// New returns a store holding data (path to fields), each at version 1.
func New(data map[string]map[string]string) *Store {
	s := &Store{}
	for path, fields := range data {
		d := gateway.SecretData{}
		for k, v := range fields {
			d[k] = gateway.Secret(v)
		}
		_, _ = s.Write(context.Background(), path, d, -1)
	}
	return s
}

// Read implements gateway.SecretStore.
func (s *Store) Read(_ context.Context, path string) (*gateway.Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	e, ok := s.entries[path]
	if !ok {
		return nil, gateway.ErrNotFound
	}
	return &gateway.Entry{Data: maps.Clone(e.Data), Version: e.Version}, nil
}

// Write implements gateway.SecretStore.
func (s *Store) Write(_ context.Context, path string, data gateway.SecretData, cas int) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.entries == nil {
		s.entries = map[string]*gateway.Entry{}
	}
	cur := 0
	if e, ok := s.entries[path]; ok {
		cur = e.Version
	}
	if cas >= 0 && cas != cur {
		return 0, gateway.ErrConflict
	}
	s.entries[path] = &gateway.Entry{Data: maps.Clone(data), Version: cur + 1}
	return cur + 1, nil
}

// Delete implements gateway.SecretStore.
func (s *Store) Delete(_ context.Context, path string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.entries, path)
	return nil
}

// Reads returns how many reads the store has answered.
func (s *Store) Reads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads
}
