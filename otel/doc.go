// Package otel reports rediskit's session and cache operations as
// OpenTelemetry spans. It is its own module
// (github.com/rediskit/rediskit/otel), so the core module pulls in no
// OpenTelemetry code (TestCoreHasNoOTel): session and cache expose only a
// small Tracer interface of their own, which Tracer implements.
//
//	tr := otel.NewTracer() // the global TracerProvider, or WithTracerProvider(tp)
//	_ = tr.InstrumentClient(rdb) // go-redis command spans (redisotel), as children
//	store, _ := session.New(rdb, session.Options{Tracer: tr})
//	c, _ := cache.New(rdb, cache.Options{Prefix: "users", Tracer: tr})
//
// Spans, each a child of the span in the caller's context, with the key
// namespace (AttrNamespace) and the Redis commands it sends as children:
//
//   - session.Create, session.Get, session.Update, session.Delete,
//     session.Extend, session.Rotate, session.DeleteByUser
//     (TestSessionSpans), and session.Manager for one request through
//     Manager.LoadAndSave, with the Get and the save it runs as children
//     (TestManagerSpans); the handler runs with that span in its request's
//     context, so its own spans are children too;
//   - cache.Get, cache.Set, cache.MGet, cache.GetOrSet, cache.Delete and
//     cache.Clear, for Cache and Typed, with hit/miss and counts
//     (TestCacheSpans). A GetOrSet that loads has a cache.load child, whose
//     children are the loader's own spans (TestCacheSpans); one that waits
//     for another process's load has a cache.lease_wait child
//     (TestLeaseWaitSpan).
//
// A "not found" answer is the attribute AttrNotFound, not an error; any
// other error is recorded on the span and sets its status to Error
// (TestSessionSpans). No span holds a session token or ID, a session or
// cache value or the server's password: attributes carry namespaces,
// counts and outcomes only, and InstrumentClient turns off redisotel's
// db.statement, which would hold the commands' arguments
// (TestNoSecretsInSpans). A recorded error is the error the caller gets:
// a cache error names its key, and a loader's own error is recorded as the
// loader wrote it.
//
// The lease commit or release of a load runs on the Cache's own context
// (it must finish even when every caller has left) with the first caller's
// values, so its command is a child of that caller's cache.GetOrSet span
// (TestCacheSpans). Not traced: Stats, Cleanup, Iterate, GetMany,
// DeleteMany, ListByUser and RevokeHandle.
//
// Without a Tracer the hook costs no allocation (TestNoTracerNoAllocs in
// session and cache).
package otel
