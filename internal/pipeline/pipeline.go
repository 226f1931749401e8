// Package pipeline sends a command either straight down one of the client's
// pooled connections or through the AutoPipeliner that go-redis keeps for
// the client, choosing per command by how many the caller has in flight.
//
// Neither path is best everywhere. On this project's 2-core machine the
// AutoPipeliner runs a lone caller at about 0.6-0.7x the pooled client (the
// hand-off to its flusher goroutine and back costs more than it saves when
// there is nothing to batch with) and 128 concurrent callers at about 5x
// (bench/CACHE.md and bench/SESSIONS.md: BenchmarkCacheGetHit and
// BenchmarkSessionRequest, rows "pooled", "autopipelined" and "adaptive").
// Adaptive takes the pooled path while at most one command of this Exec is
// in flight and the AutoPipeliner as soon as there are more, and for the
// next 64 commands after the last overlap, so concurrent callers whose
// in-flight count dips to one between batches stay on one path: a lone
// caller never pays the hand-off, and concurrent callers share round trips.
// A command marked retry.Once always goes pooled in Adaptive mode
// (TestAdaptive). The AutoPipeliner (and its goroutines) is fetched from
// the client only when two commands first overlap.
//
// Both paths run the client's hooks and honour retry.Once and
// retry.Repeatable marks (go-redis checks NoRetry in its pipeline retry
// loop as well), so the choice changes speed, never what a command does.
package pipeline

import (
	"context"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// Mode says how an Exec sends commands.
type Mode int

const (
	// Adaptive: pooled while one command is in flight, auto-pipelined above.
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
}

// New returns an Exec over rdb. A Ring has no AutoPipeliner (go-redis
// refuses one): Adaptive runs as Off there, and Always is an error.
func New(rdb redis.UniversalClient, m Mode) (*Exec, error) {
	e := &Exec{rdb: rdb, mode: m}
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
		return e.ap.Load().Process(ctx, cmd)
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
	if n > 1 && !noRetry(cmd) {
		if ap := e.pipeliner(); ap != nil {
			return ap.Process(ctx, cmd)
		}
	}
	return e.rdb.Process(ctx, cmd)
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
// pooled: in a batch it would stop go-redis from re-sending the whole batch
// after a network error, other callers' reads included.
func noRetry(cmd redis.Cmder) bool { return cmd.NoRetry() }

// AutoPipeliner returns the client's AutoPipeliner once the Exec has used
// it (from New with Always), or nil.
func (e *Exec) AutoPipeliner() *redis.AutoPipeliner { return e.ap.Load() }
