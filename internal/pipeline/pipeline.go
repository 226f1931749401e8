// Package pipeline sends a command either straight down one of the client's
// pooled connections or through the AutoPipeliner that go-redis keeps for
// the client, choosing per command by how many the caller has in flight.
//
// Neither path is best everywhere. With several commands in flight the
// AutoPipeliner shares round trips: 128 concurrent callers run at about 5x
// the pooled client (bench/CACHE.md and bench/SESSIONS.md:
// BenchmarkCacheGetHit and BenchmarkSessionRequest, rows "pooled",
// "autopipelined" and "adaptive"). With one, which path is faster is the
// machine's and the Go runtime's: the issue that asked for this package
// measured the AutoPipeliner at 0.6x the pooled client for a lone caller
// (go-redis's default settings), the first machine of bench/ measured the
// two alike, and the current one the AutoPipeliner about 12 % faster when
// idle and 43 % slower beside another benchmark process (bench/CACHE.md,
// "Get hit").
//
// Adaptive takes the AutoPipeliner as soon as two commands of this Exec
// are in flight, and for the next 64 commands after the last overlap, so
// concurrent callers whose in-flight count dips to one between batches stay
// on one path. A lone command takes the path measured faster for lone
// commands, pooled at first (lone: one in 32 is timed on each path). A
// command marked retry.Once always goes pooled in Adaptive mode
// (TestAdaptive). The AutoPipeliner (and its goroutines, which are the
// client's) is fetched from the client when two commands first overlap or
// the 32nd lone command tries it (TestLonePath).
//
// Both paths run the client's hooks and honour retry.Once and
// retry.Repeatable marks (go-redis checks NoRetry in its pipeline retry
// loop as well), so the choice changes speed, never what a command does.
package pipeline

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Mode says how an Exec sends commands.
type Mode int

const (
	// Adaptive: auto-pipelined while commands overlap; a lone command on
	// the path measured faster for lone commands (pooled at first).
	Adaptive Mode = iota
	// Always: every command through the AutoPipeliner.
	Always
	// Off: every command on the client's pooled connections.
	Off
)

// String names the mode as the options documentation does.
func (m Mode) String() string {
	switch m {
	case Adaptive:
		return "adaptive"
	case Always:
		return "always"
	case Off:
		return "off"
	}
	return "Mode(?)"
}

// Valid reports whether m is one of the modes.
func (m Mode) Valid() bool { return m >= Adaptive && m <= Off }

// Exec sends commands of one store or cache. It is safe for concurrent use.
type Exec struct {
	rdb  redis.UniversalClient
	mode Mode
	// ap is the client's AutoPipeliner, fetched when first needed: a
	// caller that never has two commands in flight never starts its
	// goroutines. noAP: the client has none (or refused one).
	ap   atomic.Pointer[redis.AutoPipeliner]
	noAP atomic.Bool
	// warm counts down the lone commands that still go through the
	// AutoPipeliner after commands last overlapped: concurrent callers
	// whose in-flight count dips to one between batches stay on one path.
	// Read-mostly under load, like the fields above.
	warm atomic.Int32
	// busy, written by every command, has a cache line of its own, so its
	// writes do not evict the read-mostly fields from the other cores.
	_    [64]byte
	busy atomic.Int32
	_    [60]byte
	// lone path: see lone. loneN counts lone commands; loneNs holds the
	// running mean latency of a lone command on each path (0: none yet).
	loneN  atomic.Uint32
	loneNs [2]atomic.Int64 // pooled, auto-pipelined
	loneAP atomic.Bool     // lone commands go through the AutoPipeliner
	// gate, when the client has one (SetGate), refuses a command before it
	// is handed to the AutoPipeliner.
	gate func() error
}

// New returns an Exec over rdb. A Ring has no AutoPipeliner (go-redis
// refuses one): Adaptive runs as Off there, and Always is an error.
func New(rdb redis.UniversalClient, m Mode) (*Exec, error) {
	e := &Exec{rdb: rdb, mode: m, gate: gateOf(rdb)}
	switch {
	case m == Always:
		ap, err := autoPipeliner(rdb)
		if err != nil {
			return nil, err
		}
		e.ap.Store(ap)
	case m == Off:
		e.noAP.Store(true)
	default:
		if _, ring := rdb.(*redis.Ring); ring {
			e.noAP.Store(true)
		}
	}
	return e, nil
}

// queue hands cmd to the AutoPipeliner, unless the client's gate refuses
// it now. The AutoPipeliner sends one batch at a time on its connection,
// and the client's hooks see a batch only when it leaves: without the gate,
// a command whose client's circuit breaker is open would wait for the batch
// in flight ahead of it (as long as a read timeout on a paused server), and
// only then be refused.
func (e *Exec) queue(ctx context.Context, ap *redis.AutoPipeliner, cmd redis.Cmder) error {
	if e.gate != nil {
		if err := e.gate(); err != nil {
			cmd.SetErr(err)
			return err
		}
	}
	return ap.Process(ctx, cmd)
}

// Gates: a client's owner may say that the client refuses commands right
// now, before they are sent (rediskit.Client while its circuit breaker is
// open). Every Exec made on that client afterwards asks before it queues a
// command. A plain go-redis client has none.
var gates sync.Map // redis.UniversalClient -> func() error

// SetGate makes refuse the gate of rdb: a non-nil error refuses a command,
// which fails with that error without being sent.
func SetGate(rdb redis.UniversalClient, refuse func() error) { gates.Store(rdb, refuse) }

// ClearGate removes the gate of rdb (the client is closed).
func ClearGate(rdb redis.UniversalClient) { gates.Delete(rdb) }

func gateOf(rdb redis.UniversalClient) func() error {
	if f, ok := gates.Load(rdb); ok {
		return f.(func() error)
	}
	return nil
}

// pipeliner returns the client's AutoPipeliner, or nil when it has none.
func (e *Exec) pipeliner() *redis.AutoPipeliner {
	if ap := e.ap.Load(); ap != nil {
		return ap
	}
	if e.noAP.Load() {
		return nil
	}
	ap, err := autoPipeliner(e.rdb) // go-redis makes one per client, under a lock
	if err != nil {
		e.noAP.Store(true)
		return nil
	}
	e.ap.Store(ap)
	return ap
}

// Process sends cmd down the path the mode and the current load choose.
func (e *Exec) Process(ctx context.Context, cmd redis.Cmder) error {
	if e.mode == Always {
		return e.queue(ctx, e.ap.Load(), cmd)
	}
	if e.noAP.Load() {
		return e.rdb.Process(ctx, cmd)
	}
	n := e.busy.Add(1)
	defer e.busy.Add(-1)
	if n > 1 {
		if e.warm.Load() < warmOps/2 { // read-mostly: 128 callers share this line
			e.warm.Store(warmOps)
		}
	} else if e.warm.Load() > 0 {
		n = 1 + e.warm.Add(-1) // still warm: as if others were in flight
	}
	switch {
	case noRetry(cmd):
	case n > 1:
		if ap := e.pipeliner(); ap != nil {
			return e.queue(ctx, ap, cmd)
		}
	default:
		return e.lone(ctx, cmd)
	}
	return e.rdb.Process(ctx, cmd)
}

// lone sends a command with no other of this Exec in flight down the path
// that has been faster for such commands: pooled at first. Which one that
// is depends on the machine, its load and the Go runtime, not on rediskit:
// on this project's machine, idle, the AutoPipeliner answered lone GETs
// faster than the pooled client, and beside another busy process slower
// (bench/CACHE.md, BenchmarkCacheGetHit at g=1). So lone commands follow
// the lower running mean of the two paths (chooseAP): one lone command in
// loneSample is timed on the chosen path, and one in probeEvery is sent
// down the other path and timed there. That probe is what the choice
// costs: a command that rides the slower path.
func (e *Exec) lone(ctx context.Context, cmd redis.Cmder) error {
	n := e.loneN.Add(1)
	probe := n%e.probeEvery() == 0
	useAP := e.loneAP.Load() != probe
	var ap *redis.AutoPipeliner
	if useAP {
		if ap = e.pipeliner(); ap == nil {
			useAP = false
		}
	}
	timed := probe || n%loneSample == loneSample/2
	var start time.Time
	if timed {
		start = time.Now()
	}
	var err error
	if useAP {
		err = e.queue(ctx, ap, cmd)
	} else {
		err = e.rdb.Process(ctx, cmd)
	}
	if timed && (err == nil || err == redis.Nil) {
		e.observe(useAP, time.Since(start))
	}
	return err
}

// One lone command in loneSample is timed on the chosen path, and one in
// loneSample sent down the other path while the two are alike; one in
// farSample while the other path is more than 1.5× slower, where each probe
// costs a whole slow command (the auto-pipelined path ran lone GETs at
// about half the pooled rate on one machine of this project's kind,
// bench/CACHE.md).
const (
	loneSample = 32
	farSample  = 256
)

// probeEvery returns how many lone commands go by between two probes of
// the path not chosen (see lone).
func (e *Exec) probeEvery() uint32 {
	chosen, other := e.loneNs[0].Load(), e.loneNs[1].Load()
	if e.loneAP.Load() {
		chosen, other = other, chosen
	}
	if chosen > 0 && other*2 > chosen*3 {
		return farSample
	}
	return loneSample
}

// observe adds a lone command's latency d on one path to that path's
// running mean and picks the path for the next lone commands.
func (e *Exec) observe(ap bool, d time.Duration) {
	i := 0
	if ap {
		i = 1
	}
	e.loneNs[i].Store(ewma(e.loneNs[i].Load(), int64(d)))
	p, a := e.loneNs[0].Load(), e.loneNs[1].Load()
	if p > 0 && a > 0 {
		e.loneAP.Store(chooseAP(e.loneAP.Load(), p, a))
	}
}

// ewma is the running mean after sample x (ns), weighing x 1/8; a sample
// above 4x the mean counts as 4x, so one reply that waited out a timeout
// does not swing the choice. 0 is no mean yet.
func ewma(mean, x int64) int64 {
	if mean == 0 {
		return max(x, 1)
	}
	return max(mean+(min(x, 4*mean)-mean)/8, 1)
}

// chooseAP reports whether lone commands go through the AutoPipeliner,
// given the current choice and the mean latencies of the pooled and the
// auto-pipelined path: a path must be 5 % faster to win the choice, so that
// noise between two alike does not flip it back and forth.
func chooseAP(cur bool, pooled, ap int64) bool {
	if cur {
		return ap*100 < pooled*105
	}
	return ap*100 < pooled*95
}

// Overlapping reports whether this Exec's next command rides an
// auto-pipelined batch: always with Always; with Adaptive while a command
// is in flight or commands overlapped lately (the lone commands that follow
// still go through the AutoPipeliner); never with Off. Under that load the
// server's time per command sets the pace of every batch.
func (e *Exec) Overlapping() bool {
	return e.mode == Always || e.busy.Load() > 0 || e.warm.Load() > 0
}

// BatchTarget is the batch size rediskit asks of an AutoPipeliner it
// creates: go-redis's blocking default, DefaultBlockingAutoPipelineOptions,
// otherwise unchanged, holds a flush until 300 commands are queued or every
// caller the last batch woke has sent its next one. Closed-loop callers that
// do real work between commands (a middleware request, a loader) then arrive
// over the whole time the CPU takes to run them all, and the batch leaves
// only when the last arrives: the CPU idles while the batch is in flight,
// and the connection while the callers run. A target of 16 sends a batch as
// soon as 16 are queued, and the rest queue behind it. On this project's
// machine that gained most at 64-128 callers that work between commands
// (the session request, the GetOrSet miss), for rediskit and for the peers
// on the same client (BenchmarkAutoPipelineSettings, bench/PIPELINE.md).
const BatchTarget = 16

// Options returns the AutoPipeliner settings rediskit asks for: go-redis's
// blocking default with MaxBatchSize set to BatchTarget.
func Options() *redis.AutoPipelineOptions {
	o := redis.DefaultBlockingAutoPipelineOptions()
	o.MaxBatchSize = BatchTarget
	return o
}

// autoPipeliner returns rdb's AutoPipeliner. go-redis keeps one per client
// and the first caller's settings make it: a *redis.Client whose Options
// carry no AutoPipelineOptions is asked for Options(); a client configured
// with its own settings, any other client, or one whose AutoPipeliner
// already exists keeps what it has (TestAutoPipelinerSettings).
func autoPipeliner(rdb redis.UniversalClient) (*redis.AutoPipeliner, error) {
	if c, ok := rdb.(*redis.Client); ok && c.Options().AutoPipelineOptions == nil {
		return c.AutoPipelineWithOptions(Options())
	}
	return rdb.AutoPipeline()
}

// warmOps is how many lone commands stay auto-pipelined after an overlap.
const warmOps = 64

// noRetry reports a command marked retry.Once. Adaptive mode sends it
// pooled: go-redis (v9.23, autopipeline.go: splitRetryRuns) sends a batch
// mixing commands that may and may not be re-sent as several pipelines,
// one after the other, so the callers batched with it would wait a round
// trip more.
func noRetry(cmd redis.Cmder) bool { return cmd.NoRetry() }

// AutoPipeliner returns the client's AutoPipeliner once the Exec has used
// it (from New with Always), or nil.
func (e *Exec) AutoPipeliner() *redis.AutoPipeliner { return e.ap.Load() }
