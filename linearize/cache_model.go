package linearize

import (
	"fmt"

	"github.com/anishathalye/porcupine"
)

// CounterOp names an operation on a cache counter.
type CounterOp uint8

// The counter operations the model knows.
const (
	CIncr CounterOp = iota // Incr, or Decr with Delta negated
	CRead                  // Counter
)

// CounterInput is one call on counter Key.
type CounterInput struct {
	Op    CounterOp
	Key   int
	Delta int64
}

// CounterOutput is what it returned.
type CounterOutput struct {
	Unknown bool
	Value   int64 // Incr: the new value; Counter: the value
	Exists  bool  // Counter: whether there was one
}

type counter struct {
	V      int64
	Exists bool
}

// CounterModel is cache.Cache's counters, per key: Incr and Decr move the
// counter by delta atomically and return the new value (a missing counter
// starts at 0), Counter reads it. So every read equals the sum of the
// increments linearized before it: each acknowledged one exactly once
// (never a blind re-send, cache doc "Writes and lost replies"), and each
// one with an unknown outcome once or not at all.
var CounterModel = porcupine.NondeterministicModel{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		return partitionBy(h, func(in any) int { return in.(CounterInput).Key })
	},
	Init: func() []any { return []any{counter{}} },
	Step: func(state, input, output any) []any {
		st, in, out := state.(counter), input.(CounterInput), output.(CounterOutput)
		switch in.Op {
		case CIncr:
			next := counter{V: st.V + in.Delta, Exists: true}
			if out.Unknown {
				return []any{st, next}
			}
			return ifOK(out.Value == next.V, next)
		case CRead:
			return ifOK(out.Exists == st.Exists && out.Value == st.V, st)
		}
		return nil
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(CounterInput), output.(CounterOutput)
		res := fmt.Sprint(out.Value)
		if out.Unknown {
			res = "unknown"
		}
		if in.Op == CRead {
			return fmt.Sprintf("Counter(k%d) -> %s", in.Key, res)
		}
		return fmt.Sprintf("Incr(k%d, %d) -> %s", in.Key, in.Delta, res)
	},
	Equal:         func(a, b any) bool { return a.(counter) == b.(counter) },
	Hash:          func(state any) uint64 { return uint64(state.(counter).V) },
	DescribeState: func(state any) string { return fmt.Sprint(state.(counter).V) },
}

// GetOrSetOp names an operation on a GetOrSet key.
type GetOrSetOp uint8

// The GetOrSet operations the model knows.
const (
	GGetOrSet GetOrSetOp = iota
	GDelete
	// GDeleteAgain is the possible second run of a Delete that a client's
	// retries re-sent (DEL is idempotent and sent that way): recorded with
	// every Delete over the same interval, unknown outcome.
	GDeleteAgain
)

// GetOrSetInput is one call on Key. Loaded is what this call's loader
// returns if it runs: a value unique to the call.
type GetOrSetInput struct {
	Op     GetOrSetOp
	Key    int
	Loaded int
	// Outage: the call overlapped a window in which the server could not
	// be reached (Recorder.Outage). Its commit may then have failed on
	// every attempt, and the cache hands a load whose commit failed to its
	// callers without storing it (cache/lease.go, "commit").
	Outage bool
}

// GetOrSetOutput is what GetOrSet returned (Value), or that the outcome is
// unknown (an error: the call may have loaded and stored its value).
type GetOrSetOutput struct {
	Unknown bool
	Value   int
}

// GetOrSetModel is cache.Cache.GetOrSet with Delete, per key, no TTL
// passing during the run and no stale serving: a key holds nothing or one
// value (0: nothing). GetOrSet on a held value returns it; on nothing, it
// loads, stores and returns its own loader's value. So a value once
// returned is what every later GetOrSet returns, until a Delete. A Delete
// during a load wins: the load's callers get the value, which is not
// stored; the model places such a GetOrSet before the Delete. A miss that
// overlapped an outage (GetOrSetInput.Outage) may also return its load
// without storing it: its commit may have failed on every attempt. Loaders
// never fail in the workloads.
var GetOrSetModel = porcupine.NondeterministicModel{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		return partitionBy(h, func(in any) int { return in.(GetOrSetInput).Key })
	},
	Init: func() []any { return []any{0} },
	Step: func(state, input, output any) []any {
		st, in, out := state.(int), input.(GetOrSetInput), output.(GetOrSetOutput)
		switch in.Op {
		case GGetOrSet:
			if st != 0 {
				return ifOK(out.Unknown || out.Value == st, st)
			}
			if out.Unknown {
				return []any{st, in.Loaded}
			}
			if in.Outage && out.Value == in.Loaded {
				return []any{in.Loaded, st} // stored, or its commit failed
			}
			return ifOK(out.Value == in.Loaded, in.Loaded)
		case GDelete:
			if out.Unknown {
				return []any{st, 0}
			}
			return []any{0}
		case GDeleteAgain:
			return []any{st, 0}
		}
		return nil
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(GetOrSetInput), output.(GetOrSetOutput)
		res := fmt.Sprint(out.Value)
		if out.Unknown {
			res = "unknown"
		}
		switch in.Op {
		case GDelete:
			return fmt.Sprintf("Delete(k%d) -> %s", in.Key, res)
		case GDeleteAgain:
			return fmt.Sprintf("Delete(k%d) again?", in.Key)
		}
		if in.Outage {
			res += " (in an outage)"
		}
		return fmt.Sprintf("GetOrSet(k%d, load %d) -> %s", in.Key, in.Loaded, res)
	},
	Equal:         func(a, b any) bool { return a.(int) == b.(int) },
	Hash:          func(state any) uint64 { return uint64(state.(int)) },
	DescribeState: func(state any) string { return fmt.Sprint(state.(int)) },
}
