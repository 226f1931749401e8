// Package cache is a cache-aside layer over Redis that is correct on Cluster
// and protects the data source from stampedes across processes.
//
// It works with any redis.UniversalClient (go-redis v9): a standalone or
// Sentinel *redis.Client, a *redis.ClusterClient or a *redis.Ring, against
// Redis 7.0 or later (GetOrSet uses SET with both NX and GET).
//
// # Layers
//
// Cache stores []byte values: Set, Get, Delete, Exists, MGet, MSet, Incr and
// Decr (the TTL is set atomically when a counter is created), GetOrSet,
// ClearPattern and Stats. Typed[T] sits on top with a pluggable Codec (JSON by
// default, MessagePack with MsgpackCodec). Every stored value starts with a
// 12-byte header — magic, format version, codec id, flags (compressed, "not
// found" marker) and a soft expiry — so a value written by another version or
// codec, or a corrupt one, is counted in Stats.DecodeFailures, deleted and
// treated as a miss: never a panic, never a zero value passed off as a hit.
// Payloads from Options.CompressThreshold bytes up are flate-compressed.
//
// Keys live in a namespace, "<Prefix>:v<Version>:<key>"; a deploy that
// changes the stored type bumps Version and abandons the old values.
//
// # Stampede protection
//
// GetOrSet runs one loader per key at a time across all processes. In a
// process, concurrent misses share one flight; a caller may leave on its own
// context while the load goes on, on a context detached from the callers and
// bounded by Options.LoadTimeout. Across processes, a lease in Redis elects
// the loader: GetOrSet reads with SET key <lease marker> NX PX <lease TTL> GET,
// which returns the value if there is one and otherwise stores a lease marker
// (a header with the lease flag and a random owner token) in the key itself.
// Reads treat a marker as a miss. The owner stores its result with a Lua
// script that writes only while the key still holds its marker, then
// publishes an event. Delete removes the marker with the value, so a load
// that was running during a Delete cannot write its now outdated result back.
// (While a stale value is being refreshed, the lease is a separate key in the
// value's slot, so the stale value stays readable.) Processes waiting on a lease are woken by that
// Pub/Sub event (one subscription per Cache) with a bounded fallback poll,
// and take over when the owner dies and its lease expires. A loader error or
// panic releases the lease and reaches every waiter (ErrRemoteLoad in other
// processes). A GetOrSet hit costs one command, a miss two: the lease
// script and the commit.
//
// # Freshness
//
// TTLJitter spreads expiries. NegativeTTL caches a loader's ErrNotFound.
// StaleWhileRevalidate serves a value past its TTL while one background
// refresh runs; StaleIfError serves it when the loader fails. Background
// refreshes belong to the Cache: Close cancels and waits for them.
//
// # Cluster
//
// MGet groups keys by hash slot (CRC16 and hash tags, computed here), sends
// one MGET per slot — a GET for a lone key — and lets the cluster pipeline
// send one batch per master, in parallel: one round trip per master. Per-key
// failures come back in a *BatchError. ClearPattern SCANs every master and
// UNLINKs in bounded batches grouped by slot; user text is escaped (Literal,
// Prefix, Pattern.Lit) so it cannot widen a pattern, and wildcards are only
// written explicitly (Glob, Pattern.Any).
//
// # Degradation
//
// When Redis is unavailable (retry.IsUnavailable), GetOrSet either calls the
// loader directly (FailOpen) or returns an error matching
// retry.ErrUnavailable (FailClosed, the default).
//
// # Example
//
//	c, err := cache.New(rdb, cache.Options{Prefix: "users", Version: 2})
//	if err != nil { ... }
//	defer c.Close()
//	users := cache.NewTyped[User](c, nil) // JSON
//	u, err := users.GetOrSet(ctx, id, 10*time.Minute, func(ctx context.Context) (User, error) {
//		return db.LoadUser(ctx, id) // return cache.ErrNotFound for a missing user
//	})
//
// # Near tier
//
// With Options.Near, Typed reads are served from process memory when they
// can be: a bounded local tier (github.com/maypok86/otter/v2, adaptive
// W-TinyLFU, bounded in entries and estimated bytes) holds *decoded* values,
// so a near hit costs a map lookup and a type assertion — no Redis command,
// no decoding, no allocation. Get and GetOrSet fill it; MGet reads it.
// Local writes (Set, MSet, Delete, ClearPattern) drop the local copies at
// once; every other write — another process, redis-cli, a Lua script, an
// expiry, an eviction — is reported by Redis.
//
// Invalidation uses CLIENT TRACKING in broadcast mode on the namespace prefix:
// one dedicated connection per master, RESP2, whose go-redis OnConnect hook
// runs CLIENT ID then CLIENT TRACKING ON REDIRECT <its own id> BCAST PREFIX
// <namespace> before go-redis subscribes it to __redis__:invalidate. The
// tracking connection and the receiving one are the same, so they cannot
// fail apart, and go-redis's own Pub/Sub reconnect re-arms tracking (every
// new connection runs OnConnect). RESP3 pushes were not used because
// go-redis reads pushes only when a connection is used for a command (its
// client-side caching drains them on a timer, 5 ms by default), whereas a
// Pub/Sub receive loop reads them as they arrive. go-redis's built-in
// client-side caching was not used because it works on standalone clients
// only, caches raw replies that must be decoded on every hit, and ties
// entries to pooled connections.
//
// Coherence rules. A read records, before it is sent, a generation counter
// (bumped by every change of tracking state) and the invalidation counter of
// its key's stripe; its decoded value is inserted only if neither moved, the
// check and the insert being atomic with respect to invalidations (otter's
// Compute), so a read in flight when its key is invalidated never publishes
// its stale result. Any error on a tracking connection — lost, killed,
// silent past two HealthIntervals, or the nil message of FLUSHALL — flushes
// the local tier and stops it serving until every master's tracking
// connection is armed again. Cluster masters are re-read every
// TopologyInterval (CLUSTER SHARDS); a new or removed master flushes. With a
// Sentinel client, the server behind the caller's client is compared with
// the tracked one (INFO run_id) every TopologyInterval and tracking moves to
// the new master. Where CLIENT TRACKING is refused (an embedded server, a
// proxy, an ACL), the tier turns itself off with one log line, or runs in a
// TTL-only mode bounded by NearOptions.MaxStaleness. Cache.NearStats reports
// local hits, misses, evictions, invalidations, flushes and bytes.
//
//	c, err := cache.New(rdb, cache.Options{Prefix: "users", Near: &cache.NearOptions{MaxEntries: 50_000}})
package cache
