// Package retry decides when a failed Redis call may be repeated, and
// repeats it.
//
// go-redis retries every command by default, writes included: an INCR whose
// reply was lost is sent again and applied twice, without an error. This
// package replaces that with a rule: a command is sent again only when doing
// so cannot change the outcome —
//
//   - the error proves it never ran (NotApplied: a failed dial, a pool
//     timeout, LOADING, READONLY, TRYAGAIN, MOVED, the breaker refusing it);
//   - the command is idempotent (IsIdempotent: reads, SET without NX/XX/GET,
//     DEL, EXPIRE without options, HSET, SADD, ZADD without INCR, …);
//   - or the caller vouched for it with WithIdempotent.
//
// Any other write whose reply was lost fails with an *AmbiguousError, which
// matches ErrAmbiguous and unwraps to the cause: the caller knows the write
// may or may not have been applied, and decides (read back, reconcile, or
// report).
//
// Hook applies the rule to every command and pipeline of a go-redis client
// whose own retries are off (MaxRetries: -1); Install also covers the retry
// loop that go-redis's ClusterClient runs regardless of MaxRetries. Retries
// wait with full-jitter exponential backoff (Policy) and never past the
// context's deadline. Do applies the same policy to a caller's own
// multi-step operation.
//
// A client the user built has none of that: go-redis re-sends whatever
// failed. Once and Repeatable mark a single command instead, so that
// session and cache keep their promise on any client they are given: a
// command sent with Once is never re-sent by any go-redis retry loop once it
// may have reached the server (Cmder.NoRetry, which the client, the cluster
// redirect loop, pipelines and the AutoPipeliner honour), and Ambiguous
// turns its lost reply into an *AmbiguousError; a command sent with
// Repeatable is one the Hook may re-send like a read, also through an
// AutoPipeliner, where a context mark does not reach the Hook. Script runs
// a Lua script either way. TestOnceOnPlainClient shows a default go-redis
// client applying a script twice and Once applying it once;
// BenchmarkScript shows the marks cost no allocation. When a client's own
// loops re-send a Repeatable command (ResendsAfterLostReply), only the last
// attempt's error comes back: a refused dial then proves nothing about an
// earlier attempt whose reply was lost, and AmbiguousVia reports it as
// ambiguous (TestAmbiguousVia).
//
// Classify sorts errors into classes (none, caller, transient, unavailable,
// ambiguous) through any wrapping; IsUnavailable and IsInfrastructure are
// the predicates fail-open callers and circuit breakers use. IsContext
// reports the caller's own context ending, alone or as the cause of an
// *AmbiguousError (a write whose deadline passed after it was sent): such an
// error matches both ErrAmbiguous and context.DeadlineExceeded, and is never
// an infrastructure failure (TestContextErrors).
//
//	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
//	retry.NewHook(retry.Policy{}).Install(rdb)
//	n, err := rdb.Incr(ctx, "visits").Result()
//	if errors.Is(err, retry.ErrAmbiguous) {
//		// the increment may or may not have happened
//	}
package retry
