package cache

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Lease events published on Cache.channel: one status byte, then the stored
// key. A process waiting for another's lease listens on one subscription per
// Cache (started at its first wait) instead of polling.
const (
	evStored   byte = 'o' // the value was stored
	evFailed   byte = 'e' // the loader failed; waiters get ErrRemoteLoad
	evNotFound byte = 'n' // the loader said not found; waiters get ErrNotFound
	evReleased byte = 'r' // a lease whose acquisition reply was lost was handed back: re-check
)

// hub dispatches lease events to local waiters.
type hub struct {
	mu      sync.Mutex
	waiters map[string]map[chan byte]struct{}
	ps      *redis.PubSub
	ready   bool
	closed  bool
}

func (h *hub) init() { h.waiters = make(map[string]map[chan byte]struct{}) }

// register returns a channel that receives the next event for rk.
func (h *hub) register(rk string) chan byte {
	ch := make(chan byte, 1)
	h.mu.Lock()
	m := h.waiters[rk]
	if m == nil {
		m = make(map[chan byte]struct{})
		h.waiters[rk] = m
	}
	m[ch] = struct{}{}
	h.mu.Unlock()
	return ch
}

func (h *hub) unregister(rk string, ch chan byte) {
	h.mu.Lock()
	if m := h.waiters[rk]; m != nil {
		delete(m, ch)
		if len(m) == 0 {
			delete(h.waiters, rk)
		}
	}
	h.mu.Unlock()
}

func (h *hub) dispatch(payload string) {
	if len(payload) < 1 {
		return
	}
	ev, rk := payload[0], payload[1:]
	h.mu.Lock()
	for ch := range h.waiters[rk] {
		select {
		case ch <- ev:
		default:
		}
	}
	h.mu.Unlock()
}

func (h *hub) close() {
	h.mu.Lock()
	h.closed = true
	ps := h.ps
	h.mu.Unlock()
	if ps != nil {
		_ = ps.Close()
	}
}

// subscribe makes sure the lease-event subscription is confirmed by the
// server, so an event published after it returns nil is delivered. On error
// the waiter falls back to polling.
func (c *Cache) subscribe(ctx context.Context) error {
	h := &c.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ready || h.closed {
		return nil
	}
	ps := c.rdb.Subscribe(c.life.ctx, c.channel)
	if _, err := ps.Receive(ctx); err != nil { // the subscription confirmation
		_ = ps.Close()
		return err
	}
	if !c.life.goOwned(func() { c.listen(ps) }) {
		_ = ps.Close()
		return ErrClosed
	}
	h.ps, h.ready = ps, true
	return nil
}

// listen delivers events until the subscription is closed. go-redis
// reconnects and resubscribes by itself; events lost meanwhile are covered
// by the waiters' fallback poll.
func (c *Cache) listen(ps *redis.PubSub) {
	for {
		msg, err := ps.ReceiveMessage(c.life.ctx)
		if err != nil {
			if c.life.ctx.Err() != nil || err == redis.ErrClosed {
				return
			}
			select {
			case <-c.life.ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		c.hub.dispatch(msg.Payload)
	}
}
