package linearize

import (
	"fmt"
	"io"
	"math"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// Recorder collects a concurrent history. It is safe for concurrent use:
// every client goroutine records its own operations, with call and return
// times read from one monotonic clock.
type Recorder struct {
	start time.Time

	mu      sync.Mutex
	ops     []porcupine.Operation
	unknown []int // indexes of operations whose outcome is unknown
	last    int64
	outages [][2]int64 // windows without a reachable server (Outage)
}

// NewRecorder starts a history; its clock starts now.
func NewRecorder() *Recorder { return &Recorder{start: time.Now()} }

// Now is the recorder's clock: nanoseconds since NewRecorder, monotonic.
func (r *Recorder) Now() int64 { return int64(time.Since(r.start)) }

// At converts a time to the recorder's clock.
func (r *Recorder) At(t time.Time) int64 { return int64(t.Sub(r.start)) }

// Add records an operation that returned at ret with a known outcome.
func (r *Recorder) Add(client int, in, out any, call, ret int64) {
	r.mu.Lock()
	r.ops = append(r.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
	r.last = max(r.last, ret)
	r.mu.Unlock()
}

// AddUnknown records an operation whose outcome is unknown (an error
// matching retry.ErrAmbiguous, or any failure that does not prove the
// operation was not applied): it may take effect at any point after call,
// or never. History gives it a return time after every other operation's,
// so the checker may place it anywhere from its call on; the model accepts
// out (which says the outcome is unknown) with and without its effect.
func (r *Recorder) AddUnknown(client int, in, out any, call int64) {
	r.mu.Lock()
	r.unknown = append(r.unknown, len(r.ops))
	r.ops = append(r.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: math.MaxInt64})
	r.mu.Unlock()
}

// Outage records a window, from start to end, in which the server could
// not be reached. MarkOutages flags the operations that overlap one.
func (r *Recorder) Outage(start, end time.Time) {
	r.mu.Lock()
	r.outages = append(r.outages, [2]int64{r.At(start), r.At(end)})
	r.mu.Unlock()
}

// MarkOutages replaces the input of every operation with a known outcome
// that overlaps an outage window with mark(input); the model decides what
// an outage allows. Operations with an unknown outcome may have any effect
// already.
func (r *Recorder) MarkOutages(mark func(in any) any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.ops {
		op := &r.ops[i]
		if op.Return == math.MaxInt64 { // AddUnknown's
			continue
		}
		for _, w := range r.outages {
			if w[0] <= op.Return && op.Call <= w[1] {
				op.Input = mark(op.Input)
				break
			}
		}
	}
}

// History returns the recorded operations, the unknown ones ending after
// every known one.
func (r *Recorder) History() []porcupine.Operation {
	r.mu.Lock()
	defer r.mu.Unlock()
	ops := append([]porcupine.Operation(nil), r.ops...)
	end := r.last + 1
	for _, i := range r.unknown {
		end = max(end, ops[i].Call+1)
	}
	for _, i := range r.unknown {
		ops[i].Return = end
	}
	return ops
}

// Counts reports how many operations were recorded and how many of them
// had an unknown outcome.
func (r *Recorder) Counts() (ops, unknown int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ops), len(r.unknown)
}

// Result is the verdict on one history.
type Result struct {
	Ops, Unknown int
	Partitions   int
	Verdict      porcupine.CheckResult // Ok, Illegal or Unknown (timed out)
	Took         time.Duration         // the check's
	info         porcupine.LinearizationInfo
	model        porcupine.Model
}

// Check checks the recorded history against model, giving up after timeout
// (the verdict is then porcupine.Unknown, which callers must not count as
// a pass).
func Check(model porcupine.Model, r *Recorder, timeout time.Duration) Result {
	h := r.History()
	ops, unknown := r.Counts()
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(model, h, timeout)
	took := time.Since(start)
	parts := 1
	if model.Partition != nil {
		parts = len(model.Partition(h))
	}
	return Result{Ops: ops, Unknown: unknown, Partitions: parts, Verdict: res, Took: took, info: info, model: model}
}

// Visualize writes porcupine's HTML view of the history (each partition,
// the longest linearizable prefix and where it fails) to w.
func (res Result) Visualize(w io.Writer) error { return porcupine.Visualize(res.model, res.info, w) }

func (res Result) String() string {
	return fmt.Sprintf("%d operations (%d with unknown outcome) in %d partitions: %s (checked in %v)",
		res.Ops, res.Unknown, res.Partitions, res.Verdict, res.Took.Round(time.Millisecond))
}
