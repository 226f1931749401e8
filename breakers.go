package rediskit

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/internal/pipeline"
)

// breakers holds a client's circuit breakers: one for a standalone or
// Sentinel client, one per node for a Cluster, so that a dead master makes
// only its own slots fail fast while the healthy masters keep serving.
//
// On a Cluster the breaker hook sits on every node client (added as go-redis
// creates it), inside the retry package's node hook, so it sees the raw
// outcome of every attempt on that node, the connection handshakes
// included.
type breakers struct {
	threshold int
	cooldown  time.Duration
	onChange  func(from, to BreakerState)
	log       *slog.Logger

	mu     sync.Mutex
	byAddr map[string]*breaker // per node address ("" for a single breaker)
	gone   map[string]bool     // Cluster nodes no longer in the topology
}

func newBreakers(cfg Config) *breakers {
	return &breakers{threshold: cfg.BreakerThreshold, cooldown: cfg.BreakerCooldown, onChange: cfg.OnBreakerChange, log: cfg.logger(), byAddr: map[string]*breaker{}, gone: map[string]bool{}}
}

// install puts the breaker hook on rdb: on the client itself, or on each
// node of a Cluster. A client's single breaker is also its gate
// (pipeline.SetGate, cleared by Client.Close): the commands session and
// cache would queue behind an auto-pipelined batch are refused before they
// wait for it. A Cluster has none: go-redis picks the node, and so the
// breaker, only when the batch leaves.
func (s *breakers) install(rdb redis.UniversalClient) {
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		cc.OnNewNode(func(node *redis.Client) {
			node.AddHook(breakerHook{s.forAddr(node.Options().Addr), pinger(node)})
		})
		return
	}
	b := s.forAddr("")
	rdb.AddHook(breakerHook{b, pinger(rdb)})
	pipeline.SetGate(rdb, b.refuse)
}

// pinger returns a PING of rdb, the probe of a half-open batch.
func pinger(rdb redis.UniversalClient) func(context.Context) error {
	return func(ctx context.Context) error { return rdb.Ping(ctx).Err() }
}

// forAddr returns the breaker of a node, creating it on first use. A node
// that go-redis re-creates (after a topology change) keeps its breaker.
func (s *breakers) forAddr(addr string) *breaker {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.gone, addr)
	if b, ok := s.byAddr[addr]; ok {
		return b
	}
	b := newBreaker(s.threshold, s.cooldown, s.logChange(addr))
	s.byAddr[addr] = b
	return b
}

// retain sets the Cluster nodes of the current topology. A node that left
// it (a dead master replaced by its replica) gets no more calls, so its
// breaker would stay open for good and make State report an outage that is
// over: State leaves it out until the node is back. Its counts stay in the
// totals, which never go down.
func (s *breakers) retain(addrs []string) {
	keep := make(map[string]bool, len(addrs))
	for _, a := range addrs {
		keep[a] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for addr := range s.byAddr {
		s.gone[addr] = !keep[addr]
	}
}

// current returns the breakers of the nodes in the topology.
func (s *breakers) current() []*breaker {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*breaker, 0, len(s.byAddr))
	for addr, b := range s.byAddr {
		if !s.gone[addr] {
			out = append(out, b)
		}
	}
	return out
}

// State is the most severe state of the breakers of the nodes in the
// topology: open if one is open, else half-open if one is, else closed.
func (s *breakers) State() BreakerState {
	st := BreakerClosed
	for _, b := range s.current() {
		switch b.State() {
		case BreakerOpen:
			return BreakerOpen
		case BreakerHalfOpen:
			st = BreakerHalfOpen
		}
	}
	return st
}

// counts returns the openings and refusals summed over every breaker, past
// nodes included.
func (s *breakers) counts() (opens, rejected uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.byAddr {
		opens += b.opens.Load()
		rejected += b.rejected.Load()
	}
	return opens, rejected
}

// logChange returns the change callback of the breaker of addr: it logs
// the change (opening at Warn: commands now fail fast; half-open and
// closed at Info: the breaker is probing, or recovered) and calls
// Config.OnBreakerChange.
func (s *breakers) logChange(addr string) func(from, to BreakerState) {
	return func(from, to BreakerState) {
		level := slog.LevelInfo
		if to == BreakerOpen {
			level = slog.LevelWarn
		}
		attrs := []slog.Attr{slog.String("component", "rediskit"),
			slog.String("from", from.String()), slog.String("to", to.String())}
		if addr != "" {
			attrs = append(attrs, slog.String("node", addr))
		}
		s.log.LogAttrs(context.Background(), level, "rediskit: circuit breaker "+to.String(), attrs...)
		if s.onChange != nil {
			s.onChange(from, to)
		}
	}
}
