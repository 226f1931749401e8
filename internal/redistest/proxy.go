package redistest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy is a TCP proxy on a loopback port in front of one server. Its faults
// act on the traffic of every connection, open or new: a delay on replies, a
// black hole that forwards nothing, and a cut of every open connection.
type Proxy struct {
	// Addr is the proxy's listening address; point a client at it.
	Addr string

	target    string
	ln        net.Listener // nil while down (SetDown)
	delay     atomic.Int64 // nanoseconds added to every server->client chunk
	blackHole atomic.Bool
	dropOn    atomic.Pointer[[]byte] // armed by DropReplyAfter
	dropped   atomic.Int64
	swallowed atomic.Int64

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// NewProxy starts a proxy to target, closed when the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: proxy listen: %v", err)
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept(ln)
	t.Cleanup(p.Close)
	return p
}

// SetDelay holds every reply chunk from the server for d before passing it
// on; zero passes replies at once. Replies keep their order.
func (p *Proxy) SetDelay(d time.Duration) { p.delay.Store(int64(d)) }

// SetBlackHole, when on, makes the proxy swallow all bytes in both
// directions while keeping connections open: the client waits until its own
// timeout. New connections are accepted and swallowed too.
func (p *Proxy) SetBlackHole(on bool) { p.blackHole.Store(on) }

// DropReplyAfter arms a one-shot fault: the first request that contains
// pattern (a key, a script's SHA, a command name as sent) reaches the server
// and runs there, and from then on nothing the server sends on that
// connection reaches the client. The connection stays open, so the client
// waits for its own read timeout: a reply lost after the write was applied,
// the fault that makes a blind retry apply a write twice. Other connections,
// open or new, are not affected. An empty pattern disarms the fault.
func (p *Proxy) DropReplyAfter(pattern string) {
	if pattern == "" {
		p.dropOn.Store(nil)
		return
	}
	b := []byte(pattern)
	p.dropOn.Store(&b)
}

// Dropped reports how many connections DropReplyAfter has silenced.
func (p *Proxy) Dropped() int { return int(p.dropped.Load()) }

// Swallowed reports on how many of those connections a reply from the server
// was swallowed: the server had run the request by then.
func (p *Proxy) Swallowed() int { return int(p.swallowed.Load()) }

// CutAll resets every open connection, as a crashed peer or a middlebox would.
// New connections are still accepted.
func (p *Proxy) CutAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutLocked()
}

func (p *Proxy) cutLocked() {
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // RST, not FIN
		}
		_ = c.Close()
		delete(p.conns, c)
	}
}

// SetDown, when on, closes the proxy's listening socket and resets every
// open connection, as a server that went down: a dial is refused. Off
// listens again on the same address.
func (p *Proxy) SetDown(on bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || on == (p.ln == nil) {
		return nil
	}
	if on {
		_ = p.ln.Close()
		p.ln = nil
		p.cutLocked()
		return nil
	}
	ln, err := net.Listen("tcp", p.Addr)
	if err != nil {
		return fmt.Errorf("redistest: proxy listen again on %s: %w", p.Addr, err)
	}
	p.ln = ln
	p.wg.Add(1)
	go p.accept(ln)
	return nil
}

// Close stops the proxy and closes every connection. It is idempotent.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	if p.ln != nil {
		_ = p.ln.Close()
	}
	p.mu.Unlock()
	p.CutAll()
	p.wg.Wait()
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

func (p *Proxy) accept(ln net.Listener) {
	defer p.wg.Done()
	for {
		client, err := ln.Accept()
		if err != nil {
			return
		}
		server, err := net.DialTimeout("tcp", p.target, time.Second)
		if err != nil {
			_ = client.Close()
			continue
		}
		if !p.track(client) || !p.track(server) {
			_ = client.Close()
			_ = server.Close()
			return
		}
		deaf := new(deafness)
		p.wg.Add(2)
		go p.pipe(client, server, false, deaf)
		go p.pipe(server, client, true, deaf)
	}
}

// deafness is DropReplyAfter's state of one connection: on once the request
// went by, swallowed once a reply to it was.
type deafness struct{ on, swallowed atomic.Bool }

type chunk struct {
	data []byte
	due  time.Time
}

// pipe copies src to dst. Replies (server to client) pass through a queue so
// that each chunk is held for the delay measured from when it arrived, not
// from when the previous one left.
// deaf, shared by the two directions of one connection, is set by
// DropReplyAfter and swallows the replies.
func (p *Proxy) pipe(src, dst net.Conn, replies bool, deaf *deafness) {
	defer p.wg.Done()
	defer p.untrack(src)
	defer src.Close()
	defer dst.Close()
	queue := make(chan chunk, 1024)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for c := range queue {
			if wait := time.Until(c.due); wait > 0 {
				time.Sleep(wait)
			}
			if replies && deaf.on.Load() {
				if !deaf.swallowed.Swap(true) {
					p.swallowed.Add(1)
				}
				continue
			}
			if p.blackHole.Load() {
				continue
			}
			if _, err := dst.Write(c.data); err != nil {
				// Stop the reader, and drain so it never blocks on a full queue.
				_ = src.Close()
				for range queue {
				}
				return
			}
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			c := chunk{data: append([]byte(nil), buf[:n]...)}
			if pat := p.dropOn.Load(); !replies && pat != nil && bytes.Contains(c.data, *pat) &&
				p.dropOn.CompareAndSwap(pat, nil) {
				deaf.on.Store(true)
				p.dropped.Add(1)
			}
			if replies {
				c.due = time.Now().Add(time.Duration(p.delay.Load()))
			}
			queue <- c
		}
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				_ = dst.Close()
			}
			break
		}
	}
	close(queue)
	<-writerDone
}
