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
//     one probe call decides between closing and re-opening. On a Cluster
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
// Health answers from the report of a background checker that PINGs every
// node each Config.HealthCheckInterval, so a health endpoint costs Redis
// nothing. Stats adds an INFO digest of every master to the client-side
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
