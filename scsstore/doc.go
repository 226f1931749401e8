// Package scsstore is a session store for github.com/alexedwards/scs/v2
// over Redis, for services moving from scs to rediskit one step at a time:
// keep scs's SessionManager, its middleware and its cookies, and store the
// sessions the way rediskit stores its own.
//
//	store, err := scsstore.New(rdb, scsstore.Options{}) // rdb: any go-redis client, rediskit's included
//	sessionManager := scs.New()
//	sessionManager.Store = store
//	http.ListenAndServe(":8080", sessionManager.LoadAndSave(mux))
//
// What it does differently from scs's goredisstore and redisstore:
//
//   - Tokens are hashed at rest. The key of a session is
//     Prefix + "{" + base64url(SHA-256(token)) + "}": a reader of the
//     keyspace, a dump or a replica learns no token (TestNoTokenAtRest).
//   - One round trip per operation: Find is one GET, Commit one SET with PX
//     (or one DEL when the expiry has passed), Delete one DEL
//     (TestRoundTrips; LegacyPrefix, below, adds to a miss and to Delete).
//   - Commit honours scs's expiry exactly: the key lives until expiry by the
//     application's clock, rounded up to the millisecond; an expiry in the
//     past deletes the session instead of storing it forever
//     (TestCommitExpiry). goredisstore passes a negative duration to SET,
//     which stores the key without a TTL (TestGoredisstorePastExpiry).
//   - Cluster-safe: every operation touches one key, the hash tag is the
//     token's hash, so sessions spread over every slot; All scans every
//     master (TestSessionManager/cluster).
//
// Iteration (SessionManager.Iterate, All, AllCtx) cannot return tokens, since
// none are stored. It returns handles instead: strings that Find, Commit and
// Delete of the same Store accept in place of the token, authenticated with a
// key the Store draws at New and never writes anywhere. Inside Iterate,
// SessionManager.Token returns the handle; Put followed by Commit, and
// Destroy, act on the session as usual (TestSessionManager). A handle is
// worth as much as a token while the Store lives: keep it out of logs and
// cookies. A handle from another Store instance is not found.
//
// Switching from goredisstore or redisstore: set Options.LegacyPrefix to
// their prefix ("scs:session:" by default). A Find that misses then reads
// the legacy key once and moves the session under its hashed key with the
// TTL it had left, so users stay signed in and each clear-text token leaves
// the keyspace at its first use; Delete removes both keys
// (TestLegacyMigration). Sessions never used again expire under their old
// TTL. All lists only sessions already moved.
//
// Why not session.Store: rediskit's session.Store draws its own tokens
// (they carry a hash tag of the user) and applies its own idle and absolute
// timeouts, while scs chooses the token and sets an absolute expiry at every
// Commit. Mapping one onto the other would take a token-translation key
// and a second round trip per request. This package therefore stores scs's
// encoded session as it is, under the hashed token, with go-redis directly.
// To move to rediskit's own sessions (per-user index, revoke all devices,
// timeouts enforced in Redis), create a session.Store session at the next
// sign-in and stop writing through this store.
package scsstore
