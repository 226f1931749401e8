package linearize

import (
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/anishathalye/porcupine"
)

// FailoverInput marks a failover in a history. A failover is recorded as
// two operations: its start, an instant (call = return) some time before
// the fault promotes a replica, and its end, from the start until the old
// master has become a replica and the clients have moved. Both appear in
// every partition.
type FailoverInput struct{ End bool }

// FailoverOutput is the output of both failover operations.
type FailoverOutput struct{}

// fstate is a model's state with a failover's loss window: inside a window
// (between a failover's start and end), every state the model passes
// through is kept, and the end may return to any of them.
type fstate struct {
	cur    any
	stack  []any // states since the window opened (or since the last durable write)
	window bool
}

// WithFailover wraps a model so that it accepts what a failover may lose:
//
//   - Without durable writes (durable false), every write accepted after
//     the failover's start may be lost, acknowledged or not: at the
//     failover's end the state returns to any state it had since the start.
//     Replication is asynchronous, and a client keeps writing to the old
//     master until it learns of the new one. Writes before the start are
//     kept (the start is recorded well before the promotion, longer than
//     the replication lag).
//   - With durable writes (durable true, session.Options.DurableReplicas
//     set), an acknowledged write survives: it was confirmed by the replica
//     that is promoted, with every write before it. So the end may return
//     only to a state at or after the last acknowledged write. Writes with
//     an unknown outcome (ErrNotDurable) may be lost even when a read saw
//     them.
//
// ack reports whether an operation is an acknowledged write.
func WithFailover(m porcupine.NondeterministicModel, durable bool, ack func(input, output any) bool) porcupine.NondeterministicModel {
	eq := m.Equal
	w := m
	w.Partition = func(h []porcupine.Operation) [][]porcupine.Operation {
		var fo, rest []porcupine.Operation
		for _, op := range h {
			if _, ok := op.Input.(FailoverInput); ok {
				fo = append(fo, op)
			} else {
				rest = append(rest, op)
			}
		}
		parts := m.Partition(rest)
		for i := range parts {
			parts[i] = append(parts[i], fo...)
		}
		return parts
	}
	w.Init = func() []any {
		var out []any
		for _, s := range m.Init() {
			out = append(out, fstate{cur: s})
		}
		return out
	}
	w.Step = func(state, input, output any) []any {
		st := state.(fstate)
		if f, ok := input.(FailoverInput); ok {
			if !f.End {
				return []any{fstate{cur: st.cur, stack: []any{st.cur}, window: true}}
			}
			if !st.window { // an end before its start: impossible
				return nil
			}
			var out []any
			for _, s := range st.stack {
				out = append(out, fstate{cur: s})
			}
			return out
		}
		var out []any
		for _, next := range m.Step(st.cur, input, output) {
			ns := fstate{cur: next, window: st.window}
			if st.window {
				switch {
				case durable && ack(input, output):
					ns.stack = []any{next}
				case eq(next, st.cur):
					ns.stack = st.stack
				default:
					ns.stack = append(append([]any(nil), st.stack...), next)
				}
			}
			out = append(out, ns)
		}
		return out
	}
	w.Equal = func(a, b any) bool {
		x, y := a.(fstate), b.(fstate)
		if x.window != y.window || len(x.stack) != len(y.stack) || !eq(x.cur, y.cur) {
			return false
		}
		for i := range x.stack {
			if !eq(x.stack[i], y.stack[i]) {
				return false
			}
		}
		return true
	}
	if m.Hash != nil {
		w.Hash = func(state any) uint64 {
			st := state.(fstate)
			h := fnv.New64a()
			fmt.Fprint(h, m.Hash(st.cur), st.window, len(st.stack))
			return h.Sum64()
		}
	} else {
		w.Hash = nil
	}
	w.DescribeOperation = func(input, output any) string {
		if f, ok := input.(FailoverInput); ok {
			if f.End {
				return "failover end"
			}
			return "failover start"
		}
		return m.DescribeOperation(input, output)
	}
	w.DescribeState = func(state any) string {
		st := state.(fstate)
		var b strings.Builder
		b.WriteString(m.DescribeState(st.cur))
		if st.window {
			fmt.Fprintf(&b, " (failover: %d states to return to)", len(st.stack))
		}
		return b.String()
	}
	return w
}

// SessionAck reports whether a session operation is an acknowledged write.
func SessionAck(input, output any) bool {
	in, out := input.(SessionInput), output.(SessionOutput)
	return in.Op != SGet && in.Op != SDeleteByUserAgain && !out.Unknown && !out.NotFound && !out.Conflict
}
