// Package linearize checks concurrent histories of rediskit's session store
// and cache against sequential models of what they promise, with
// github.com/anishathalye/porcupine, in the style of Jepsen: several
// clients (each its own goroutine, go-redis client, Store or Cache) run a
// random workload while faults are injected into real redis-server
// processes, every call is recorded with its call and return times, and the
// checker searches for an order of the calls, each placed between its call
// and return, that the model accepts.
//
// The models are SessionModel, CounterModel and GetOrSetModel; each says
// what it checks and what it leaves out. WithFailover wraps one for runs
// with failovers: what a failover may lose. A call whose outcome is unknown
// (an error matching retry.ErrAmbiguous, or any error of a write that does
// not prove the write was not applied) is recorded with Recorder.AddUnknown:
// it may take effect at any point after its call, or never. A failed read
// constrains nothing and is not recorded. An error that proves a write was
// not sent (retry.IsUnavailable and not ambiguous) is recorded as nothing
// having happened: if the write had run, the checker finds the history
// illegal.
//
// It is its own module so that the core module does not depend on
// porcupine. The tests and their faults are in the _test files; the
// consistency each operation offers, and what the checks found, are in
// docs/RELIABILITY.md ("Linearizability").
package linearize
