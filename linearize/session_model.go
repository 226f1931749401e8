package linearize

import (
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"strings"

	"github.com/anishathalye/porcupine"
)

// SessionOp names an operation of session.Store.
type SessionOp uint8

// The session operations the model knows.
const (
	SCreate SessionOp = iota
	SGet
	SUpdate
	SExtend
	SRotate
	SDelete
	SDeleteByUser
	// SDeleteByUserAgain is the possible second run of a DeleteByUser that
	// a client's retries re-sent (it is sent with retry.Repeatable): each
	// DeleteByUser is recorded with one of these over the same interval,
	// with an unknown outcome. See SessionModel.
	SDeleteByUserAgain
	// SRotateAgain and SDeleteAgain are the possible second runs of a
	// Rotate and a Delete (both retry.Repeatable) in runs with failovers,
	// where a first run may be lost with the old master and the re-send
	// applies it again on the new one. Unknown outcome, same interval.
	SRotateAgain
	SDeleteAgain
)

var sessionOpNames = [...]string{"Create", "Get", "Update", "Extend", "Rotate", "Delete", "DeleteByUser", "DeleteByUser(again?)", "Rotate(again?)", "Delete(again?)"}

func (o SessionOp) String() string { return sessionOpNames[o] }

// SessionInput is one call. IDs are the recorder's small numbers for
// session IDs, never the IDs themselves (they are secrets).
type SessionInput struct {
	Op        SessionOp
	User      int    // the partition: every session of a user is one partition
	ID        int    // the session operated on; for Create, the one created
	NewID     int    // Rotate: the ID it returned
	Key       string // Update: the value key set ("a" or "b"); Create sets "a"
	Value     int    // Create, Update: the value written
	IfVersion int64  // Update: Changes.IfVersion (0: none)
}

// SessionOutput is what the call returned.
type SessionOutput struct {
	Unknown  bool  // the outcome is unknown: applied or not
	NotFound bool  // ErrNotFound
	Conflict bool  // ErrConflict
	Deleted  bool  // Delete's result
	Version  int64 // Get: the session's version; Update: the new version
	A, B     int   // Get: the values under "a" and "b" (0: none)
}

// sess is one live session in the model.
type sess struct {
	ID   int
	Ver  int64
	A, B int
}

// userState is the live sessions of one user, sorted by ID. Steps never
// modify a userState; they build a new one.
type userState []sess

func (u userState) find(id int) (sess, bool) {
	i := sort.Search(len(u), func(i int) bool { return u[i].ID >= id })
	if i < len(u) && u[i].ID == id {
		return u[i], true
	}
	return sess{}, false
}

func (u userState) without(id int) userState {
	out := make(userState, 0, len(u))
	for _, s := range u {
		if s.ID != id {
			out = append(out, s)
		}
	}
	return out
}

func (u userState) with(s sess) userState {
	out := append(u.without(s.ID), s)
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// SessionModel is the sequential specification of session.Store, per user,
// as its documentation promises it on one master (a standalone server, or
// the master a failover client or a cluster slot map names):
//
//   - Create adds a live session at version 1 holding its values.
//   - Get returns the live session's version and values, or ErrNotFound.
//   - Update on a live session writes the named key and bumps the version
//     by one, returning it; with IfVersion set and not the stored version it
//     writes nothing and fails with ErrConflict. On a missing session it is
//     ErrNotFound and writes nothing (no resurrection).
//   - Extend succeeds on a live session and changes nothing the model
//     observes (version and values stay); else ErrNotFound.
//   - Rotate moves a live session to the returned ID and bumps its version;
//     the old ID is gone. Else ErrNotFound. A client's retries may re-send
//     Rotate (it is retry.Repeatable); when the session it rotated to was
//     deleted before the re-send, the re-send reports ErrNotFound although
//     the rotation ran (found by TestLinearizableProxyFaults). So
//     ErrNotFound promises only that the old ID is gone afterwards.
//   - Delete removes the session. true means it was live. false promises
//     nothing about before: a client's retries may re-send Delete (it is
//     retry.Repeatable) and the re-send reports false after the first run
//     deleted it (session doc, "Writes and lost replies").
//   - DeleteByUser removes every session of the user. Its count is not
//     checked (a re-send reports the second run's count). A re-send may
//     run again later within the call and remove sessions created in
//     between: the model allows one more removal of everything at any point
//     within the call (SDeleteByUserAgain).
//
// An unknown outcome (Output.Unknown) allows the state with and without
// the operation's effect. Timeouts are out of the model: the workloads use
// sessions that do not expire while they run.
var SessionModel = porcupine.NondeterministicModel{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		return partitionBy(h, func(in any) int { return in.(SessionInput).User })
	},
	Init: func() []any { return []any{userState{}} },
	Step: func(state, input, output any) []any {
		return sessionStep(state.(userState), input.(SessionInput), output.(SessionOutput))
	},
	Equal: func(a, b any) bool { return slices.Equal(a.(userState), b.(userState)) },
	Hash: func(state any) uint64 {
		h := fnv.New64a()
		for _, s := range state.(userState) {
			fmt.Fprintf(h, "%d,%d,%d,%d;", s.ID, s.Ver, s.A, s.B)
		}
		return h.Sum64()
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(SessionInput), output.(SessionOutput)
		return in.String() + " -> " + out.String()
	},
	DescribeState: func(state any) string {
		var b strings.Builder
		for _, s := range state.(userState) {
			fmt.Fprintf(&b, "s%d{v%d a=%d b=%d} ", s.ID, s.Ver, s.A, s.B)
		}
		return b.String()
	},
}

func (in SessionInput) String() string {
	switch in.Op {
	case SCreate:
		return fmt.Sprintf("Create(u%d, a=%d)=s%d", in.User, in.Value, in.ID)
	case SUpdate:
		return fmt.Sprintf("Update(s%d, %s=%d, if=%d)", in.ID, in.Key, in.Value, in.IfVersion)
	case SRotate, SRotateAgain:
		return fmt.Sprintf("%s(s%d)=s%d", in.Op, in.ID, in.NewID)
	case SDeleteByUser, SDeleteByUserAgain:
		return fmt.Sprintf("%s(u%d)", in.Op, in.User)
	}
	return fmt.Sprintf("%s(s%d)", in.Op, in.ID)
}

func (out SessionOutput) String() string {
	switch {
	case out.Unknown:
		return "unknown"
	case out.NotFound:
		return "not found"
	case out.Conflict:
		return "conflict"
	}
	return fmt.Sprintf("{v%d a=%d b=%d deleted=%v}", out.Version, out.A, out.B, out.Deleted)
}

func sessionStep(st userState, in SessionInput, out SessionOutput) []any {
	cur, live := st.find(in.ID)
	// either returns the states an unknown outcome allows: without and
	// with the effect.
	either := func(applied userState) []any {
		if out.Unknown {
			return []any{st, applied}
		}
		return []any{applied}
	}
	switch in.Op {
	case SCreate:
		return either(st.with(sess{ID: in.ID, Ver: 1, A: in.Value}))
	case SGet:
		if out.NotFound {
			return ifOK(!live, st)
		}
		return ifOK(live && cur.Ver == out.Version && cur.A == out.A && cur.B == out.B, st)
	case SUpdate:
		applies := live && (in.IfVersion == 0 || in.IfVersion == cur.Ver)
		switch {
		case out.Unknown:
			if !applies {
				return []any{st}
			}
			return []any{st, st.with(updated(cur, in))}
		case out.NotFound:
			return ifOK(!live, st)
		case out.Conflict:
			return ifOK(live && in.IfVersion != 0 && in.IfVersion != cur.Ver, st)
		}
		return ifOK(applies && out.Version == cur.Ver+1, st.with(updated(cur, in)))
	case SExtend:
		switch {
		case out.Unknown:
			return []any{st}
		case out.NotFound:
			return ifOK(!live, st)
		}
		return ifOK(live, st)
	case SRotate:
		if out.Unknown {
			if !live {
				return []any{st}
			}
			return []any{st, rotated(st, cur, in.NewID)}
		}
		if out.NotFound {
			if live {
				// A re-send may report ErrNotFound after the first run
				// rotated the session, when the new session was deleted in
				// between: the old ID is gone either way.
				return []any{st.without(in.ID)}
			}
			return []any{st}
		}
		return ifOK(live, rotated(st, cur, in.NewID))
	case SDelete:
		if out.Deleted {
			return ifOK(live, st.without(in.ID))
		}
		return either(st.without(in.ID))
	case SDeleteByUser:
		return either(userState{})
	case SDeleteByUserAgain:
		return []any{st, userState{}}
	case SRotateAgain:
		if !live {
			return []any{st}
		}
		return []any{st, rotated(st, cur, in.NewID)}
	case SDeleteAgain:
		return []any{st, st.without(in.ID)}
	}
	return nil
}

func updated(s sess, in SessionInput) sess {
	s.Ver++
	if in.Key == "a" {
		s.A = in.Value
	} else {
		s.B = in.Value
	}
	return s
}

func rotated(st userState, s sess, newID int) userState {
	st = st.without(s.ID)
	s.ID, s.Ver = newID, s.Ver+1
	return st.with(s)
}

// ifOK returns the one next state when ok, else no state: the step is
// impossible.
func ifOK(ok bool, next any) []any {
	if !ok {
		return nil
	}
	return []any{next}
}

// partitionBy splits a history by a key of each operation's input.
func partitionBy(h []porcupine.Operation, key func(any) int) [][]porcupine.Operation {
	idx := map[int]int{}
	var parts [][]porcupine.Operation
	for _, op := range h {
		k := key(op.Input)
		i, ok := idx[k]
		if !ok {
			i = len(parts)
			idx[k] = i
			parts = append(parts, nil)
		}
		parts[i] = append(parts[i], op)
	}
	return parts
}
