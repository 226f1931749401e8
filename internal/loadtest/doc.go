// Package loadtest drives a mixed rediskit workload at a fixed rate while a
// test injects faults, and checks afterwards that nothing was lost, doubled
// or left behind.
//
// A Driver sends session operations (create, get, update, rotate, delete)
// and cache operations (get, get-or-set, mset, incr/decr) through a
// rediskit.Client at Config.Rate operations per second for Config.Duration
// (longer while a fault announced with Driver.Fault is on, and for a second
// after the last one ends, so every fault is followed by operations that
// show its recovery), from a fixed pool of workers. It records, per operation kind, what was
// attempted and how each call ended, classified by typed error (the
// breaker's ErrCircuitOpen, retry.ErrUnavailable, retry.ErrAmbiguous,
// transient network failures, the caller's deadline, the packages' own
// sentinels), the time it took to recover after each fault the test
// announces with Driver.Fault, and panics caught in the workers.
//
// The driver keeps a ledger of what Redis acknowledged: the live sessions
// with the last value each acknowledged update wrote, the IDs whose delete
// or rotation was acknowledged, and per counter the acknowledged and
// ambiguous increments. The audit functions compare the ledger with what the
// servers hold afterwards: deleted sessions stay gone, every index entry
// names a live session, no stampede lease outlives its TTL, and a counter
// lies between its acknowledged increments and those plus the ambiguous ones.
// An Invalidator runs the cache-aside write path (GetOrSet, then a version
// bump and Delete) beside the load; AuditInvalidations checks that no value
// was written back over an acknowledged Delete.
//
// The scenarios live in this package's tests; see docs/RELIABILITY.md for
// the figures and the commands that produce them:
//
//	go test ./internal/loadtest -v                  # quick versions (CI)
//	go test ./internal/loadtest -v -long -timeout 30m # long versions
package loadtest
