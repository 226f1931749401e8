// Package rediskit is the connection layer of rediskit: one Config for
// standalone, Sentinel and Cluster deployments, and a Client that wraps the
// go-redis client with retries that are safe, a circuit breaker, a cached
// health report and statistics.
//
// # Configuration
//
// A Config comes from code, from a URL (ParseURL: redis://, rediss://,
// redis-sentinel://, redis-cluster://) or from the environment (FromEnv:
// REDIS_URL plus REDISKIT_* overrides). Zero fields mean documented
// defaults; Validate names the bad field and value; String redacts
// passwords.
//
// # Client
//
// Open verifies the connection and returns a *Client. Redis() is the
// go-redis client (a *redis.Client or *redis.ClusterClient) with three hooks
// installed, outermost first:
//
//   - statistics and draining: command and pipeline counts, a latency
//     histogram, refusal with ErrClosed once Close began;
//   - retries (package retry): go-redis's own retries are off; a failed
//     command is repeated, with full-jitter backoff inside the context
//     deadline, only when that is safe — reads, idempotent writes, calls
//     marked with retry.WithIdempotent, and commands that provably never
//     ran. Other writes whose reply was lost fail with retry.ErrAmbiguous;
//   - the circuit breaker: after Config.BreakerThreshold consecutive
//     infrastructure failures every call fails at once with ErrCircuitOpen
//     (which matches retry.ErrUnavailable) for Config.BreakerCooldown; then
//     one probe decides between closing and re-opening: a lone command is
//     its own probe, while a pipeline (an auto-pipelined batch among them)
//     fails at once and the breaker sends a PING of its own, so no batch of
//     callers waits on a server that may still be down
//     (TestHalfOpenBatchFailsFast, on a standalone server; a Cluster node's
//     breaker pings that node the same way). The AutoPipeliner sends one
//     batch at a time and the hooks see a batch only when it leaves, so a
//     command that session or cache queues while the breaker is open would
//     wait for the batch in flight ahead of it, up to a read timeout on a
//     paused server. On a *redis.Client (standalone, Sentinel) they ask the
//     breaker first and fail at once, counted in Stats.BreakerRejected
//     (TestOpenBreakerRefusesBeforeQueueing). On a Cluster, and on Sentinel
//     with replica reads (a cluster client), go-redis picks the node, and so
//     the breaker, only when the batch leaves: there such a command still
//     waits for the batch ahead of it, less than the read timeout, since
//     that batch left before the breaker opened. On a Cluster
//     each node has its own breaker, and a failed node makes the client
//     re-read the slot map at once (go-redis alone waits up to a minute), so
//     a promoted replica takes over its master's slots within a retry.
//
// On Sentinel, every new connection is checked before go-redis uses it: a
// sentinel must name its address as the master with no failover in
// progress, and the node must answer ROLE as master; otherwise the dial
// fails with ErrNotMaster (transient, never applied), so no command reaches
// an old master restarted empty or a node being failed over
// (TestSentinelGuardRefusesRestartedOldMaster). The check costs a query to
// a sentinel and a short-lived second connection per new connection.
//
// # Replica reads
//
// Config.ReadOnly (URL parameter read_only, REDISKIT_READ_ONLY; replica_only
// in a go-redis failover URL), RouteByLatency (route_by_latency) and
// RouteRandomly (route_randomly) let read-only commands be served by
// replicas, on a Cluster and on Sentinel; on a standalone server they are a
// *ConfigError (TestReplicaReadSettings). ReadOnly sends each read to a
// replica of its slot, RouteRandomly to a random node of the slot (master or
// replica), RouteByLatency to the closest. Writes always go to the master:
// in Sentinel mode rediskit builds go-redis's failover cluster client, and
// the Sentinel guard accepts a node that answers ROLE as a replica, which
// refuses writes (TestReplicaReads).
//
// A replica serves what it has received from its master, so a read routed to
// one may return a value the master has since changed or deleted, for as
// long as the replication lag: normally well under a millisecond on a local
// network, but without bound while the link is down or the replica is
// resynchronising (INFO replication's master_last_io_seconds_ago and each
// replica's lag show it; a replica whose link is down keeps serving its old
// data unless replica-serve-stale-data is no). What this means for the other
// packages, shown by TestReplicaReads on a Cluster with replicas and on
// Sentinel, with every setting:
//
//   - session.Store sends no read to a replica: it turns off the plain-read
//     path of Get when the client may route reads to replicas, so every Get
//     is its script on the master, and a session deleted, rotated away or
//     timed out is never served from a replica; Store.GetMany reads in
//     transactions, which go to the masters.
//   - cache.GetOrSet reads with its lease command on the master, so a
//     Delete is seen at once and a load that a Delete overtook is not
//     written back. cache.Get, Exists, MGet and Counter are plain reads:
//     with replica reads they may return a value deleted or replaced on the
//     master up to the replication lag earlier.
//
// A go-redis client built by hand with FailoverOptions.ReplicaOnly
// (redis.NewFailoverClient) talks to a replica only: a session Store or a
// Cache on it fails every write with READONLY (TestReplicaReads); use
// NewFailoverClusterClient, or rediskit's Sentinel mode with ReadOnly.
//
// # Logging
//
// Config.Logger (a *slog.Logger) receives rediskit's own records, each
// with component=rediskit: Open at Info; a circuit breaker opening at Warn,
// half-open and closed again at Info; the health report going down or
// degraded at Warn, up again at Info; a connection refused by the Sentinel
// guard at Warn; a retried command at Debug (a retry is routine: its final
// failure, if any, reaches the caller) (TestClientLogRecords).
//
// go-redis logs through one logger for the whole process (redis.SetLogger),
// and its lines carry no client identity (many come from background
// goroutines). The first Open with a Logger installs rediskit's router
// there, once per process; from then on each go-redis line goes to the
// Logger of every open Client that has one, once per distinct *slog.Logger
// (two Clients sharing a Logger get one record), with component=go-redis,
// at a level chosen from the line: a recovered panic is Error, a failover
// or an unreachable node Warn, a reconnection or topology change Info, a
// connection retired Debug, anything else Warn (TestGoRedisLevels). A
// Client stops receiving them when it is closed; with no such Client open,
// lines go to standard error with go-redis's "redis: " prefix, URL
// credentials removed (TestGoRedisLogRoutesAndRedacts). A logger the program set with
// redis.SetLogger before that first Open is replaced; one set after it
// takes over, and rediskit's Loggers then get no go-redis lines.
//
// No record contains a password: rediskit's records carry addresses,
// states and error texts, and the router removes the passwords of every
// open Config and the credentials of any URL from go-redis's lines
// (TestGoRedisLogRoutesAndRedacts, TestSecretsNeverLeak).
//
// A nil Logger sends rediskit's own records to slog.Default(), as
// session.ManagerOptions.Logger and cache.NearOptions.Logger do, so a
// program that configured slog gets them without more wiring (pass
// slog.New(slog.DiscardHandler) for silence); go-redis's logger, being
// process-wide, is then left as it is.
//
// # Deadlines
//
// A context deadline is honoured by every command (go-redis's
// ContextTimeoutEnabled is on; Config.DisableContextTimeout, the URL
// parameter disable_context_timeout or REDISKIT_DISABLE_CONTEXT_TIMEOUT
// turn it off). When the deadline passes, the caller gets an error that
// matches context.DeadlineExceeded (context.Canceled for a cancelled
// context, which go-redis notices only before the command is written):
// retry.IsContext reports it. It is not a server fault: it neither counts
// toward the circuit breaker nor as a failure in Stats or the health
// report, and Stats.Deadlines counts it apart (rediskit_client_deadlines_total
// in package metrics). What else the error says depends on the command
// (TestDeadlinePaused, TestDeadlineBlockingCommands):
//
//   - a read, or any command the deadline stopped before it was written
//     (waiting for a pooled connection, dialling, the connection
//     handshake): the context's error only;
//   - a write that was written and got no reply in time: an
//     *retry.AmbiguousError that matches both retry.ErrAmbiguous and
//     context.DeadlineExceeded, since it may have run; in a MULTI/EXEC
//     transaction, every command of it; Stats.Ambiguous counts it;
//   - a blocking command (BLPOP, BRPOP, BRPOPLPUSH, BLMOVE, BLMPOP,
//     BZPOPMIN, BZPOPMAX, BZMPOP, XREAD and XREADGROUP with BLOCK, WAIT)
//     whose own timeout ends later than the deadline, 0 ("forever")
//     included: rediskit sends it with a server-side timeout that ends 30 ms
//     before the deadline (at least 1 ms), so the server gives up first, and
//     waits up to 20 ms past the deadline for the reply. An element is
//     either returned — even when it arrives a few milliseconds after the
//     deadline — or never popped; the empty answer comes back as
//     context.DeadlineExceeded, not redis.Nil (for WAIT: fewer replicas than
//     asked). Only when no reply arrives by then (a paused server, a stall of
//     tens of milliseconds) is a pop reported as ambiguous. A blocking
//     command whose own timeout ends first is left as it is. An idle Redis
//     notices blocked clients' timeouts only on its "hz" tick (100 ms by
//     default), so rediskit sends a PING to wake it when a shortened timeout
//     ends; Stats.Commands counts those PINGs. TestDeadlineNoLoss pops
//     10,000 elements under random 2-50 ms deadlines through a proxy adding
//     5 ms to every reply: none duplicated, none lost except by a pop
//     reported as ambiguous. In five runs under -race on the shared 2-core
//     development machine (load average 3 to 6 from other suites) 0, 0, 0,
//     1 and 15 elements were lost that way (0 to 24 ambiguous pops), where
//     go-redis with ContextTimeoutEnabled lost 1,116 to 1,315 per run;
//   - blocking commands inside a pipeline are not rewritten, and commands
//     queued on an AutoPipeliner run on its own context (go-redis).
//
// Every call returns within its deadline plus 50 ms, on standalone, Cluster
// and Sentinel, behind a paused server too (TestDeadlinePaused).
//
// # Pool size
//
// The default PoolSize is go-redis's own: 10 connections per GOMAXPROCS on
// standalone and Sentinel, 5 per GOMAXPROCS on each node of a Cluster, whose
// load is spread over its masters (TestDefaultPoolSize). A bigger pool
// does not make a WATCH-heavy workload faster: it lets more transactions on
// the same keys run at once, and more of them fail with redis.TxFailedErr
// (TestWatchConflicts, 20 goroutines × 20 increments of one key on a
// Cluster: 1,807 to 1,919 conflicts with the default 10 connections per
// node, 2,263 to 2,803 with 20, in three runs without -race).
// Stats.Pool.WaitCount and Stats.PoolWait show how often, and how long,
// commands waited for a connection: a pool too small for the load shows
// there first.
//
// Health answers from the report of a background checker that PINGs every
// node each Config.HealthCheckInterval, so a health endpoint costs Redis
// nothing: Client.ReadinessHandler serves it at /readyz (200 while Redis can
// serve, 503 when it is down or the client closed), and LivenessHandler
// answers /healthz without looking at Redis (TestReadinessHandler); the
// rediskit command mounts both. The report gives each node's maxmemory-policy
// and, in Health.Warnings, warns where that policy can evict session keys or
// cannot be read (TestHealthEvictionWarning; docs/EVICTION.md); a write
// refused because maxmemory is reached matches ErrOutOfMemory
// (TestEvictionPolicies in internal/eviction). Stats adds an INFO digest of every master to the client-side
// counters. Close drains commands in flight, stops the checker and closes
// the connections.
//
//	cfg, err := rediskit.FromEnv()
//	if err != nil {
//		log.Fatal(err)
//	}
//	client, err := rediskit.Open(ctx, cfg)
//	if err != nil {
//		log.Fatal(err) // names the address it could not reach
//	}
//	defer client.Close()
//	rdb := client.Redis() // hand it to session.New, cache.New, …
//	if err := rdb.Incr(ctx, "visits").Err(); errors.Is(err, retry.ErrAmbiguous) {
//		// the increment may or may not have been applied
//	}
package rediskit
