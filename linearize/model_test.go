package linearize

import (
	"slices"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// op builds one operation of a hand-written history.
func op(in, out any, call, ret int64) porcupine.Operation {
	return porcupine.Operation{Input: in, Output: out, Call: call, Return: ret}
}

// TestModelsRejectWhatTheyMust checks the models on small hand-written
// histories, each either allowed by what rediskit promises or not, so that
// every rule of the models is shown to be able to fail.
func TestModelsRejectWhatTheyMust(t *testing.T) {
	unknown := SessionOutput{Unknown: true}
	create := SessionInput{Op: SCreate, User: 1, ID: 1, Value: 7}
	get := SessionInput{Op: SGet, User: 1, ID: 1}
	upd := SessionInput{Op: SUpdate, User: 1, ID: 1, Key: "a", Value: 8}
	incr := CounterInput{Op: CIncr, Key: 1, Delta: 2}
	incr3 := CounterInput{Op: CIncr, Key: 1, Delta: 3}
	read := CounterInput{Op: CRead, Key: 1}
	start, end := FailoverInput{}, FailoverInput{End: true}
	// split is a failover window in which one client adds 3s and reads
	// them back while another adds 2 elsewhere: 2, then 5 and 8 on one
	// master, 4 on the other; then the ops given.
	split := func(then ...porcupine.Operation) []porcupine.Operation {
		return append([]porcupine.Operation{
			op(incr, CounterOutput{Value: 2}, 0, 1), op(start, FailoverOutput{}, 2, 2), op(end, FailoverOutput{}, 2, 20),
			op(incr3, CounterOutput{Value: 5}, 3, 4), op(incr, CounterOutput{Value: 4}, 5, 6),
			op(incr3, CounterOutput{Value: 8}, 7, 8)}, then...)
	}
	cases := []struct {
		name  string
		model porcupine.NondeterministicModel
		h     []porcupine.Operation
		ok    bool
	}{
		{"session read after create", SessionModel, []porcupine.Operation{
			op(create, SessionOutput{}, 0, 1), op(get, SessionOutput{Version: 1, A: 7}, 2, 3)}, true},
		{"session stale version", SessionModel, []porcupine.Operation{
			op(create, SessionOutput{}, 0, 1), op(upd, SessionOutput{Version: 2}, 2, 3),
			op(get, SessionOutput{Version: 1, A: 7}, 4, 5)}, false},
		{"update version bumped twice", SessionModel, []porcupine.Operation{
			op(create, SessionOutput{}, 0, 1), op(upd, SessionOutput{Version: 3}, 2, 3)}, false},
		{"unknown update seen or not", SessionModel, []porcupine.Operation{
			op(create, SessionOutput{}, 0, 1), op(upd, unknown, 2, 100),
			op(get, SessionOutput{Version: 1, A: 7}, 4, 5), op(get, SessionOutput{Version: 2, A: 8}, 6, 7)}, true},
		{"unknown update seen then gone", SessionModel, []porcupine.Operation{
			op(create, SessionOutput{}, 0, 1), op(upd, unknown, 2, 100),
			op(get, SessionOutput{Version: 2, A: 8}, 4, 5), op(get, SessionOutput{Version: 1, A: 7}, 6, 7)}, false},
		{"update after delete resurrects", SessionModel, []porcupine.Operation{
			op(create, SessionOutput{}, 0, 1), op(SessionInput{Op: SDelete, User: 1, ID: 1}, SessionOutput{Deleted: true}, 2, 3),
			op(upd, SessionOutput{Version: 2}, 4, 5)}, false},
		{"if-version conflict on the right version", SessionModel, []porcupine.Operation{
			op(create, SessionOutput{}, 0, 1),
			op(SessionInput{Op: SUpdate, User: 1, ID: 1, Key: "b", Value: 9, IfVersion: 1}, SessionOutput{Conflict: true}, 2, 3)}, false},
		{"rotate not found on a live session removes it", SessionModel, []porcupine.Operation{
			op(create, SessionOutput{}, 0, 1), op(SessionInput{Op: SRotate, User: 1, ID: 1}, SessionOutput{NotFound: true}, 2, 3),
			op(get, SessionOutput{Version: 1, A: 7}, 4, 5)}, false},
		{"old ID after rotate", SessionModel, []porcupine.Operation{
			op(create, SessionOutput{}, 0, 1), op(SessionInput{Op: SRotate, User: 1, ID: 1, NewID: 2}, SessionOutput{}, 2, 3),
			op(get, SessionOutput{Version: 2, A: 7}, 4, 5)}, false},
		{"counter sums increments", CounterModel, []porcupine.Operation{
			op(incr, CounterOutput{Value: 2}, 0, 1), op(incr, CounterOutput{Value: 4}, 2, 3),
			op(read, CounterOutput{Value: 4, Exists: true}, 4, 5)}, true},
		{"counter increment applied twice", CounterModel, []porcupine.Operation{
			op(incr, CounterOutput{Value: 2}, 0, 1), op(read, CounterOutput{Value: 4, Exists: true}, 2, 3)}, false},
		{"GetOrSet value changes without delete", GetOrSetModel, []porcupine.Operation{
			op(GetOrSetInput{Key: 1, Loaded: 5}, GetOrSetOutput{Value: 5}, 0, 1),
			op(GetOrSetInput{Key: 1, Loaded: 6}, GetOrSetOutput{Value: 6}, 2, 3)}, false},
		{"GetOrSet load not stored in an outage", GetOrSetModel, []porcupine.Operation{
			op(GetOrSetInput{Key: 1, Loaded: 5, Outage: true}, GetOrSetOutput{Value: 5}, 0, 1),
			op(GetOrSetInput{Key: 1, Loaded: 6}, GetOrSetOutput{Value: 6}, 2, 3)}, true},
		{"GetOrSet in an outage returns another load", GetOrSetModel, []porcupine.Operation{
			op(GetOrSetInput{Key: 1, Loaded: 5, Outage: true}, GetOrSetOutput{Value: 7}, 0, 1)}, false},
		{"GetOrSet in an outage replaces a stored value", GetOrSetModel, []porcupine.Operation{
			op(GetOrSetInput{Key: 1, Loaded: 5}, GetOrSetOutput{Value: 5}, 0, 1),
			op(GetOrSetInput{Key: 1, Loaded: 6, Outage: true}, GetOrSetOutput{Value: 6}, 2, 3)}, false},
		{"GetOrSet new value after delete", GetOrSetModel, []porcupine.Operation{
			op(GetOrSetInput{Key: 1, Loaded: 5}, GetOrSetOutput{Value: 5}, 0, 1),
			op(GetOrSetInput{Op: GDelete, Key: 1}, GetOrSetOutput{}, 2, 3),
			op(GetOrSetInput{Key: 1, Loaded: 6}, GetOrSetOutput{Value: 6}, 4, 5)}, true},
		{"failover loses a write in its window", WithFailover(CounterModel, false), []porcupine.Operation{
			op(incr, CounterOutput{Value: 2}, 0, 1), op(start, FailoverOutput{}, 2, 2), op(end, FailoverOutput{}, 2, 9),
			op(incr, CounterOutput{Value: 4}, 3, 4), op(read, CounterOutput{Value: 2, Exists: true}, 10, 11)}, true},
		{"failover loses a write before its window", WithFailover(CounterModel, true), []porcupine.Operation{
			op(incr, CounterOutput{Value: 2}, 0, 1), op(start, FailoverOutput{}, 2, 2), op(end, FailoverOutput{}, 2, 9),
			op(read, CounterOutput{Value: 0}, 10, 11)}, false},
		// Inside the window one client adds 3s on the old master and reads
		// them back while another has moved to the new one, which the
		// promoted replica started at 2: 2, 5 (old), 4 (new), 8 (old), then
		// the new master's 4 for good.
		{"failover with clients on both masters", WithFailover(CounterModel, true), split(
			op(read, CounterOutput{Value: 4, Exists: true}, 9, 10), op(read, CounterOutput{Value: 4, Exists: true}, 21, 22)), true},
		{"failover with one state refuses clients on both masters", WithFailover(CounterModel, false), split(
			op(read, CounterOutput{Value: 4, Exists: true}, 9, 10)), false},
		// Either master may be the one that survives (which client moved
		// first the history does not say), but not both: 10 would be
		// the writes of both.
		{"failover's two masters do not merge", WithFailover(CounterModel, true), split(
			op(read, CounterOutput{Value: 10, Exists: true}, 21, 22)), false},
		{"failover's survivor is one master's", WithFailover(CounterModel, true), split(
			op(read, CounterOutput{Value: 8, Exists: true}, 21, 22)), true},
		{"failover's new master starts before the window", WithFailover(CounterModel, true), []porcupine.Operation{
			op(incr, CounterOutput{Value: 2}, 0, 1), op(start, FailoverOutput{}, 2, 2), op(end, FailoverOutput{}, 2, 20),
			op(incr, CounterOutput{Value: 4}, 3, 4), op(incr, CounterOutput{Value: 2}, 5, 6)}, false},
		{"durable failover loses an unknown write a read saw", WithFailover(SessionModel, false), []porcupine.Operation{
			op(create, SessionOutput{}, 0, 1), op(start, FailoverOutput{}, 2, 2), op(end, FailoverOutput{}, 2, 9),
			op(upd, unknown, 3, 100), op(get, SessionOutput{Version: 2, A: 8}, 4, 5),
			op(get, SessionOutput{Version: 1, A: 7}, 10, 11)}, true},
		{"failover brings back a session rotated on the old master", WithFailover(SessionModel, false), []porcupine.Operation{
			op(create, SessionOutput{}, 0, 1), op(start, FailoverOutput{}, 2, 2), op(end, FailoverOutput{}, 2, 9),
			op(SessionInput{Op: SRotate, User: 1, ID: 1, NewID: 2}, SessionOutput{}, 3, 12),
			op(SessionInput{Op: SRotateAgain, User: 1, ID: 1, NewID: 2}, SessionOutput{Unknown: true}, 3, 12),
			op(get, SessionOutput{NotFound: true}, 4, 5), op(get, SessionOutput{Version: 1, A: 7}, 10, 11),
			op(SessionInput{Op: SGet, User: 1, ID: 2}, SessionOutput{Version: 2, A: 7}, 13, 14)}, true},
		{"session back after the failover's end", WithFailover(SessionModel, false), []porcupine.Operation{
			op(create, SessionOutput{}, 0, 1), op(start, FailoverOutput{}, 2, 2), op(end, FailoverOutput{}, 2, 5),
			op(SessionInput{Op: SDelete, User: 1, ID: 1}, SessionOutput{Deleted: true}, 6, 7),
			op(get, SessionOutput{Version: 1, A: 7}, 8, 9)}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := porcupine.CheckOperations(c.model.ToModel(), c.h); got != c.ok {
				t.Errorf("linearizable = %v, want %v", got, c.ok)
			}
		})
	}
}

// TestMarkOutages: the calls with a known outcome that overlap an outage
// window, by a nanosecond or wholly, are marked; those before or after it,
// and calls with an unknown outcome, are not.
func TestMarkOutages(t *testing.T) {
	r := NewRecorder()
	at := func(ns int64) time.Time { return r.start.Add(time.Duration(ns)) }
	r.Outage(at(100), at(200))
	for i, span := range [][2]int64{{10, 99}, {50, 100}, {150, 160}, {200, 250}, {201, 300}} {
		r.Add(0, GetOrSetInput{Key: i}, GetOrSetOutput{}, span[0], span[1])
	}
	r.AddUnknown(0, GetOrSetInput{Key: 9}, GetOrSetOutput{Unknown: true}, 120)
	r.MarkOutages(func(in any) any { g := in.(GetOrSetInput); g.Outage = true; return g })
	var marked []int
	for _, op := range r.History() {
		if in := op.Input.(GetOrSetInput); in.Outage {
			marked = append(marked, in.Key)
		}
	}
	if want := []int{1, 2, 3}; !slices.Equal(marked, want) {
		t.Errorf("marked %v, want %v", marked, want)
	}
}
