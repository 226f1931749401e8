// Package contract holds the tests of promises that cross packages and hold
// whatever client the user hands rediskit: a plain go-redis *redis.Client
// with default options, a *redis.ClusterClient, a Sentinel failover client,
// a *redis.Ring, and a rediskit.Client, each with and without
// AutoPipeline.
//
//   - TestLostReplyMatrix: every session and cache write whose reply is lost
//     after the server applied it is applied exactly once, and the caller is
//     told the outcome is unknown (retry.ErrAmbiguous) or, for a write that
//     is safe to repeat, gets the definite answer of a retry.
//   - TestSharedClientLifecycles: a session Store, a Manager, a Cache with
//     its near tier and the caller's own commands share one client; closing
//     any of them, in any order, leaves the others working, and closing the
//     client last leaves no goroutine.
//
// It has no code of its own: only these tests.
package contract
