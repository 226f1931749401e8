package rediskit

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/retry"
)

// Status is the overall health verdict.
type Status string

const (
	// StatusUp means every node answered the last check.
	StatusUp Status = "up"
	// StatusDegraded means some cluster nodes did not answer, others did.
	StatusDegraded Status = "degraded"
	// StatusDown means no node answered the last check.
	StatusDown Status = "down"
)

// NodeHealth is the result of the last check of one node.
type NodeHealth struct {
	Addr    string        // address of the node ("master via sentinels" for Sentinel)
	Role    string        // "master" or "slave", from INFO replication
	Version string        // redis_version from INFO server
	Up      bool          // the node answered PING
	Latency time.Duration // round trip of the check (PING + INFO)
	Err     string        // why the check failed; empty when Up
	// MaxmemoryPolicy is maxmemory_policy from INFO memory ("noeviction",
	// "allkeys-lru", ...), or "unknown" when INFO is refused (an ACL, a
	// renamed command, a proxy); Maxmemory is maxmemory in bytes (0: no
	// limit, -1: unknown). See EvictionWarning.
	MaxmemoryPolicy string
	Maxmemory       int64
}

// Health is a health report: the cached result of the last background check.
type Health struct {
	Status    Status
	CheckedAt time.Time     // when the reported check ran
	Latency   time.Duration // the slowest node's round trip
	// LastError is the most recent check failure, kept after recovery;
	// LastErrorAt is when it was seen (zero when there never was one).
	LastError   string
	LastErrorAt time.Time
	Breaker     BreakerState
	Nodes       []NodeHealth
	// Warnings are problems that do not make a node unhealthy: a node
	// whose eviction policy can evict session keys, or whose policy cannot
	// be read (see EvictionWarning). They never change Status.
	Warnings []string
}

// Healthy reports whether Status is StatusUp.
func (h Health) Healthy() bool { return h.Status == StatusUp }

// healthChecker PINGs every node each interval in one goroutine, owned by the
// Client and stopped by Close.
type healthChecker struct {
	c        *Client
	interval time.Duration
	cancel   context.CancelFunc
	done     chan struct{}

	mu          sync.Mutex // guards last, lastErr, lastErrAt
	last        Health
	checkMu     sync.Mutex // one check at a time
	lastErr     string
	lastErrAt   time.Time
	initialized bool
}

func startHealth(c *Client) *healthChecker {
	h := &healthChecker{c: c, interval: c.cfg.HealthCheckInterval, done: make(chan struct{})}
	if h.interval <= 0 {
		close(h.done)
		return h
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go h.loop(ctx)
	return h
}

func (h *healthChecker) stop() {
	if h.cancel != nil {
		h.cancel()
	}
	<-h.done
}

func (h *healthChecker) loop(ctx context.Context) {
	defer close(h.done)
	t := time.NewTicker(h.interval)
	defer t.Stop()
	h.run(ctx, true) // a Health call may have checked already
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h.run(ctx, false)
		}
	}
}

// cached returns the last report if it is fresh: younger than two
// intervals (one interval plus the time a check may take).
func (h *healthChecker) cached() (Health, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.initialized && h.interval > 0 && time.Since(h.last.CheckedAt) < 2*h.interval {
		rep := h.last
		rep.Breaker = h.c.breakers.State()
		return rep, true
	}
	return Health{}, false
}

// run performs one check bounded by the interval, so checks never pile up.
// With onlyIfStale, a fresh report made meanwhile by another caller is
// returned instead: concurrent Health calls on a stale cache share a check.
func (h *healthChecker) run(ctx context.Context, onlyIfStale bool) Health {
	h.checkMu.Lock()
	defer h.checkMu.Unlock()
	if onlyIfStale {
		if rep, ok := h.cached(); ok {
			return rep
		}
	}
	timeout := h.interval
	if timeout <= 0 {
		timeout = h.c.cfg.DialTimeout + h.c.cfg.ReadTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rep := h.check(ctx)
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, n := range rep.Nodes {
		if n.Err != "" {
			h.lastErr, h.lastErrAt = n.Addr+": "+n.Err, rep.CheckedAt
			break
		}
	}
	rep.LastError, rep.LastErrorAt = h.lastErr, h.lastErrAt
	h.logChange(ctx, rep)
	h.last, h.initialized = rep, true
	return rep
}

func (h *healthChecker) check(ctx context.Context) Health {
	// Health probes fail fast rather than retry: a blip shows as a blip.
	// Their deadline is rediskit's, not a caller's: a probe that runs out of
	// time is a server fault (see ownDeadline).
	ctx = ownDeadline(retry.WithNoRetry(ctx))
	rep := Health{CheckedAt: time.Now()}
	var nodes []NodeHealth
	if cc, ok := h.c.rdb.(*redis.ClusterClient); ok {
		var mu sync.Mutex
		err := cc.ForEachShard(ctx, func(ctx context.Context, n *redis.Client) error {
			nh := probe(ctx, n, n.Options().Addr)
			mu.Lock()
			nodes = append(nodes, nh)
			mu.Unlock()
			return nil
		})
		if err != nil && len(nodes) == 0 {
			nodes = append(nodes, NodeHealth{Addr: h.c.addrLabel(), Err: err.Error()})
		} else if err == nil {
			// Nodes that left the topology (a dead master replaced by
			// its replica) take their breakers with them.
			addrs := make([]string, len(nodes))
			for i, n := range nodes {
				addrs[i] = n.Addr
			}
			h.c.breakers.retain(addrs)
		}
	} else {
		nodes = append(nodes, probe(ctx, h.c.rdb, h.c.addrLabel()))
	}
	sortNodes(nodes, func(n NodeHealth) string { return n.Addr })
	up := 0
	for _, n := range nodes {
		if n.Up {
			up++
		}
		rep.Latency = max(rep.Latency, n.Latency)
	}
	switch {
	case up == len(nodes):
		rep.Status = StatusUp
	case up == 0:
		rep.Status = StatusDown
	default:
		rep.Status = StatusDegraded
	}
	rep.Nodes = nodes
	for _, n := range nodes {
		if w := EvictionWarning(n); w != "" {
			rep.Warnings = append(rep.Warnings, w)
		}
	}
	rep.Breaker = h.c.breakers.State()
	return rep
}

// probe sends PING and INFO server, replication and memory in one round
// trip.
func probe(ctx context.Context, rdb redis.Cmdable, addr string) NodeHealth {
	n := NodeHealth{Addr: addr}
	start := time.Now()
	pipe := rdb.Pipeline()
	ping := pipe.Ping(ctx)
	server := pipe.Info(ctx, "server")
	repl := pipe.Info(ctx, "replication")
	mem := pipe.Info(ctx, "memory")
	_, _ = pipe.Exec(ctx)
	n.Latency = time.Since(start)
	if err := ping.Err(); err != nil {
		n.Err = err.Error()
		return n
	}
	n.Up = true
	n.Version = infoField(server.Val(), "redis_version")
	n.Role = infoField(repl.Val(), "role")
	n.MaxmemoryPolicy, n.Maxmemory = policyUnknown, -1
	if p := infoField(mem.Val(), "maxmemory_policy"); p != "" {
		n.MaxmemoryPolicy = p
	}
	if v, err := strconv.ParseInt(infoField(mem.Val(), "maxmemory"), 10, 64); err == nil {
		n.Maxmemory = v
	}
	return n
}

// Health returns the last background check while it is fresh (younger than
// two intervals), so a health endpoint under load costs Redis nothing. When
// the report is stale or missing (checker off, or just started) Health runs
// a check now, bounded by ctx; concurrent callers share it. On standalone
// and Sentinel the check goes through the circuit breaker: while it is open
// the report says down, and once the cool-down has passed the check (a
// pipeline) starts the breaker's background probe, which can close it.
func (c *Client) Health(ctx context.Context) Health {
	if rep, ok := c.health.cached(); ok {
		return rep
	}
	return c.health.run(ctx, true)
}

// logChange logs a change of the overall status: down or degraded at Warn,
// up again at Info. The first report is not a change.
func (h *healthChecker) logChange(ctx context.Context, rep Health) {
	// A warning (a maxmemory-policy that can evict sessions) is logged at
	// Warn when it first appears, the first report after Open included,
	// and not again while it stays (TestOpenLogsEvictionWarning).
	for _, w := range rep.Warnings {
		if !h.initialized || !slices.Contains(h.last.Warnings, w) {
			h.c.log.LogAttrs(ctx, slog.LevelWarn, "rediskit: "+w, slog.String("component", "rediskit"))
		}
	}
	if !h.initialized || rep.Status == h.last.Status {
		return
	}
	level := slog.LevelWarn
	if rep.Status == StatusUp {
		level = slog.LevelInfo
	}
	h.c.log.LogAttrs(ctx, level, "rediskit: health "+string(rep.Status), slog.String("component", "rediskit"),
		slog.String("from", string(h.last.Status)), slog.String("last_error", rep.LastError))
}
