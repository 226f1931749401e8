package loadtest

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// entry is a session Redis acknowledged: its current ID and the value of n
// the last acknowledged update wrote. amb marks an update whose outcome is
// unknown, so the stored n is n or n+1.
type entry struct {
	id  string
	n   int64
	amb bool
}

// maxDead bounds the deleted IDs kept for the resurrection audit.
const maxDead = 20000

// ledger is what the workload knows Redis holds. An operation takes an
// entry out (so no two operations touch one session at once: the ledger's
// view of it stays exact) and puts it back, or drops it when the session is
// gone or its state unknown.
type ledger struct {
	mu        sync.Mutex
	live      []*entry
	held      int // entries taken and not yet put back or dropped
	maxLive   int
	dead      []string // IDs whose delete or rotation Redis acknowledged
	deadTotal int64
	uncertain atomic.Int64 // sessions dropped after an ambiguous create, rotate or delete
}

func (l *ledger) full() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.live)+l.held >= l.maxLive
}

func (l *ledger) add(e *entry) {
	l.mu.Lock()
	l.live = append(l.live, e)
	l.mu.Unlock()
}

// take removes a random live entry and returns it, or nil when there is none.
func (l *ledger) take(rng *rand.Rand) *entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.live)
	if n == 0 {
		return nil
	}
	i := rng.IntN(n)
	e := l.live[i]
	l.live[i] = l.live[n-1]
	l.live[n-1] = nil
	l.live = l.live[:n-1]
	l.held++
	return e
}

func (l *ledger) put(e *entry) {
	l.mu.Lock()
	l.live = append(l.live, e)
	l.held--
	l.mu.Unlock()
}

func (l *ledger) drop() {
	l.mu.Lock()
	l.held--
	l.mu.Unlock()
}

func (l *ledger) deleted(id string) {
	l.mu.Lock()
	l.deadTotal++
	if len(l.dead) < maxDead {
		l.dead = append(l.dead, id)
	}
	l.mu.Unlock()
}

// LiveSession is a session the ledger holds as live after Run: Redis
// acknowledged its creation (and rotation to ID), and the last acknowledged
// update wrote N to its value "n" (N or N+1 when Ambiguous).
type LiveSession struct {
	ID        string
	N         int64
	Ambiguous bool
}

// Live returns the sessions the ledger holds as live. Call it after Run.
func (d *Driver) Live() []LiveSession {
	d.ledger.mu.Lock()
	defer d.ledger.mu.Unlock()
	out := make([]LiveSession, len(d.ledger.live))
	for i, e := range d.ledger.live {
		out[i] = LiveSession{ID: e.id, N: e.n, Ambiguous: e.amb}
	}
	return out
}

// Deleted returns IDs whose delete or rotation Redis acknowledged (at most
// the first 20,000). Call it after Run.
func (d *Driver) Deleted() []string {
	d.ledger.mu.Lock()
	defer d.ledger.mu.Unlock()
	return append([]string(nil), d.ledger.dead...)
}

// CounterLedger is what the workload did to one counter: Acked calls of
// Sign (+1 Incr, -1 Decr) acknowledged, Ambiguous ones with an unknown
// outcome, Failed ones that were not applied.
type CounterLedger struct {
	Key                      string
	Sign                     int64
	Acked, Ambiguous, Failed int64
}

// Counters returns the counter ledger. Call it after Run.
func (d *Driver) Counters() []CounterLedger {
	out := make([]CounterLedger, len(d.counters))
	for i := range d.counters {
		c := &d.counters[i]
		out[i] = CounterLedger{Key: c.key, Sign: c.sign, Acked: c.acked.Load(), Ambiguous: c.ambig.Load(), Failed: c.failed.Load()}
	}
	return out
}
