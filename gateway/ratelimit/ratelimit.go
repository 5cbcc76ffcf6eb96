// Package ratelimit limits attempts per client in a sliding window, with a
// memory bound that can never free a blocked client: under a flood of new
// clients it evicts the clients idle longest that are not blocked, and
// when every tracked client is blocked it refuses new ones rather than
// forget an attacker (SPEC 10).
package ratelimit

import (
	"container/list"
	"net"
	"net/netip"
	"sync"
	"time"
)

// DefaultMaxClients bounds how many clients a Window tracks.
const DefaultMaxClients = 100_000

// Window allows each client at most Limit attempts in any Period.
type Window struct {
	limit  int
	period time.Duration
	max    int

	mu      sync.Mutex
	clients map[string]*list.Element
	// idle orders clients by their last attempt, idle longest first.
	idle *list.List
}

type client struct {
	key      string
	attempts []time.Time // oldest first, all within the period at the last prune
}

// New returns a window of limit attempts per period, tracking at most
// maxClients clients (<= 0: DefaultMaxClients).
func New(limit int, period time.Duration, maxClients int) *Window {
	if maxClients <= 0 {
		maxClients = DefaultMaxClients
	}
	return &Window{limit: limit, period: period, max: maxClients,
		clients: map[string]*list.Element{}, idle: list.New()}
}

// Allow records an attempt by key at now unless key already has Limit
// attempts in the window; it reports whether the attempt may go on.
// Recording before the attempt is checked makes concurrent attempts
// count too.
func (w *Window) Allow(key string, now time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	el, ok := w.clients[key]
	if !ok {
		if len(w.clients) >= w.max && !w.evict(now) {
			return false // every tracked client is blocked: refuse, forget no one
		}
		el = w.idle.PushBack(&client{key: key})
		w.clients[key] = el
	}
	c := el.Value.(*client)
	if c.blocked(now, w.period, w.limit) {
		return false
	}
	c.attempts = append(c.attempts, now)
	w.idle.MoveToBack(el)
	return true
}

// Blocked reports whether key has no attempt left at now (for tests and
// diagnostics; Allow is the check).
func (w *Window) Blocked(key string, now time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	el, ok := w.clients[key]
	return ok && el.Value.(*client).blocked(now, w.period, w.limit)
}

// Len returns how many clients are tracked (for tests and diagnostics).
func (w *Window) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.clients)
}

// evictScan bounds the work of one eviction.
const evictScan = 256

// evict drops the client idle longest that is not blocked, looking at no
// more than evictScan clients; it reports whether it dropped one.
func (w *Window) evict(now time.Time) bool {
	el := w.idle.Front()
	for i := 0; el != nil && i < evictScan; i++ {
		c := el.Value.(*client)
		if !c.blocked(now, w.period, w.limit) {
			w.idle.Remove(el)
			delete(w.clients, c.key)
			return true
		}
		el = el.Next()
	}
	return false
}

func (c *client) prune(now time.Time, period time.Duration) {
	i := 0
	for i < len(c.attempts) && now.Sub(c.attempts[i]) >= period {
		i++
	}
	c.attempts = c.attempts[i:]
}

func (c *client) blocked(now time.Time, period time.Duration, limit int) bool {
	c.prune(now, period)
	return len(c.attempts) >= limit
}

// ClientKey is the limiter key of a client address ("host" or
// "host:port"): the address itself for IPv4, its /64 network for IPv6
// (one subscriber usually holds a whole /64), the text as given when it is
// no IP address.
func ClientKey(addr string) string {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is4() {
		return ip.String()
	}
	p, _ := ip.WithZone("").Prefix(64)
	return p.String()
}
