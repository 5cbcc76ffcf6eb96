package ratelimit

import (
	"fmt"
	"testing"
	"time"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func TestSlidingWindow(t *testing.T) {
	w := New(10, 10*time.Minute, 0)
	for i := range 10 {
		if !w.Allow("a", t0.Add(time.Duration(i)*time.Second)) {
			t.Fatalf("attempt %d refused", i+1)
		}
	}
	if w.Allow("a", t0.Add(9*time.Minute)) {
		t.Fatal("the 11th attempt within 10 minutes was allowed")
	}
	if !w.Allow("b", t0.Add(9*time.Minute)) {
		t.Fatal("another client was refused")
	}
	// The first attempt leaves the window at t0+10m; one more is allowed.
	if !w.Allow("a", t0.Add(10*time.Minute)) {
		t.Fatal("an attempt after the oldest left the window was refused")
	}
	if w.Allow("a", t0.Add(10*time.Minute)) {
		t.Fatal("a second attempt was allowed while nine are still in the window")
	}
}

// A flood of new clients must not free a blocked one: the bound evicts
// idle, unblocked clients, and refuses new clients when none is left.
func TestFloodNeverFreesABlockedClient(t *testing.T) {
	w := New(10, 10*time.Minute, 100)
	for range 10 {
		w.Allow("attacker", t0)
	}
	if !w.Blocked("attacker", t0) {
		t.Fatal("attacker not blocked after 10 attempts")
	}
	for i := range 1000 {
		w.Allow(fmt.Sprintf("flood-%d", i), t0.Add(time.Second))
	}
	if w.Len() > 100 {
		t.Fatalf("tracks %d clients, bound is 100", w.Len())
	}
	if w.Allow("attacker", t0.Add(2*time.Second)) {
		t.Fatal("the attacker was freed by the flood")
	}

	// Fill the window with blocked clients only: a new client is refused
	// rather than one of them forgotten.
	full := New(1, time.Minute, 3)
	for _, k := range []string{"x", "y", "z"} {
		full.Allow(k, t0)
	}
	if full.Allow("new", t0) {
		t.Fatal("a new client displaced a blocked one")
	}
	for _, k := range []string{"x", "y", "z"} {
		if !full.Blocked(k, t0) {
			t.Fatalf("%s was forgotten", k)
		}
	}
	// Once their window has passed they are idle, unblocked and evictable.
	if !full.Allow("new", t0.Add(time.Minute)) {
		t.Fatal("a new client was refused after the blocked ones expired")
	}
}

func TestClientKey(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"192.0.2.7:4000", "192.0.2.7"},
		{"192.0.2.7", "192.0.2.7"},
		{"[2001:db8:1:2:aaaa::1]:443", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"},
		{"[::ffff:192.0.2.9]:1", "192.0.2.9"},
		{"[fe80::1%eth0]:1", "fe80::/64"},
		{"not-an-ip", "not-an-ip"},
	} {
		if got := ClientKey(tc.addr); got != tc.want {
			t.Errorf("ClientKey(%q) = %q, want %q", tc.addr, got, tc.want)
		}
	}
	// Two addresses of one /64 share a counter.
	w := New(2, time.Minute, 0)
	w.Allow(ClientKey("[2001:db8::1]:1"), t0)
	w.Allow(ClientKey("[2001:db8::2]:1"), t0)
	if w.Allow(ClientKey("[2001:db8::ffff]:1"), t0) {
		t.Fatal("a third address of the same /64 got a fresh counter")
	}
}
