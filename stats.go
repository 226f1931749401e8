package rediskit

import (
	"bufio"
	"context"
	"math/bits"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/retry"
)

// histogram is a fixed-bucket latency histogram updated with one atomic add
// per observation: four buckets per power of two of nanoseconds, so a
// percentile read from it is at most 25 % above the true value.
type histogram struct {
	counts [64 << 2]atomic.Uint64
	sum    atomic.Int64 // nanoseconds, for a Prometheus histogram's _sum
}

func bucketOf(ns uint64) int {
	if ns < 4 {
		return int(ns)
	}
	e := bits.Len64(ns) - 1 // ns in [2^e, 2^(e+1)), e >= 2
	return e<<2 | int(ns>>(e-2)&3)
}

// bucketUpper returns the exclusive upper bound of bucket i in nanoseconds.
func bucketUpper(i int) uint64 {
	if i < 8 { // indexes 4-7 are never used: 4-7 ns land in 8-11
		return uint64(min(i, 4)) + 1
	}
	e, sub := i>>2, uint64(i&3)
	return (5 + sub) << (e - 2)
}

func (h *histogram) observe(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))].Add(1)
	h.sum.Add(int64(d))
}

// latencyBuckets are the upper bounds of the latency histogram: the usual
// Prometheus bounds for a Redis command, 50 µs to 10 s.
var latencyBuckets = [...]time.Duration{
	50 * time.Microsecond, 100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// LatencyBuckets returns the upper bounds LatencyStats.Buckets reports
// counts for, a copy the caller may keep.
func LatencyBuckets() []time.Duration { return append([]time.Duration(nil), latencyBuckets[:]...) }

// LatencyBucket is one cumulative bucket of the latency histogram.
type LatencyBucket struct {
	UpperBound time.Duration // inclusive upper bound, one of LatencyBuckets()
	Count      uint64        // calls that took at most UpperBound
}

// LatencyStats summarizes the latency of calls (a pipeline counts as one
// call). Percentiles are upper bounds of histogram buckets, at most 25 %
// above the exact value.
type LatencyStats struct {
	Count uint64        // calls observed
	P50   time.Duration // median
	P90   time.Duration
	P99   time.Duration
	Max   time.Duration // upper bound of the highest non-empty bucket
	Sum   time.Duration // total time of all calls
	// Buckets counts the calls at or under each of LatencyBuckets(),
	// cumulatively, for a Prometheus histogram. A call is counted under the
	// first bound at or above its fine bucket's upper bound, so a count can
	// lag by at most the 25 % width of one fine bucket.
	Buckets []LatencyBucket
}

func (h *histogram) snapshot() LatencyStats {
	var counts [len(h.counts)]uint64
	var total uint64
	top := -1
	for i := range h.counts {
		counts[i] = h.counts[i].Load()
		total += counts[i]
		if counts[i] > 0 {
			top = i
		}
	}
	s := LatencyStats{Count: total, Sum: time.Duration(h.sum.Load())}
	s.Buckets = make([]LatencyBucket, len(latencyBuckets))
	var cum uint64
	fine := 0
	for i, ub := range latencyBuckets {
		for ; fine < len(counts) && bucketUpper(fine) <= uint64(ub); fine++ {
			cum += counts[fine]
		}
		s.Buckets[i] = LatencyBucket{UpperBound: ub, Count: cum}
	}
	if total == 0 {
		return s
	}
	pct := func(q float64) time.Duration {
		target := uint64(q*float64(total) + 0.999999)
		var seen uint64
		for i, n := range counts {
			seen += n
			if seen >= target {
				return time.Duration(bucketUpper(i))
			}
		}
		return time.Duration(bucketUpper(top))
	}
	s.P50, s.P90, s.P99 = pct(0.50), pct(0.90), pct(0.99)
	s.Max = time.Duration(bucketUpper(top))
	return s
}

// counters are the client-side numbers kept by the stats hook.
type counters struct {
	commands  atomic.Uint64
	pipelines atomic.Uint64
	failures  atomic.Uint64
	deadlines atomic.Uint64
	latency   histogram
}

func (c *counters) observe(start time.Time, n int, err error) {
	c.latency.observe(time.Since(start))
	c.commands.Add(uint64(n))
	if err == nil {
		return
	}
	if retry.IsContext(err) {
		c.deadlines.Add(1)
		return
	}
	switch retry.Classify(err) {
	case retry.ClassTransient, retry.ClassUnavailable, retry.ClassAmbiguous:
		c.failures.Add(1)
	}
}

// ServerStats is a digest of INFO from one server, or summed across the
// masters of a cluster.
type ServerStats struct {
	UsedMemory       int64   // bytes (used_memory)
	KeyspaceHits     int64   // successful key lookups since start or CONFIG RESETSTAT
	KeyspaceMisses   int64   // failed key lookups
	HitRatio         float64 // hits / (hits + misses); 0 when both are 0
	ConnectedClients int64
	OpsPerSec        int64 // instantaneous_ops_per_sec
	EvictedKeys      int64
	ExpiredKeys      int64
	UptimeSeconds    int64 // in a sum: the smallest uptime of the masters
	Keys             int64 // keys in every database (INFO keyspace)
}

// NodeStats is the INFO digest of one master.
type NodeStats struct {
	Addr   string
	Server ServerStats
	Err    string // why INFO failed on this node; empty on success
}

// Stats is a snapshot of the client's statistics.
type Stats struct {
	// Pool is go-redis's connection pool statistics (summed over the nodes
	// of a cluster): hits, misses, timeouts, total, idle and stale
	// connections, and the waits for a free connection (WaitCount, and
	// WaitDurationNs in total; see PoolWait).
	Pool redis.PoolStats
	// Commands is the number of commands issued (each command of a pipeline
	// counts once), including the health checker's, the connection
	// handshakes' (HELLO, CLIENT SETINFO), which go-redis runs through hooks,
	// and the PINGs that wake a server when a blocking command's shortened
	// timeout ends (see the package documentation, "Deadlines").
	Commands uint64
	// Pipelines is the number of pipelines and transactions issued.
	Pipelines uint64
	// Failures is the number of calls that failed because Redis could not
	// serve them: network errors, timeouts, LOADING and the like, breaker
	// refusals, ambiguous writes. Error replies (WRONGTYPE), redis.Nil and
	// the caller's own context errors are not failures.
	Failures uint64
	// Deadlines is the number of calls that ended because the caller's
	// context expired or was cancelled: their errors match
	// context.DeadlineExceeded or context.Canceled (retry.IsContext),
	// writes left ambiguous by a deadline included. They are not Failures
	// and never count against the circuit breaker.
	Deadlines uint64
	// Latency covers every call from hook entry to return, retries included.
	Latency LatencyStats
	// Retries is the number of re-sent commands or pipelines.
	Retries uint64
	// Ambiguous is the number of writes that failed with retry.ErrAmbiguous,
	// those whose deadline passed after they were sent included.
	Ambiguous uint64
	// Breaker is the circuit breaker's current state; BreakerOpens counts
	// its openings and BreakerRejected the calls it refused.
	Breaker         BreakerState
	BreakerOpens    uint64
	BreakerRejected uint64
	// Server sums the INFO digests of Nodes (one entry per master).
	Server ServerStats
	Nodes  []NodeStats
}

// Stats returns the client-side statistics and an INFO digest from every
// master (one INFO per master, concurrently on a cluster). When INFO fails on
// some node the client-side fields are still filled in, the node's entry
// carries the error, and the returned error wraps the first failure.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	s := Stats{
		Commands:  c.counters.commands.Load(),
		Pipelines: c.counters.pipelines.Load(),
		Failures:  c.counters.failures.Load(),
		Deadlines: c.counters.deadlines.Load(),
		Latency:   c.counters.latency.snapshot(),
		Retries:   c.retry.Retries(),
		Ambiguous: c.retry.Ambiguous() + c.deadline.ambiguousCount(),
		Breaker:   c.breakers.State(),
	}
	s.BreakerOpens, s.BreakerRejected = c.breakers.counts()
	if ps := c.rdb.PoolStats(); ps != nil {
		s.Pool = *ps
	}
	var mu sync.Mutex
	var firstErr error
	collect := func(ctx context.Context, addr string, rdb redis.Cmdable) error {
		info, err := rdb.Info(ctx).Result()
		n := NodeStats{Addr: addr}
		if err != nil {
			n.Err = err.Error()
		} else {
			n.Server = parseInfo(info)
		}
		mu.Lock()
		s.Nodes = append(s.Nodes, n)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		return nil
	}
	if cc, ok := c.rdb.(*redis.ClusterClient); ok {
		if err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			return collect(ctx, m.Options().Addr, m)
		}); err != nil && firstErr == nil {
			firstErr = err
		}
	} else {
		_ = collect(ctx, c.addrLabel(), c.rdb)
	}
	sortNodes(s.Nodes, func(n NodeStats) string { return n.Addr })
	for _, n := range s.Nodes {
		if n.Err != "" {
			continue
		}
		s.Server.add(n.Server)
	}
	s.Server.ratio()
	if firstErr != nil {
		return s, errWrap("stats", firstErr)
	}
	return s, nil
}

// PoolWait returns how many times a command waited for a free pooled
// connection and the mean wait (zero when none waited): a pool too small
// for the load shows here before it shows as Pool.Timeouts.
func (s Stats) PoolWait() (count uint32, mean time.Duration) {
	if s.Pool.WaitCount == 0 {
		return 0, 0
	}
	return s.Pool.WaitCount, time.Duration(s.Pool.WaitDurationNs / int64(s.Pool.WaitCount))
}

func (a *ServerStats) add(b ServerStats) {
	first := a.UptimeSeconds == 0 && a.UsedMemory == 0
	a.UsedMemory += b.UsedMemory
	a.KeyspaceHits += b.KeyspaceHits
	a.KeyspaceMisses += b.KeyspaceMisses
	a.ConnectedClients += b.ConnectedClients
	a.OpsPerSec += b.OpsPerSec
	a.EvictedKeys += b.EvictedKeys
	a.ExpiredKeys += b.ExpiredKeys
	a.Keys += b.Keys
	if first || b.UptimeSeconds < a.UptimeSeconds {
		a.UptimeSeconds = b.UptimeSeconds
	}
}

func (a *ServerStats) ratio() {
	if t := a.KeyspaceHits + a.KeyspaceMisses; t > 0 {
		a.HitRatio = float64(a.KeyspaceHits) / float64(t)
	}
}

// parseInfo extracts the digest from an INFO reply. Missing or malformed
// fields stay zero.
func parseInfo(info string) ServerStats {
	var s ServerStats
	fields := map[string]*int64{
		"used_memory":               &s.UsedMemory,
		"keyspace_hits":             &s.KeyspaceHits,
		"keyspace_misses":           &s.KeyspaceMisses,
		"connected_clients":         &s.ConnectedClients,
		"instantaneous_ops_per_sec": &s.OpsPerSec,
		"evicted_keys":              &s.EvictedKeys,
		"expired_keys":              &s.ExpiredKeys,
		"uptime_in_seconds":         &s.UptimeSeconds,
	}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !ok {
			continue
		}
		if p := fields[k]; p != nil {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				*p = n
			}
			continue
		}
		// Keyspace lines: "db0:keys=12,expires=3,avg_ttl=0".
		if strings.HasPrefix(k, "db") {
			if keys, _, ok := strings.Cut(strings.TrimPrefix(v, "keys="), ","); ok && strings.HasPrefix(v, "keys=") {
				if n, err := strconv.ParseInt(keys, 10, 64); err == nil {
					s.Keys += n
				}
			}
		}
	}
	s.ratio()
	return s
}

// infoField returns the value of one "key:value" line of an INFO reply.
func infoField(info, key string) string {
	for line := range strings.Lines(info) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && k == key {
			return v
		}
	}
	return ""
}
