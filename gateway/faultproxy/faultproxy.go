// Package faultproxy is a TCP proxy for fault-injection tests: put it in
// front of a real Vault dev server, upstream API or OAuth provider, and
// switch it between passing traffic, delaying it, blackholing it (accept
// connections and never answer, as a network partition does) and
// resetting connections. A mode change applies to open connections too,
// so a pooled keep-alive connection hangs or breaks just as a new one
// does.
package faultproxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// Mode is what the proxy does with traffic.
type Mode int

// The proxy's modes.
const (
	// Pass forwards bytes both ways.
	Pass Mode = iota
	// Delay forwards each chunk after the configured delay.
	Delay
	// Blackhole accepts connections and reads what is sent, but forwards
	// nothing in either direction and never closes.
	Blackhole
	// Reset closes every connection with a TCP RST as soon as it opens.
	Reset
)

// Proxy forwards TCP connections from a loopback address to a target.
type Proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	mode  Mode
	delay time.Duration
	conns map[net.Conn]struct{}
	// changed is closed and replaced on every mode change, waking pumps
	// that wait in Blackhole or Delay.
	changed chan struct{}
	closed  bool
	wg      sync.WaitGroup

	accepted int
}

// Start listens on a free loopback port and forwards to target
// ("host:port").
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}, changed: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's listening address, "127.0.0.1:port".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL is scheme://Addr().
func (p *Proxy) URL(scheme string) string { return scheme + "://" + p.Addr() }

// Accepted returns how many connections the proxy has accepted.
func (p *Proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// Pass forwards traffic again.
func (p *Proxy) Pass() { p.set(Pass, 0) }

// Delay holds every chunk for d before forwarding it.
func (p *Proxy) Delay(d time.Duration) { p.set(Delay, d) }

// Blackhole stops forwarding on every connection, open and new, without
// closing any: peers wait until their own timeouts.
func (p *Proxy) Blackhole() { p.set(Blackhole, 0) }

// Reset resets every open connection and each new one.
func (p *Proxy) Reset() {
	p.set(Reset, 0)
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		reset(c)
	}
}

func (p *Proxy) set(m Mode, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode, p.delay = m, d
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *Proxy) state() (Mode, time.Duration, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode, p.delay, p.changed
}

// Close stops listening and closes every connection.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	_ = p.ln.Close()
	for c := range p.conns {
		_ = c.Close()
	}
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
	_ = c.Close()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.accepted++
		mode := p.mode
		p.mu.Unlock()
		if mode == Reset {
			reset(c)
			continue
		}
		if !p.track(c) {
			return
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	defer p.untrack(client)
	var server net.Conn
	for server == nil {
		mode, _, changed := p.state()
		switch mode {
		case Reset:
			reset(client)
			return
		case Blackhole:
			// Dial nothing; swallow what the client sends until the mode
			// changes or the client goes.
			if !p.swallow(client, changed) {
				return
			}
			continue
		}
		s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			reset(client)
			return
		}
		server = s
	}
	if !p.track(server) {
		return
	}
	defer p.untrack(server)
	done := make(chan struct{}, 2)
	go func() { p.pump(server, client); done <- struct{}{} }()
	go func() { p.pump(client, server); done <- struct{}{} }()
	<-done
	_ = client.Close()
	_ = server.Close()
	<-done
}

// swallow reads and drops from c until the mode changes (true) or c fails
// (false).
func (p *Proxy) swallow(c net.Conn, changed chan struct{}) bool {
	buf := make([]byte, 32<<10)
	for {
		select {
		case <-changed:
			return true
		default:
		}
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, err := c.Read(buf)
		var ne net.Error
		if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
			return false
		}
	}
}

// pump copies src to dst chunk by chunk, applying the mode to each chunk.
func (p *Proxy) pump(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.forward(dst, src, buf[:n]) {
			return
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				if tc, ok := dst.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
				}
			}
			return
		}
	}
}

// forward writes chunk to dst as the current mode says; false ends the
// connection.
func (p *Proxy) forward(dst, src net.Conn, chunk []byte) bool {
	for {
		mode, d, changed := p.state()
		switch mode {
		case Pass:
			_, err := dst.Write(chunk)
			return err == nil
		case Delay:
			select {
			case <-time.After(d):
				_, err := dst.Write(chunk)
				return err == nil
			case <-changed:
				continue
			}
		case Blackhole:
			// Hold the chunk until the mode changes; the peers see a
			// connection that never answers.
			<-changed
			p.mu.Lock()
			closed := p.closed
			p.mu.Unlock()
			if closed {
				return false
			}
			continue
		default: // Reset
			reset(src)
			reset(dst)
			return false
		}
	}
}

// reset closes c with SO_LINGER 0, so the peer gets a RST.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}
