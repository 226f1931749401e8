package cache

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rediskit/rediskit/internal/pipeline"
)

// Degrade chooses what GetOrSet does when Redis is unavailable (the error
// satisfies retry.IsUnavailable: the breaker is open, the server is down).
type Degrade int

const (
	// FailClosed returns an error matching retry.ErrUnavailable. The default.
	FailClosed Degrade = iota
	// FailOpen calls the loader directly (still deduplicated in-process) and
	// returns its value without storing it.
	FailOpen
)

// Options configures a Cache. The zero value of every field means "use the
// default"; only Prefix is required.
type Options struct {
	// Prefix names the namespace; keys are stored as "<Prefix>:v<Version>:<key>".
	// Required; it must not contain '{' or '}'.
	Prefix string
	// Version is the namespace version. Bumping it abandons every value
	// stored under the old one (they expire by TTL). Default 0.
	Version uint32

	// LoadTimeout bounds one loader call; the loader's context is detached
	// from the callers' and cancelled at this timeout or at Close. Default 10s.
	LoadTimeout time.Duration
	// LeaseTTL is the lifetime of the per-key lease that lets a single
	// process load a missing key. If its owner dies, another process takes
	// over once it expires. Default LoadTimeout + 2s; it is raised to
	// LoadTimeout if set lower.
	LeaseTTL time.Duration
	// LeasePoll is the fallback poll interval of a process waiting for
	// another's lease, in case its Pub/Sub notification is lost. Default 250ms.
	LeasePoll time.Duration

	// TTLJitter shortens every TTL by a random fraction in [0, TTLJitter), so
	// keys written together do not expire together. Range [0, 1). Default 0.
	TTLJitter float64
	// NegativeTTL is how long a "not found" answer of a loader (ErrNotFound)
	// is cached. Default 0: not cached.
	NegativeTTL time.Duration
	// StaleWhileRevalidate is how long after its TTL a value may still be
	// served by GetOrSet while one background refresh runs. Default 0: off.
	StaleWhileRevalidate time.Duration
	// StaleIfError is how long after its TTL a value may be served by
	// GetOrSet when the loader fails. Default 0: off.
	StaleIfError time.Duration
	// Degrade chooses fail-open or fail-closed when Redis is unavailable.
	// Default FailClosed.
	Degrade Degrade

	// Pipelining chooses how reads (Get, MGet, Exists, Counter), Set and
	// the lease commands of GetOrSet reach Redis. The default,
	// PipelineAdaptive, sends a command on the client's pooled connections
	// while it is the cache's only one in flight and through the client's
	// go-redis AutoPipeliner when others are, so a lone caller keeps pooled
	// latency and concurrent callers share round trips (BenchmarkAdaptive
	// in internal/pipeline; bench/: the "default options" rows).
	// PipelineAlways sends every one of them through the AutoPipeliner,
	// PipelineOff none. All of these commands are safe to repeat, as the
	// auto-pipeliner may re-send a failed batch; MSet, Delete and Incr
	// always use the client itself (Incr is sent once, and go-redis sends a
	// batch mixing such a command with others as separate pipelines, one
	// after the other: a round trip more for the callers batched with it).
	// On a rediskit.Client an open breaker refuses auto-pipelined batches
	// too.
	//
	// go-redis keeps one AutoPipeliner per client and hands the same one to
	// every caller; it belongs to the client. The Cache uses it and never
	// closes it: Close leaves it, and every other user of it, working
	// (TestSharedClientLifecycle). Whoever closes it early breaks every user
	// of the client; closing the client closes it. A *redis.Ring has none:
	// adaptive runs as off there, and New refuses PipelineAlways. When a
	// Cache is the first to ask a *redis.Client that carries no
	// AutoPipelineOptions for its AutoPipeliner, it asks for go-redis's
	// blocking defaults with a batch target of 16 commands instead of 300,
	// and go-redis hands that one to every user of the client; a client with
	// settings of its own, or whose AutoPipeliner exists, keeps them
	// (TestAutoPipelinerSettings in internal/pipeline; bench/PIPELINE.md).
	Pipelining Pipelining

	// Deprecated: AutoPipeline true means Pipelining: PipelineAlways.
	AutoPipeline bool

	// CompressThreshold is the payload size in bytes from which values are
	// flate-compressed. Default 4096; negative disables compression.
	CompressThreshold int
	// MaxValueSize caps a value's payload (before compression, and after
	// decompression when read back). Default 64 MiB.
	MaxValueSize int

	// ScanCount is the SCAN COUNT hint of Clear and Stats. Default 1000.
	ScanCount int64
	// UnlinkBatch is the most keys Clear unlinks in one round trip
	// per master. Default 500.
	UnlinkBatch int
	// MemorySample is how many keys per master Stats samples with MEMORY
	// USAGE. Default 32; negative disables sampling.
	MemorySample int

	// Near, when set, adds an in-process tier of decoded values in front of
	// Redis for the Typed caches over this Cache, invalidated by Redis
	// through CLIENT TRACKING; see NearOptions. Default nil: off.
	Near *NearOptions

	// Tracer, when set, reports Get, Set, MGet, GetOrSet (with its lease
	// wait and loader), Delete and Clear as spans; see Tracer and the
	// module github.com/rediskit/rediskit/otel. Default nil: no tracing,
	// at no cost.
	Tracer Tracer
}

// Pipelining is how reads and lease commands reach Redis: see
// Options.Pipelining.
type Pipelining int

const (
	// PipelineAdaptive: through the client's AutoPipeliner while commands
	// overlap; a lone command on whichever of the two paths has been faster
	// for lone commands (pooled at first): one in 32 is timed on the chosen
	// path, and one in 32 tried on the other, one in 256 while that one is
	// more than 1.5x slower (TestProbeEvery in internal/pipeline). The
	// default.
	PipelineAdaptive = Pipelining(pipeline.Adaptive)
	// PipelineAlways: every read and lease command through the
	// AutoPipeliner.
	PipelineAlways = Pipelining(pipeline.Always)
	// PipelineOff: every command on the client's pooled connections.
	PipelineOff = Pipelining(pipeline.Off)
)

func (p Pipelining) String() string { return pipeline.Mode(p).String() }

func (o Options) withDefaults() (Options, error) {
	if o.Prefix == "" {
		return o, badOption("Prefix", o.Prefix, "required")
	}
	if strings.ContainsAny(o.Prefix, "{}") {
		return o, badOption("Prefix", o.Prefix, "contains '{' or '}'")
	}
	if err := noNegative(
		durField{"LoadTimeout", o.LoadTimeout}, durField{"LeaseTTL", o.LeaseTTL}, durField{"LeasePoll", o.LeasePoll},
		durField{"NegativeTTL", o.NegativeTTL}, durField{"StaleWhileRevalidate", o.StaleWhileRevalidate},
		durField{"StaleIfError", o.StaleIfError},
	); err != nil {
		return o, err
	}
	if o.TTLJitter < 0 || o.TTLJitter >= 1 {
		return o, badOption("TTLJitter", o.TTLJitter, "out of [0, 1)")
	}
	if o.Degrade != FailClosed && o.Degrade != FailOpen {
		return o, badOption("Degrade", int(o.Degrade), "unknown")
	}
	if o.AutoPipeline && o.Pipelining == PipelineAdaptive {
		o.Pipelining = PipelineAlways
	}
	if !pipeline.Mode(o.Pipelining).Valid() {
		return o, badOption("Pipelining", int(o.Pipelining), "unknown")
	}
	if o.LoadTimeout == 0 {
		o.LoadTimeout = 10 * time.Second
	}
	if o.LeaseTTL == 0 {
		o.LeaseTTL = o.LoadTimeout + 2*time.Second
	}
	if o.LeaseTTL < o.LoadTimeout {
		o.LeaseTTL = o.LoadTimeout
	}
	if o.LeasePoll == 0 {
		o.LeasePoll = 250 * time.Millisecond
	}
	if o.CompressThreshold == 0 {
		o.CompressThreshold = 4096
	}
	if o.MaxValueSize <= 0 {
		o.MaxValueSize = 64 << 20
	}
	if o.ScanCount <= 0 {
		o.ScanCount = 1000
	}
	if o.UnlinkBatch <= 0 {
		o.UnlinkBatch = 500
	}
	if o.MemorySample == 0 {
		o.MemorySample = 32
	}
	if o.Near != nil {
		n, err := o.Near.withDefaults()
		if err != nil {
			return o, err
		}
		o.Near = &n
	}
	return o, nil
}

// OptionError reports an invalid Options field, as New returns it.
type OptionError struct {
	Field  string // the Options field at fault, "Near.MaxBytes" for NearOptions
	Value  string // the offending value, quoted when a string
	Reason string
	Err    error // the underlying error, when there is one
}

func (e *OptionError) Error() string {
	return "cache: Options." + e.Field + " = " + e.Value + ": " + e.Reason
}

// Unwrap returns the underlying error, if any.
func (e *OptionError) Unwrap() error { return e.Err }

func badOption(field string, value any, reason string) error {
	v := fmt.Sprint(value)
	if s, ok := value.(string); ok {
		v = strconv.Quote(s)
	}
	return &OptionError{Field: field, Value: v, Reason: reason}
}

// durField is a duration option and its field name, for noNegative.
type durField struct {
	name string
	v    time.Duration
}

// noNegative returns an *OptionError for the first negative duration.
func noNegative(fs ...durField) error {
	for _, f := range fs {
		if f.v < 0 {
			return badOption(f.name, f.v, "negative")
		}
	}
	return nil
}
