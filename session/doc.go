// Package session is a Redis session store with per-user tracking, and the
// net/http middleware on top of it.
//
// It takes any go-redis redis.UniversalClient (standalone, failover,
// Cluster or Ring; every store test runs on standalone, Cluster and
// Sentinel) and does every operation on one session in one round trip
// (TestRoundTripsPerOperation): a Lua script run with EVALSHA (Preload puts
// the scripts on every node first), or for Get, a plain GET (see "Reads
// and touches"). Its guarantees hold whatever the client's retry settings
// (see "Writes and lost replies").
//
//	store, err := session.New(rdb, session.Options{IdleTimeout: 30 * time.Minute, MaxPerUser: 10})
//	_ = store.Preload(ctx)
//	s, err := store.Create(ctx, "alice", map[string]any{"cart": 3}, session.CreateOptions{IP: ip, UserAgent: ua})
//	s, err = store.Get(ctx, s.ID())          // also slides the idle expiry when due
//	_, err = store.Update(ctx, s.ID(), session.Changes{Set: map[string]any{"theme": "dark"}})
//	id, err := store.Rotate(ctx, s.ID())     // on login and privilege change
//	devices, err := store.ListByUser(ctx, "alice")
//	n, err := store.DeleteByUser(ctx, "alice") // log out everywhere
//
// and the middleware:
//
//	m := session.NewManager(store, session.ManagerOptions{})
//	http.ListenAndServe(addr, m.LoadAndSave(mux))
//	// in a handler:
//	m.Put(r.Context(), "flash", "saved")
//	msg := m.PopString(r.Context(), "flash")
//	err := m.Login(r.Context(), userID)
//
// # Keys
//
// Everything of one user shares a hash slot, so scripts never meet
// CROSSSLOT on a Cluster:
//
//	<prefix>{<tag>}:s:<handle>   string: one session
//	<prefix>{<tag>}:u            sorted set: the user's index, member <handle>, score = expiry (ms)
//	<prefix>{<tag>}:d:<handle>   string, 10 s: the tombstone of a Delete (see Store.Delete)
//	<prefix>{<tag>}:d:u:<call>   string, 10 s: the tombstone of a DeleteByUser or RevokeHandle
//
// and with Options.Events (see "Events"): "<prefix>{<tag>}:ue", the hash
// of side records of a user's index; "<prefix>{<tag>}:a" and ":ae", the
// index of an anonymous session and its side records; the event streams.
//
// tag is base64url of 16 bytes: HMAC-SHA256(Options.UserKey, userID) (or a
// domain-separated SHA-256 without a key) for a user, 16 random bytes for
// an anonymous session. A user ID never appears in a key, so no user ID can
// inject '{', '}' or glob characters, or collide with another user's tag
// in practice (and DeleteByUser, ListByUser and the cap still check the
// stored user ID of every session before acting on it). handle is base64url
// of SHA-256(token): Redis never holds a token.
//
// A session is one string: a metadata line (times, version, persist), then
// the user, the device and each value as netstrings (the layout: record.go,
// its one home). Get reads it with one GET, the cheapest read Redis has,
// and parses it in place; a "your sessions" page (ListByUser) decodes no
// payload. Sessions stored as a hash by the first version are converted by
// the first script that touches them (TestUpgradeFromHash).
//
// # Tokens
//
// A session ID is base64url (no padding) of tag[16] || secret[32]: 64
// characters, 256 bits from crypto/rand plus the tag that lets the store
// find the user's slot without a lookup (for an anonymous session the tag
// is random too: 384 bits). An ID of any other shape is ErrMalformedToken
// before any Redis call. Lookups go by the SHA-256 of the token, so no token
// is ever compared byte by byte, in Go or in Redis, and none is logged,
// formatted (Session.String hides it) or put in an error.
//
// # Timeouts
//
// Both timeouts live in Redis (TestTimeouts, TestTTLMatchesTimeouts,
// TestRedisEndsIdleSessions). A session created with its own timeouts
// (CreateOptions) behaves as the store's sessions do, whether they are
// shorter or longer than the store's (TestPerSessionTimeouts). Use is a
// Get (a Manager request starts with one); an Update is not use: it keeps
// last-seen and the idle expiry. Every script that writes a session sets its
// key's expiry (PEXPIREAT) to min(last-seen + idle, absolute deadline), so
// Redis itself deletes a session at either timeout: from then on it is gone
// for every caller, and a plain read finds nothing. Every script also reads
// the metadata and treats a session past either timeout as gone (it deletes
// it and answers "not found"), whatever the key's TTL says. Time comes from
// Redis TIME (one clock for all application servers) unless Options.Clock
// is set.
//
// # Reads and touches
//
// Get is one GET: no Lua, one command, one round trip. The store checks
// the metadata it read and runs the touch script (which slides the idle
// expiry and moves last-seen) only when last-seen is Options.TouchInterval
// old, or when the session looks past a timeout by the store's clock (the
// script, reading Redis TIME, then decides, and deletes a dead session:
// defence in depth for a key whose TTL was lost). So a Get costs one round
// trip, and two once per TouchInterval per session; with the default
// interval (IdleTimeout/64, at most a minute) that is a few extra round
// trips per hour per session. With events off the touch is scriptTouch, a
// script without the other scripts' shared Lua preamble, which moves
// last-seen in place (SETRANGE) instead of writing the whole session again
// (7.0 µs of server time a touch against 12.3 µs for the general script, on
// the machine of bench/SESSIONS.md: BenchmarkTouchScripts), and hands any
// session it does not handle alike (one to delete, one stored by the first
// version) to the general script (TestTouchScriptMatchesGet). A user whose
// ACL rule predates +setrange gets the whole rewrite instead
// (TestTouchWithoutSetrange).
//
// The touch runs synchronously, after the read and before Get returns. It
// could run in the background without anyone waiting, but that buys
// nothing measurable (it happens once per TouchInterval) and costs: a
// background write whose failure nobody sees, goroutines every Store would
// have to own and Close would have to wait for, and a Get whose Info
// (LastSeen, ExpiresAt) is a guess rather than what Redis holds. A
// synchronous touch returns the session as the script left it (one
// consistent snapshot of values and version) and reports its errors to
// the caller. Like every script, the touch checks that the session exists
// and is alive before writing, so a touch that races Delete, DeleteByUser
// or Rotate never brings the session back.
//
// The local clock only decides when the touch is due. It reads the
// monotonic clock from the wall time the store started at, and is
// corrected by the offset to Redis TIME seen in script replies, so a
// drifting or stepped clock shifts when touches happen by at most a round
// trip (TestLocalClockSkew, TestMonoClock); expiry itself stays with
// Redis. A Get that arrives within a round trip of the session's idle
// timeout may read the session and then find it ended when the touch runs:
// it returns ErrNotFound, as a single script arriving a moment later would.
//
// Get falls back to running the script on every call when
// Options.TouchInterval is negative (every Get writes), and on a cluster
// client that may read from replicas (ClusterOptions.ReadOnly, or its
// RouteByLatency and RouteRandomly): a replica could still hold a session
// its master has just deleted.
//
// # Batches and the whole fleet
//
// GetMany and DeleteMany take any number of IDs in one pipeline (go-redis
// splits it by node: one round trip per node); Iterate walks every live
// session of every master (SCAN, a pipeline of metadata reads per page),
// anonymous ones included, for tools that list everything; DeleteAll
// deletes every session of the store, anonymous ones included, and leaves
// other prefixes alone (TestBatchOperations, on standalone, Cluster and
// Sentinel). GetMany and Iterate are reads, not use: no idle expiry slides.
//
// # Concurrency rules
//
// Update sends only the keys it changes, and its script merges them into
// the stored values, so concurrent updates of different keys all survive
// (TestAutoPipeline, TestManagerEndToEnd). Writers of the
// same key: the last one Redis runs wins. For compare-and-set, pass
// Changes.IfVersion (Session.Version): the update applies only if no other
// update came in between, else ErrConflict.
//
// No resurrection: Update, Extend and the touch check, inside their
// script, that the session exists and is within its timeouts before writing
// anything; the plain read of Get writes nothing. Delete, DeleteByUser and Rotate (RENAME to the new key, index
// moved) are single scripts too, so a write either runs before them (and is
// deleted with the session) or after them (and finds nothing).
//
// # The per-user index
//
// Every write to a user's session trims the user's index
// (ZREMRANGEBYSCORE up to now) and sets the index's TTL to its latest
// member's expiry, so an index expires with its last session: no keyspace
// notifications, CONFIG or cron are needed. Cleanup prunes entries of
// sessions that expired while others keep the index alive, and Stats counts
// sessions and users; both SCAN every master.
//
// # Events
//
// With Options.Events, subscribers in every application instance learn
// that a session was created, rotated, revoked (Delete, DeleteMany,
// DeleteAll, DeleteByUser, RevokeHandle, the MaxPerUser cap) or ended by
// its idle or absolute timeout, with the session's user (empty for an
// anonymous session) and handle, never its ID (TestEventsEveryCause scans
// the streams for every ID; TestEventsDeleteAll):
//
//	store, _ := session.New(rdb, session.Options{Events: true})
//	go store.Subscribe(ctx, session.EventOptions{Group: hostname}, func(ctx context.Context, ev session.Event) error {
//		if ev.Kind == session.EventRevoked { notify(ev.UserID, "your other device was signed out") }
//		return nil
//	})
//
// Every write script appends its events (XADD) to a Redis Stream in the
// same script as the change, so an event exists exactly when its change
// does: replicated, persisted (AOF) and, with DurableReplicas, confirmed by
// the WAIT together. A script may only touch its session's slot, so on a
// Cluster there is one stream per hash slot ("<prefix>{<slot tag>}:ev",
// the tag chosen to hash to that slot: TestKeySlot), and a subscriber
// reads all 16384 in one pipeline per poll (one round trip per master,
// 16384 commands: hence a default EventOptions.Poll of one second there);
// elsewhere there is one stream, "<prefix>events". Each stream is trimmed
// with XADD MAXLEN ~ Options.EventsMaxLen
// (TestEventsTrimmedAndNamesChecked): a group that falls further behind
// loses the oldest events. Events are opt-in: without them the scripts
// write no stream and every operation keeps its one round trip
// (TestEventsOptIn counts both).
//
// Anonymous sessions have every event a user's session has, with an empty
// Event.UserID (TestEventsEveryCause counts them). For their timeouts to
// be reported, each is indexed, with events on, alone in an index of its
// own random tag, "<prefix>{<tag>}:a" with its side record "...:ae" (see
// below): two small keys per anonymous session, written by the same
// scripts, so no extra round trip. Stats does not count them as users
// (TestEventsDeleteAll).
//
// Subscribe reads with a consumer group per EventOptions.Group (give each
// instance its own: every group gets every event) and acknowledges an
// event after the handler returns nil. Delivery is at least once, in order
// per session (a session's events share one stream: TestEventsEveryCause
// checks the order): an event whose handler failed, or whose subscriber
// died before acknowledging it, comes again to the same Group and
// Consumer. Apart from a failover (below), those are the only duplicates:
// a write script re-sent by a retry finds its change made and emits
// nothing. Event.ID and Event.Handle together tell copies apart (an ID
// alone is unique only within one stream, and see below). Events survive
// a server killed with SIGKILL and restarted with AOF (appendfsync always;
// with the default everysec, up to a second of writes, events included,
// can go: TestEventsSurviveRestart), a Sentinel failover with
// DurableReplicas (TestEventsSurviveFailover), and a Cluster failover
// (a master killed, its replica promoted) with DurableReplicas: N sessions
// ended by each cause before the failover and N after give 2N events of
// that cause, in order per session (TestEventsSurviveClusterFailover).
//
// What a failover does to events, on Sentinel and Cluster alike. Replication is
// asynchronous: the new master has what the old one had sent it.
//
//   - An event is lost exactly when its change is: with DurableReplicas,
//     only a write that failed with ErrNotDurable (outcome unknown) can be
//     lost, and then with its event; without, the last writes before the
//     failover (the replication lag) can be lost with their events. A
//     subscriber may already have read such an event from the old master:
//     it has seen an event whose change no longer exists.
//   - The new master may then give a lost entry's ID to a new event: Event.ID
//     repeats, with another Handle.
//   - Group state (XGROUP CREATE, reads, XACK) is never WAITed for, so a
//     failover can roll it back: acknowledged events come again, and a
//     group created just before may be missing on the new master, where
//     Subscribe creates it again from the stream's oldest entry, so every
//     event the stream holds comes again (TestEventsGroupLost destroys a
//     group under its subscriber). Such a copy can arrive after
//     later events of its session; distinct events keep their order.
//
// Subscribe returns on a Redis error (on a Cluster it reloads the slot map
// first): subscribe again. It checks ctx between Redis calls, so it
// returns within one call of ctx's end (each call bounded by the client's
// timeouts and retries). A Manager's Subscribe does the subscribing again
// itself, logging each failure, until its owner ends ctx
// (TestManagerSubscribe).
//
// Timeouts happen with no script running: Redis drops the key. With events
// on, the session's index keeps a small side record per session (deadline
// and user, in the hash "<index>e") and outlives its last session by
// Options.EventsGrace; every write and touch of the session rewrites the
// record and moves both keys' expiry (TestEventsIndexFollowsSlides). Any
// script that meets an index entry past its expiry, and the sweep
// (Cleanup, which Subscribe runs every EventOptions.Sweep, 30 s by
// default), emits "expired" with cause "idle" or "absolute" and removes
// the entry in the same script, so each timeout is reported once, a
// rotated session's under its new handle. A timeout event arrives within
// the sweep interval (plus one poll) after the timeout, as long as the
// interval is below EventsGrace (TestEventsEveryCause sweeps with
// Cleanup). A session whose key vanished before its expiry (eviction, a
// DEL by hand) is reported by the sweep as "revoked" with cause
// "vanished".
//
// # Stored data
//
// Values are encoded by Options.Codec (JSON by default) inside a one-byte
// versioned envelope. A value without a known envelope, metadata that is
// not a number, or a key of the wrong type is ErrCorrupt: the store never
// overwrites it. A value the codec cannot decode is ErrCorrupt when decoded.
//
// # The middleware
//
// Manager.LoadAndSave loads the session named by the cookie (one Get),
// exposes it through the request context, and saves the changed keys (one
// Update, or one Create for a new session) just before the response header
// is written. A request that changes nothing costs one Redis command
// (GET), plus the touch script once per TouchInterval per session; a
// request that changes something costs one more (the Update or Create):
// TestManagerEndToEnd counts both. Changes made after the response is
// committed are not saved and are logged (TestManagerNeverWritesAfterCommit). When Redis cannot be reached, ManagerOptions.ErrorHandler
// answers (503 by default, also when a write's outcome is unknown) and the
// log carries the session's handle, never
// its ID. Cookies default to HttpOnly, Secure, SameSite=Lax, Path=/;
// responses that set one carry Vary: Cookie and Cache-Control: no-store.
//
// Login moves the session to the user's slot: Rotate when the user does not
// change, else Create in the user's slot and Delete of the old session (two
// calls, since the two live in different slots).
//
// # Durable writes
//
// Redis replicates asynchronously: a write the master acknowledged can be
// lost if the master dies before a replica has it. With
// Options.DurableReplicas = N every write sends WAIT N after its script, in
// the same pipeline (still one round trip), and reports success only when N
// replicas confirmed it; otherwise it fails with ErrNotDurable (which
// matches retry.ErrAmbiguous: the master applied it, a failover may lose
// it). On Cluster the pair goes to the master of the session's slot, found
// in the client's slot map; a MOVED reply (the script did not run) reloads
// the map and sends it again. Not on a Ring, whose shards have no replicas.
//
// # Writes and lost replies
//
// A write whose reply is lost (a timeout, a reset after the request left)
// may or may not have run. go-redis re-sends such a command by default
// (MaxRetries 3), and a re-sent write could run twice. The store keeps
// "never applied twice" on any client it is given (a plain *redis.Client
// with default options, a ClusterClient, a failover client, a Ring, a
// rediskit.Client, in every Options.Pipelining mode), with no extra round
// trip and no extra server state, by sending each write one of two ways:
//
//   - Create and Update are sent with retry.Once: no retry loop of go-redis
//     re-sends them (they carry Cmder.NoRetry, which the client, the
//     cluster redirect loop, pipelines and the AutoPipeliner honour). Run
//     twice, Create could bring back a session deleted in between, and
//     Update would bump the version twice or fail its IfVersion after the
//     first run succeeded. A lost reply comes back as an error matching
//     retry.ErrAmbiguous; Create then also returns the Session, whose ID
//     Get settles.
//   - Every other write (Extend, Rotate, Delete, DeleteByUser, RevokeHandle,
//     the touch of Get) checks inside its script that the session exists
//     and leaves the same state when run twice (Rotate recognises its own
//     earlier run by the new key), so it is sent with retry.Repeatable: a
//     client's retries re-send it and the caller gets the definite answer.
//     Only counts may differ after a re-send (Delete may report false,
//     DeleteByUser 0). With no retry left the error matches
//     retry.ErrAmbiguous; Rotate then also returns the new ID. That holds
//     when the last re-send was refused too (a refused dial, LOADING while
//     the server restarts): such an error proves only that the last
//     attempt did not run, and an earlier one may have (retry.AmbiguousVia;
//     TestLostReplyThenRefused, internal/contract). A write's error reads
//     as retry.ErrUnavailable without ErrAmbiguous only when no attempt of
//     it ran.
//
// The marks cost no round trip and no allocation: a script sent this way
// allocates 9 times per call where go-redis's Script.Run allocates 11
// (BenchmarkScript in package retry). What is given up is go-redis's blind
// re-send of Create and Update: on a client that would have retried, the
// caller sees an ambiguous error where the re-send might have succeeded. internal/contract's
// TestLostReplyMatrix proves it for every write on every client kind, in
// every Pipelining mode, through a proxy that drops the reply after the
// server ran the write, asserting the server's state;
// TestLostReplyThenRefused takes the server down right after the drop, so
// that every re-send is refused.
//
// # Pipelining
//
// By default (Options.Pipelining: PipelineAdaptive) a per-session command
// goes through the client's go-redis AutoPipeliner while others of the
// store are in flight, and a lone one down whichever of the two paths (a
// pooled connection, the AutoPipeliner) has been faster for lone commands,
// one in 32 of them timed on the chosen path and one in 32 tried on the
// other, one in 256 while that one is more than 1.5x slower (TestLonePath
// and TestProbeEvery in internal/pipeline; pooled at first): a lone
// request gets the lower latency the machine offers, concurrent requests
// share round trips (still one command per operation). Create and
// Update, marked retry.Once, always go pooled in that mode (TestAdaptive in
// internal/pipeline): in a batch with other callers' reads, go-redis would
// send the two kinds as separate pipelines, one after the other, a round
// trip more for those callers (go-redis's splitRetryRuns). PipelineAlways
// sends every command through the AutoPipeliner, PipelineOff none. The AutoPipeliner is shared by every user
// of the client and belongs to the client: Store.Close leaves it open
// (TestSharedClientLifecycles in internal/contract). go-redis re-sends a
// failed batch whole, except the commands marked Once, so the guarantees
// above hold through it (TestLostReplyMatrix). go-redis has no AutoPipeliner
// for a Ring: adaptive runs as off there and New refuses PipelineAlways.
// When a store is the first to ask a *redis.Client that carries no
// AutoPipelineOptions for its AutoPipeliner, it asks for go-redis's blocking
// defaults with a batch target of 16 commands instead of 300, which go-redis
// then hands to every user of the client; a client with settings of its own,
// or whose AutoPipeliner exists, keeps them (TestAutoPipelinerSettings in
// internal/pipeline; bench/PIPELINE.md has the figures).
// bench/SESSIONS.md has the throughput of each mode.
package session
