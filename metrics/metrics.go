// Package metrics exports rediskit's statistics as Prometheus metrics.
//
// Each collector reads a Stats snapshot when Prometheus scrapes, through a
// one-method interface declared here, so any service that uses rediskit can
// register the collectors in its own registry:
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(
//		metrics.NewClientCollector(client),          // *rediskit.Client
//		metrics.NewCacheCollector("products", c),    // *cache.Cache
//		metrics.NewSessionCollector(store),          // *session.Store
//	)
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// Scrapes cost Redis what the Stats methods cost: one INFO per master for the
// client, one SCAN pass per master for sessions (bounded by ScrapeTimeout).
// The cache collector reads only in-process counters and INFO-free figures.
package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rediskit/rediskit"
	"github.com/rediskit/rediskit/cache"
	"github.com/rediskit/rediskit/session"
)

// ScrapeTimeout bounds the Redis calls one collector makes per scrape.
const ScrapeTimeout = 5 * time.Second

const namespace = "rediskit"

// ClientStats is what NewClientCollector reads; *rediskit.Client has it.
type ClientStats interface {
	Stats(ctx context.Context) (rediskit.Stats, error)
}

// CacheCounters is what NewCacheCollector reads; *cache.Cache has it.
type CacheCounters interface {
	LocalStats() cache.Stats
}

// NearCounters is what NewCacheCollector reads of a near tier, when its
// source has one; *cache.Cache has it.
type NearCounters interface {
	NearStats() cache.NearStats
}

// SessionStats is what NewSessionCollector reads; *session.Store has it.
type SessionStats interface {
	Stats(ctx context.Context) (session.Stats, error)
}

func desc(sub, name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, sub, name), help, labels, nil)
}

// clientCollector exports connection-layer statistics.
type clientCollector struct {
	src ClientStats

	commands, pipelines, failures, retries, ambiguous *prometheus.Desc
	deadlines, latency                                *prometheus.Desc
	breakerState, breakerOpens, breakerRejected       *prometheus.Desc
	poolHits, poolMisses, poolTimeouts                *prometheus.Desc
	poolTotal, poolIdle, poolStale                    *prometheus.Desc
	poolWaits, poolWaitSeconds                        *prometheus.Desc
	usedMemory, keyspaceHits, keyspaceMisses          *prometheus.Desc
	clients, opsPerSec, evicted, expired              *prometheus.Desc
	up, scrapeErr                                     *prometheus.Desc
}

// NewClientCollector returns a collector of the connection layer's
// statistics: commands, errors, calls ended by the caller's deadline,
// retries, ambiguous writes, the command latency histogram, breaker state,
// pool gauges and waits and, per master, an INFO digest.
func NewClientCollector(src ClientStats) prometheus.Collector {
	node := []string{"node"}
	return &clientCollector{
		src:             src,
		commands:        desc("client", "commands_total", "Commands issued (each command of a pipeline counts once)."),
		pipelines:       desc("client", "pipelines_total", "Pipelines and transactions issued."),
		failures:        desc("client", "failures_total", "Calls Redis could not serve: network errors, timeouts, LOADING, breaker refusals, ambiguous writes."),
		retries:         desc("client", "retries_total", "Commands or pipelines re-sent by the retry policy."),
		ambiguous:       desc("client", "ambiguous_writes_total", "Non-idempotent writes whose outcome was unknown and that were not re-sent."),
		deadlines:       desc("client", "deadlines_total", "Calls ended by the caller's context (deadline or cancellation); not failures."),
		latency:         desc("client", "command_duration_seconds", "Latency of calls from the first attempt to the last reply, retries included."),
		breakerState:    desc("breaker", "state", "Circuit breaker state: 0 closed, 1 open, 2 half-open."),
		breakerOpens:    desc("breaker", "opens_total", "Times the circuit breaker opened."),
		breakerRejected: desc("breaker", "rejected_total", "Calls refused by the open circuit breaker."),
		poolHits:        desc("pool", "hits_total", "Times a free connection was found in the pool."),
		poolMisses:      desc("pool", "misses_total", "Times no free connection was in the pool."),
		poolTimeouts:    desc("pool", "timeouts_total", "Times waiting for a connection timed out."),
		poolTotal:       desc("pool", "connections", "Connections in the pool."),
		poolIdle:        desc("pool", "idle_connections", "Idle connections in the pool."),
		poolStale:       desc("pool", "stale_connections_total", "Stale connections removed from the pool."),
		poolWaits:       desc("pool", "waits_total", "Times a command waited for a free connection."),
		poolWaitSeconds: desc("pool", "wait_seconds_total", "Time spent waiting for a free connection."),
		usedMemory:      desc("server", "used_memory_bytes", "INFO used_memory of a master.", node...),
		keyspaceHits:    desc("server", "keyspace_hits_total", "INFO keyspace_hits of a master.", node...),
		keyspaceMisses:  desc("server", "keyspace_misses_total", "INFO keyspace_misses of a master.", node...),
		clients:         desc("server", "connected_clients", "INFO connected_clients of a master.", node...),
		opsPerSec:       desc("server", "ops_per_second", "INFO instantaneous_ops_per_sec of a master.", node...),
		evicted:         desc("server", "evicted_keys_total", "INFO evicted_keys of a master.", node...),
		expired:         desc("server", "expired_keys_total", "INFO expired_keys of a master.", node...),
		up:              desc("server", "up", "1 when the master answered INFO at this scrape.", node...),
		scrapeErr:       desc("client", "scrape_error", "1 when reading the statistics failed in part at this scrape."),
	}
}

// Describe sends the descriptors without reading any statistics, so that
// registering a collector never touches Redis.
func (c *clientCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.commands, c.pipelines, c.failures, c.retries, c.ambiguous, c.deadlines, c.latency,
		c.breakerState, c.breakerOpens, c.breakerRejected,
		c.poolHits, c.poolMisses, c.poolTimeouts, c.poolTotal, c.poolIdle, c.poolStale, c.poolWaits, c.poolWaitSeconds,
		c.usedMemory, c.keyspaceHits, c.keyspaceMisses, c.clients, c.opsPerSec, c.evicted, c.expired,
		c.up, c.scrapeErr,
	} {
		ch <- d
	}
}

func (c *clientCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), ScrapeTimeout)
	defer cancel()
	s, err := c.src.Stats(ctx)
	counter := func(d *prometheus.Desc, v uint64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), lv...)
	}
	gauge := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
	}
	counter(c.commands, s.Commands)
	counter(c.pipelines, s.Pipelines)
	counter(c.failures, s.Failures)
	counter(c.retries, s.Retries)
	counter(c.ambiguous, s.Ambiguous)
	counter(c.deadlines, s.Deadlines)
	buckets := make(map[float64]uint64, len(s.Latency.Buckets))
	for _, b := range s.Latency.Buckets {
		buckets[b.UpperBound.Seconds()] = b.Count
	}
	ch <- prometheus.MustNewConstHistogram(c.latency, s.Latency.Count, s.Latency.Sum.Seconds(), buckets)
	gauge(c.breakerState, float64(s.Breaker))
	counter(c.breakerOpens, s.BreakerOpens)
	counter(c.breakerRejected, s.BreakerRejected)
	counter(c.poolHits, uint64(s.Pool.Hits))
	counter(c.poolMisses, uint64(s.Pool.Misses))
	counter(c.poolTimeouts, uint64(s.Pool.Timeouts))
	gauge(c.poolTotal, float64(s.Pool.TotalConns))
	gauge(c.poolIdle, float64(s.Pool.IdleConns))
	counter(c.poolStale, uint64(s.Pool.StaleConns))
	counter(c.poolWaits, uint64(s.Pool.WaitCount))
	ch <- prometheus.MustNewConstMetric(c.poolWaitSeconds, prometheus.CounterValue, time.Duration(s.Pool.WaitDurationNs).Seconds())
	for _, n := range s.Nodes {
		if n.Err != "" {
			gauge(c.up, 0, n.Addr)
			continue
		}
		gauge(c.up, 1, n.Addr)
		gauge(c.usedMemory, float64(n.Server.UsedMemory), n.Addr)
		counter(c.keyspaceHits, uint64(n.Server.KeyspaceHits), n.Addr)
		counter(c.keyspaceMisses, uint64(n.Server.KeyspaceMisses), n.Addr)
		gauge(c.clients, float64(n.Server.ConnectedClients), n.Addr)
		gauge(c.opsPerSec, float64(n.Server.OpsPerSec), n.Addr)
		counter(c.evicted, uint64(n.Server.EvictedKeys), n.Addr)
		counter(c.expired, uint64(n.Server.ExpiredKeys), n.Addr)
	}
	gauge(c.scrapeErr, boolFloat(err != nil))
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// cacheCollector exports one cache's in-process counters.
type cacheCollector struct {
	src CacheCounters

	hits, misses, loads, dedup, loadErrors, loadSeconds *prometheus.Desc
	stale, leaseWaits, decodeFailures                   *prometheus.Desc

	// near is the source's near tier, nil without one; its descriptors
	// follow.
	near                                             NearCounters
	nearHits, nearNegHits, nearMisses, nearFills     *prometheus.Desc
	nearNegFills, nearEvictions, nearInvalidations   *prometheus.Desc
	nearFlushes, nearEntries, nearBytes, nearServing *prometheus.Desc
}

// NewCacheCollector returns a collector of a cache's counters (hits,
// misses, loads, deduplicated loads, loader errors and time, stale values
// served, lease waits, decode failures), labelled cache=name. It reads no
// Redis at scrape time; register one per cache, each with its own name.
//
// When src also has NearStats (a *cache.Cache) and a near tier
// (cache.Options.Near: its mode is not NearDisabled when the collector is
// made), the near tier's counters are exported too, as
// rediskit_cache_near_*: hits, negative hits, misses, fills, negative
// fills, evictions, invalidations, flushes, and the gauges entries, bytes
// and serving (TestCacheCollectorNearTier).
func NewCacheCollector(name string, src CacheCounters) prometheus.Collector {
	c := newCacheCollector(name, src)
	desc := cacheDesc(name)
	if n, ok := src.(NearCounters); ok && n.NearStats().Mode != cache.NearDisabled {
		c.near = n
		c.nearHits = desc("cache", "near_hits_total", "Typed reads answered from process memory with a value.")
		c.nearNegHits = desc("cache", "near_negative_hits_total", "Typed reads answered from process memory with \"not found\" (a negative entry).")
		c.nearMisses = desc("cache", "near_misses_total", "Typed reads that went to Redis while the near tier was on.")
		c.nearFills = desc("cache", "near_fills_total", "Entries put in the near tier by reads of Redis, negative entries included.")
		c.nearNegFills = desc("cache", "near_negative_fills_total", "Negative entries put in the near tier.")
		c.nearEvictions = desc("cache", "near_evictions_total", "Near-tier entries evicted by the size bounds or their expiry.")
		c.nearInvalidations = desc("cache", "near_invalidations_total", "Keys named by invalidation messages from Redis.")
		c.nearFlushes = desc("cache", "near_flushes_total", "Times every near-tier entry was dropped (tracking lost, FLUSHALL, topology change).")
		c.nearEntries = desc("cache", "near_entries", "Near-tier entries (an estimate).")
		c.nearBytes = desc("cache", "near_bytes", "Weight charged for the near-tier entries, in bytes.")
		c.nearServing = desc("cache", "near_serving", "1 while the near tier serves local entries.")
	}
	return c
}

// cacheDesc returns a descriptor maker for the cache name. The name is a
// constant label, so collectors of several caches have distinct
// descriptors and register side by side in one registry
// (TestCacheCollectorNearTier registers two).
func cacheDesc(name string) func(sub, metric, help string) *prometheus.Desc {
	return func(sub, metric, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, sub, metric), help, nil, prometheus.Labels{"cache": name})
	}
}

func newCacheCollector(name string, src CacheCounters) *cacheCollector {
	desc := cacheDesc(name)
	return &cacheCollector{
		src:            src,
		hits:           desc("cache", "hits_total", "Reads answered from Redis, stale values included."),
		misses:         desc("cache", "misses_total", "Reads that found nothing usable."),
		loads:          desc("cache", "loads_total", "Loader calls in this process."),
		dedup:          desc("cache", "deduplicated_loads_total", "Misses that shared a load already running instead of starting one."),
		loadErrors:     desc("cache", "loader_errors_total", "Loader calls that failed or panicked."),
		loadSeconds:    desc("cache", "loader_seconds_total", "Time spent in loaders."),
		stale:          desc("cache", "stale_served_total", "Stale values served (stale-while-revalidate, stale-if-error)."),
		leaseWaits:     desc("cache", "lease_waits_total", "Loads that waited for another process's lease."),
		decodeFailures: desc("cache", "decode_failures_total", "Stored values that could not be decoded and were deleted."),
	}
}

func (c *cacheCollector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c *cacheCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.LocalStats()
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	counter(c.hits, float64(s.Hits))
	counter(c.misses, float64(s.Misses))
	counter(c.loads, float64(s.Loads))
	counter(c.dedup, float64(s.DedupLoads))
	counter(c.loadErrors, float64(s.LoaderErrors))
	counter(c.loadSeconds, s.LoaderTime.Seconds())
	counter(c.stale, float64(s.StaleServed))
	counter(c.leaseWaits, float64(s.LeaseWaits))
	counter(c.decodeFailures, float64(s.DecodeFailures))
	if c.near == nil {
		return
	}
	n := c.near.NearStats()
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter(c.nearHits, float64(n.Hits))
	counter(c.nearNegHits, float64(n.NegativeHits))
	counter(c.nearMisses, float64(n.Misses))
	counter(c.nearFills, float64(n.Fills))
	counter(c.nearNegFills, float64(n.NegativeFills))
	counter(c.nearEvictions, float64(n.Evictions))
	counter(c.nearInvalidations, float64(n.Invalidations))
	counter(c.nearFlushes, float64(n.Flushes))
	gauge(c.nearEntries, float64(n.Entries))
	gauge(c.nearBytes, float64(n.Bytes))
	gauge(c.nearServing, boolFloat(n.Serving))
}

// sessionCollector exports what a session store holds.
type sessionCollector struct {
	src                      SessionStats
	sessions, users, indexed *prometheus.Desc
	scrapeErr                *prometheus.Desc
}

// NewSessionCollector returns a collector of a session store's counts:
// sessions, users with a live session, and index entries. Each scrape scans
// every master (SCAN, never KEYS); on a large keyspace scrape it less often.
func NewSessionCollector(src SessionStats) prometheus.Collector {
	return &sessionCollector{
		src:       src,
		sessions:  desc("session", "active", "Sessions stored (anonymous ones included)."),
		users:     desc("session", "users", "Users with a live session."),
		indexed:   desc("session", "index_entries", "Entries in the per-user indexes."),
		scrapeErr: desc("session", "scrape_error", "1 when counting sessions failed at this scrape."),
	}
}

func (c *sessionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.sessions
	ch <- c.users
	ch <- c.indexed
	ch <- c.scrapeErr
}

func (c *sessionCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), ScrapeTimeout)
	defer cancel()
	s, err := c.src.Stats(ctx)
	if err == nil {
		ch <- prometheus.MustNewConstMetric(c.sessions, prometheus.GaugeValue, float64(s.Sessions))
		ch <- prometheus.MustNewConstMetric(c.users, prometheus.GaugeValue, float64(s.Users))
		ch <- prometheus.MustNewConstMetric(c.indexed, prometheus.GaugeValue, float64(s.Indexed))
	}
	ch <- prometheus.MustNewConstMetric(c.scrapeErr, prometheus.GaugeValue, boolFloat(err != nil))
}
