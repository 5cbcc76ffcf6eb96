package auth

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/gateway/inmem"
)

// TestCacheIsSwept: entries too old to serve even as stale ones (10 x ttl)
// leave the cache, so it holds recent users, not every user ever seen.
func TestCacheIsSwept(t *testing.T) {
	data := map[string]map[string]string{}
	for i := range 3 * sweepEvery {
		data[fmt.Sprintf("users/amzn1.ask.account.U%d/gh", i)] = map[string]string{"access_token": "t"}
	}
	clock := time.Unix(1_000_000, 0)
	p := New(inmem.New(data), time.Second)
	p.now = func() time.Time { return clock }
	svc := &config.Service{Name: "gh", Auth: config.ServiceAuth{Type: config.AuthLinked}}
	get := func(i int) {
		if _, err := p.Get(context.Background(), svc, &gateway.Turn{UserID: fmt.Sprintf("amzn1.ask.account.U%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range sweepEvery {
		get(i)
	}
	if n := p.CacheLen(); n != sweepEvery {
		t.Fatalf("cache holds %d, want %d", n, sweepEvery)
	}
	clock = clock.Add(10 * time.Second) // the first users are now too old
	for i := sweepEvery; i < 2*sweepEvery; i++ {
		get(i)
	}
	if n := p.CacheLen(); n != sweepEvery {
		t.Fatalf("after a sweep the cache holds %d, want only the %d recent users", n, sweepEvery)
	}
}
