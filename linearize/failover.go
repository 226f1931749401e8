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

// fstate is a model's state with a failover's loss window. Inside a window
// (between a failover's start and end) there may be two masters: cur is
// the old master's state and stack every state it passed through since
// the window opened; once an operation has run on the new master (forked),
// alt is the new master's state, which started from one of those. At the
// end the state is the new master's: alt if forked, otherwise any state of
// the stack (what the promoted replica had).
type fstate struct {
	cur    any
	stack  []any // the old master's states since the window opened; nil once forked
	window bool
	forked bool
	alt    any // the new master's state, once forked
}

// WithFailover wraps a model so that it accepts what a failover may lose:
// every write after the failover's start may be lost, acknowledged or not,
// durable or not: at the failover's end the state returns to any state it
// had since the start. Writes before the start are kept (the start is
// recorded well before the promotion, longer than the replication lag).
//
// Replication is asynchronous, and until every client has learned of the
// new master, the old and the new one both take writes: inside the window
// an operation runs on either, and the two states diverge from the
// promoted replica's (a client that has moved reads the new master while
// another still writes to the old one, and reads back its own writes
// there: TestLinearizableSentinelFailover saw both). With
// session.Options.DurableReplicas an acknowledged write survives (the
// replica confirmed it: internal/loadtest's TestSentinelDurableSessions
// and TestClusterDurableSessions check that), but the history around it is
// still not linearizable inside the window: a read on the old master may
// see a write that is then lost, and a retry.Repeatable write (Rotate,
// Delete) may run on the old master, be lost, and run again on the new one.
// A write acknowledged on the new master does not confirm the old master's
// writes before it, so no acknowledgement can narrow the window.
//
// twoMasters false keeps one state through the window: an operation on the
// old master after the promotion is then explained only as a write that is
// lost or a read of one. The two states multiply what the checker searches:
// the Sentinel run's session history, whose states are the largest, timed
// out at a minute with them in one CI run, so sessions are checked with
// one state, which every run has accepted (their writes are durable there,
// and one on the old master after the promotion ends with an unknown
// outcome).
func WithFailover(m porcupine.NondeterministicModel, twoMasters bool) porcupine.NondeterministicModel {
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
			if st.forked {
				return []any{fstate{cur: st.alt}}
			}
			var out []any
			for _, s := range st.stack {
				out = append(out, fstate{cur: s})
			}
			return out
		}
		var out []any
		// On the old master (the only one outside a window).
		for _, next := range m.Step(st.cur, input, output) {
			ns := st
			ns.cur = next
			if st.window && !st.forked && !eq(next, st.cur) {
				ns.stack = append(append([]any(nil), st.stack...), next)
			}
			out = append(out, ns)
		}
		if !st.window || !twoMasters {
			return out
		}
		// On the new master: the first there starts it from a state the
		// promoted replica may have had.
		if st.forked {
			for _, next := range m.Step(st.alt, input, output) {
				ns := st
				ns.alt = next
				out = append(out, ns)
			}
			return out
		}
		for _, from := range st.stack {
			for _, next := range m.Step(from, input, output) {
				out = append(out, fstate{cur: st.cur, window: true, forked: true, alt: next})
			}
		}
		return out
	}
	w.Equal = func(a, b any) bool {
		x, y := a.(fstate), b.(fstate)
		if x.window != y.window || x.forked != y.forked || len(x.stack) != len(y.stack) || !eq(x.cur, y.cur) {
			return false
		}
		if x.forked && !eq(x.alt, y.alt) {
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
			fmt.Fprint(h, m.Hash(st.cur), st.window, len(st.stack), st.forked)
			if st.forked {
				fmt.Fprint(h, m.Hash(st.alt))
			}
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
		switch {
		case st.forked:
			fmt.Fprintf(&b, " (failover: the new master at %s)", m.DescribeState(st.alt))
		case st.window:
			fmt.Fprintf(&b, " (failover: %d states to return to)", len(st.stack))
		}
		return b.String()
	}
	return w
}
