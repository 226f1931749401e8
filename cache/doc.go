// Package cache is a cache-aside layer over Redis that is correct on Cluster
// and protects the data source from stampedes across processes.
//
// It works with any redis.UniversalClient (go-redis v9): a standalone or
// Sentinel *redis.Client, a *redis.ClusterClient or a *redis.Ring, against
// Redis 7.0 or later (GetOrSet uses SET with both NX and GET). Every test
// suite of the package runs on a standalone server, a 3-master cluster, a
// Sentinel deployment through a failover client, all Redis 7.0, and a
// standalone Valkey 9 server, whose SET takes IFEQ (forEachTopology in
// helpers_test.go). The guarantees below are the Cache's own, whatever the
// client's options: see "Writes and lost replies" and "Clients and
// lifecycles".
//
// # Layers
//
// Cache stores []byte values: Set, Get, Delete, Exists, MGet, MSet, Incr and
// Decr (the TTL is set atomically when a counter is created), GetOrSet,
// Clear and Stats. Typed[T] sits on top with a pluggable Codec (JSON by
// default, MessagePack with MsgpackCodec). Every stored value starts with a
// 12-byte header (its layout is internal/cachefmt's) naming its format
// version and codec, so a value written by another version or codec, or a
// corrupt one, is counted in Stats.DecodeFailures, deleted and treated as a
// miss: never a panic, never a zero value passed off as a hit
// (TestDecodeFailuresAreCountedDeletedAndMisses).
// Payloads from Options.CompressThreshold bytes up are flate-compressed.
//
// Keys live in a namespace, "<Prefix>:v<Version>:<key>"; a deploy that
// changes the stored type bumps Version and abandons the old values.
//
// # Stampede protection
//
// GetOrSet runs one loader per key at a time across all processes. In a
// process, concurrent misses share one flight, and the load runs on a
// context detached from the callers' cancellation, bounded by
// Options.LoadTimeout and Close: one caller leaving never cuts a load that
// others, here and in other processes, wait for. The loader's context keeps
// the values of the caller's (trace ids, tenant, logger), as
// context.WithoutCancel does: the values of the caller that started the
// flight when others join it, of the caller served a stale value for a
// background refresh (TestLoaderSeesCallerValues, TestLoadCtxValuesFromCaller).
//
// Who runs the flight depends on the context of the caller that starts it
// (TestFlightGoroutine; GetOrSetMany's batch load alike):
//
//   - A context with a deadline hands the flight to a goroutine of the
//     Cache's, so that its caller leaves at the deadline, or when it is
//     cancelled, while the load goes on (TestCommitGroupCallerLeaves,
//     TestLoaderSeesCallerValues).
//   - A context without one (context.Background; a request's context, which
//     net/http cancels when the client goes but which has no deadline
//     unless the handler sets one) runs the flight on its caller's
//     goroutine, which returns when the load and its commit end, with
//     their result even if its context was cancelled meanwhile
//     (TestCancelledLoaderCallerGetsItsLoad): it has no time budget to
//     keep, and the load is one that others may be waiting for.
//
// A caller that joins a running flight waits for it and leaves when its
// own context ends, whatever its kind (TestGetOrSetSingleflightInProcess).
// The hand-off costs a goroutine start and a wake-up, 9–15 % of a miss's
// throughput on the benchmark machine's two cores (bench/CACHE.md, "What
// the hand-off costs"), which is why a caller with no deadline does
// without it. Either way a caller that waits is answered after the commit:
// the value is in Redis by then, unless a Delete took the lease during the
// load.
// Across processes, a lease in Redis elects the loader; the others wait for
// its result, woken by Pub/Sub, and take over when its owner dies and the
// lease expires. Reads treat a running load's lease as a miss. A Delete
// during a load wins: the load's result reaches its callers but is not
// stored (TestDeleteDuringLoadIsNotUndone). A loader error or panic reaches
// every waiter (ErrRemoteLoad in other processes). A GetOrSet hit costs one
// command, a miss two: the lease command and the commit
// (TestGetOrSetMissIsTwoCommandsHitIsOne). The lease command (SET NX PX GET)
// reads the value too, but it costs the server more than a GET; so while at
// least 7 reads in 8 hit (sampled over every 256 GetOrSets) and commands
// overlap, GetOrSet reads with a GET first and takes the lease only when
// that finds no fresh value, a miss then costing one round trip more; a
// lone caller keeps the two-round-trip miss (TestGetOrSetReadsFirstUnderLoad,
// on standalone Redis, where it counts the server's commands). On that path
// a hit, a miss, a cached "not found" and a stale value within
// StaleWhileRevalidate are answered as the lease command answers them, on
// every deployment (TestReadFirstAnswersAsTheLeaseDoes). Tagged GetOrSets
// take the same path, untested there: an invalidation deletes its tags'
// values, which the GET then misses as the lease command would.
// The commit stores the value only
// while the key holds the load's lease marker. On Redis 7.0 that
// compare-and-set is a Lua script; on a server whose SET takes IFEQ (Valkey
// 8.1 and later, Redis 8.4 and later) it is that one plain command, and the
// script runs only when a waiter flagged the lease or the lease was lost.
// The Cache learns which server it has at run time: Preload asks, otherwise
// its first commit tries, and a syntax error keeps it on the script for
// good (TestMissCommands, TestCommitLearnsIfEq). That path is tested on a
// standalone Valkey server only: the cluster and Sentinel suites run Redis
// 7.0, where the commit is the script. On a *redis.Client (standalone or
// Sentinel) the script's commits group: up to four calls are on the wire
// at once, and while all four are, the commits that come meanwhile wait
// and then go as one call, which on Redis 7.0 costs the server less than
// their separate calls, so under load a miss sends fewer than two commands
// (and its commit may wait for the round trip of one ahead of it); a lone
// miss commits at once, alone (TestCommitGroup, TestCommitWires;
// commitgroup.go says why the wire is the pooled connections, and where
// grouping is off). While commands overlap, a commit that finds a wire
// free yields once before it sends, so that the commits arriving with it
// share its call (TestCommitGroupGathers). A call
// holds at most 64 keys and 1 MiB of values; a commit that would overfill
// the waiting group opens the next, which takes a wire after it, and a
// value larger than a group goes alone at once (TestCommitGroupBounds).
// GetOrSetMany commits the
// same way, in one pipeline per master, its marker commits as group calls
// of up to 64 keys where commits group (TestGetOrSetManyRoundTrips,
// TestGetOrSetManyGroupBounds); tagged
// loads commit by script on every server. The protocol is written once,
// above its scripts in lease.go.
//
// # Batches of loads
//
// GetOrSetMany asks for many keys at once with a BatchLoaderFunc, called
// once with every key whose lease the call took. One pipeline per master
// reads every key and takes the lease of each missing one (GetOrSet's
// SET NX GET, per key); the loaded values are committed by one pipeline
// per master: a cold batch of 100 keys on the 3-master cluster is two
// round trips to each master and 200 commands, a warm one a round trip per
// master (TestGetOrSetManyRoundTrips). Keys leased by another process are
// waited for as GetOrSet waits, and keys another caller of this process is
// loading join its load: 4 processes × 50 goroutines asking overlapping
// batches of 100 keys load every key exactly once in total, and every
// caller gets every value (TestMultiProcessGetOrSetMany). Keys the loader
// leaves out do not exist (cached for NegativeTTL) and are absent from the
// answer (TestGetOrSetManyPartialResults); a loader error or panic fails
// the keys of its call in a *BatchError and releases their leases
// (TestGetOrSetManyLoaderFailure).
//
// # Tags
//
// SetTagged and MSetTagged store values with tags, GetOrSetTagged and
// GetOrSetManyTagged load them with tags (on Cache and Typed);
// InvalidateTags removes every value carrying one of its tags, on every
// master (TestTagInvalidation, TestGetOrSetTaggedCommands). Each tag has an
// index per cluster slot holding its values, stored in that slot, so one
// script writes a value with its index entries and one script per (tag,
// slot) removes them, in rounds of at most Options.UnlinkBatch values
// (TestInvalidateTagsInBatches): the cost follows the tagged values, never
// the keyspace. A tagged write is two round trips (the tags' epochs, then
// the write); a tagged GetOrSet hit is one command, as an untagged one, and
// a miss three round trips (the lease, the tags' registration before the
// loader is called, the write), an untagged miss keeping its two
// (TestGetOrSetTaggedCommands); a cold tagged batch adds one round trip to
// each tag's master (TestGetOrSetManyTaggedRoundTrips). An invalidation is
// one round trip to each tag's master to start (epoch bump and a mark
// "invalidation in progress"), one per master holding its values, and one
// to each tag's master to remove its marks (TestTagInvalidation counts
// them).
//
// Invalidations and tagged writes are linearizable. Every tagged write
// (SetTagged, MSetTagged, GetOrSetTagged, GetOrSetManyTagged) whose
// registration ran in Redis before InvalidateTags removed its marks — its
// last step before returning, so in particular every write that returned,
// and every load whose loader was called, before InvalidateTags returned —
// is not readable after InvalidateTags returns: it was purged, or refused
// and not stored (TestTagInvalidationRace; TestTagInvalidationStrictRace
// runs writes of every kind inside an invalidation held open before its
// marks' removal; TestGetOrSetTaggedLoadDuringInvalidation runs an
// invalidation during loads). A refused write reports success and stores
// nothing; a refused load returns its value to its callers without storing
// it. While an invalidation runs, its tags' writes are refused; a mark
// left by an invalidator that died refuses them for at most
// LeaseTTL+LoadTimeout (TestTagMarkOfCrashedInvalidatorExpires), and an
// InvalidateTags that runs that long returns an error
// (TestInvalidateTagsOutlivingItsMark). Tag keys expire with their
// longest-lived value (a load's registration, LeaseTTL later), marks when
// their invalidation ends: 10,000 expired values leave none behind
// (TestTagIndexesExpire). Tag names are percent-encoded, so no tag can
// move a key's hash slot or widen a pattern (FuzzEncodeTag). A *redis.Ring
// is refused (ErrUnsupportedClient). The protocol is written above its
// scripts in tags.go.
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
// failures come back in a *BatchError. Keys are literal: globs, braces,
// protocol text and binary bytes read back their own values, grouped by
// the slot the server computes (TestMGetHostileKeys). Clear SCANs every master and
// UNLINKs in bounded batches grouped by slot; user text is escaped (Literal,
// Prefix, Pattern.Lit) so it cannot widen a pattern, and wildcards are only
// written explicitly (Glob, Pattern.Any).
//
// # Degradation
//
// When Redis is unavailable (retry.IsUnavailable), GetOrSet either calls the
// loader directly (FailOpen) or returns an error matching
// retry.ErrUnavailable (FailClosed, the default), on standalone, Cluster and
// Sentinel (TestDegradationWithKilledServer). A lease command whose reply was
// lost is answered the same way, its FailClosed error matching
// retry.ErrAmbiguous as well (see below).
//
// # Writes and lost replies
//
// A write whose reply is lost after the server applied it (a read timeout, a
// reset) must not be applied twice by a blind re-send, and its caller must
// learn that its outcome is unknown. go-redis re-sends every command by
// default (Options.MaxRetries 3; a ClusterClient also within MaxRedirects),
// so each write of the Cache is either sent once or is safe to re-send, on
// any client and in every Options.Pipelining mode. TestLostReply drops
// the reply of each write after the server applied it, through a
// *redis.Client, a Sentinel failover client, a *redis.Ring and a
// *redis.ClusterClient, with default options and with their retries off,
// and asserts the server's state; TestLostReplyWithRetryHook does the same through a client whose
// retries are left to retry.Hook, as on a rediskit.Client:
//
//   - Incr and Decr are not idempotent. They are sent with
//     retry.Script.RunOnce, which no retry loop of go-redis repeats
//     (retry.Once): under a lost reply the counter moves once and the error
//     matches retry.ErrAmbiguous. Cost: none on success (one EVALSHA, as
//     before, BenchmarkOps); under a lost reply, an unknown outcome where
//     go-redis would have silently doubled the increment.
//   - Set, MSet, Delete and Clear are idempotent (SET without NX, XX or GET;
//     DEL; UNLINK): the client's retries may re-send them and reach a
//     definite answer. Cost: a re-sent SET can overwrite a value another
//     process wrote after the lost first run, as a delayed SET would
//     (TestResentSetLandsAfterNewerWrite). When the retries give up, or the
//     client has none, an error that does not prove the write was not
//     applied matches retry.ErrAmbiguous (per key in MSet's *BatchError). Some
//     go-redis clients do not re-send these even with default options: on a
//     ClusterClient, Clear (it goes through the node clients, whose
//     MaxRetries is -1); on a Ring, MSet, Delete and Clear (pipelines and
//     Clear go through its shard clients, likewise). There the error is
//     ambiguous at once; the write may simply be repeated.
//   - The lease commands of GetOrSet are safe to re-send by construction
//     (lease.go says why). An acquisition whose outcome stays unknown is
//     handed back by the conditional release — one command more, on that
//     failure path only — so no lease is left to block other processes.
//     When the server cannot be reached for that release either (it is
//     restarting), an owned goroutine keeps trying, 50 ms to 1 s apart,
//     until the server answers, the lease expires or the Cache closes
//     (TestLostLeaseReleasedWhenServerReturns; on every client kind,
//     internal/contract's TestLostReplyThenRefused). GetOrSet answers as with
//     Redis unavailable: FailOpen loads without
//     storing, FailClosed returns an error matching both
//     retry.ErrUnavailable and retry.ErrAmbiguous. A commit or release whose
//     reply is lost is not the callers' concern: they get the loaded value
//     or the loader's error. All four are sent with retry.Repeatable, so a
//     rediskit.Client re-sends them as go-redis does
//     (TestLostReplyWithRetryHook).
//   - The near tier stores no data: its tracking connections only run
//     CLIENT TRACKING, again on every reconnect. Typed's writes are the
//     Cache's.
//
// An ambiguous error is a *retry.AmbiguousError: it matches
// retry.ErrAmbiguous, unwraps to its cause (an i/o timeout, a reset), and
// retry.Classify reports it as ClassAmbiguous, so retry.IsInfrastructure is
// true and retry.IsUnavailable false: the write may have been applied
// (TestLostReply). An error that proves a write was not applied (a refused
// dial, a pool timeout, a closed client) is returned as it is, and
// retry.IsUnavailable is true for it (TestWriteNotSentIsNotAmbiguous), when
// the client did not re-send the write (MaxRetries -1, a rediskit.Client,
// whose retry hook tracks its attempts). After a client's own re-sends such
// an error proves only that the last attempt did not run, and the error of
// Set, MSet, Delete or Clear matches retry.ErrAmbiguous (retry.AmbiguousVia;
// TestLostReplyThenRefused, internal/contract). None
// of this adds a command to a hit or a miss (BenchmarkOps counts them).
//
// # Clients and lifecycles
//
// The client passed to New, and the one AutoPipeliner go-redis keeps per
// client (Options.Pipelining), belong to the caller and may be shared with
// other Caches, session stores and the caller's own commands. Close closes
// neither: closing one Cache, with or without a near tier, in any
// Pipelining mode, leaves the others and the client working, and closing the
// client last leaves no goroutine behind (TestSharedClientLifecycle).
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
// no decoding, no allocation. Get, MGet and GetOrSet fill it. MGet reads
// it first and sends only the keys it does not serve, still one round trip
// per master (TestNearMGetFillsAndReadsLocalFirst). A read that finds
// nothing usable in Redis leaves a negative entry: Get and MGet answer
// "not found" from it with no command; GetOrSet does not, since it must be
// able to load. Broadcast tracking reports writes to every key of the
// namespace, read while missing or not, so negative entries are invalidated
// like values (TestNearNegativeEntries), across processes too
// (TestNearTwoProcesses covers an MGet-filled and a negative entry).
// Local writes (Set, MSet, Delete, Clear) drop the local copies at
// once; every other write — another process, redis-cli, a Lua script, an
// expiry, an eviction — is reported by Redis.
//
// Invalidation uses CLIENT TRACKING in broadcast mode on the namespace
// prefix, one dedicated connection per master (near_track.go holds its
// design). A read in flight when its key is invalidated never publishes its
// stale result (TestNearInFlightReadDoesNotPublishAfterInvalidation; the
// rule is written on near in near.go); a value whose publish is refused
// that way still removes the entry held for its key, so that a GetOrSet
// over a local "not found" is read back at once
// (TestNearRefusedPublishDropsTheEntry). Any error on a tracking connection —
// lost, killed, silent past two HealthIntervals, or the nil message of
// FLUSHALL — flushes the local tier and stops it serving until every
// master's tracking connection is armed again. Cluster masters are re-read
// every TopologyInterval; a new or removed master flushes. With a Sentinel
// client, tracking follows the master after a failover. Where CLIENT
// TRACKING is refused (an embedded server, a proxy, an ACL), the tier turns
// itself off with one log line, or runs in a TTL-only mode bounded by
// NearOptions.MaxStaleness. Cache.NearStats reports local hits, negative
// hits, misses, fills (negative ones apart), evictions, invalidations,
// flushes, entries and bytes; metrics.NewCacheCollector exports them
// (TestCacheCollectorNearTier) and the rediskit dashboard shows them.
//
//	c, err := cache.New(rdb, cache.Options{Prefix: "users", Near: &cache.NearOptions{MaxEntries: 50_000}})
package cache
