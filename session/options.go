package session

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rediskit/rediskit/internal/pipeline"
)

// LimitPolicy says what Create does when a user already has
// Options.MaxPerUser live sessions.
type LimitPolicy int

const (
	// RevokeOldest deletes the user's oldest sessions (by creation time) to
	// make room. It is the default.
	RevokeOldest LimitPolicy = iota
	// RefuseNew makes Create fail with ErrLimit.
	RefuseNew
)

// Options configures a Store. The zero value of every field means "use the
// default" stated in its comment.
type Options struct {
	// Prefix starts every key. It must not contain '{' or '}' (they would
	// break the hash tag that keeps a user's keys in one slot).
	// Default "session:".
	Prefix string

	// IdleTimeout is the sliding timeout: a session not used for this long is
	// gone. Default 30 minutes.
	IdleTimeout time.Duration

	// AbsoluteTimeout is the hard cap from creation, whatever the activity.
	// Default 24 hours. Extend can push a session's deadline further.
	AbsoluteTimeout time.Duration

	// TouchInterval is how stale last-seen may get before Get rewrites it and
	// slides the idle expiry. Below this age Get is one plain read (GET);
	// at or above it Get runs the touch script after the read (two round
	// trips). Keep it well below IdleTimeout: a session used only every
	// TouchInterval slides its expiry that often. A session with its own
	// idle timeout (CreateOptions.IdleTimeout) uses this interval scaled by
	// its idle timeout over the store's, so its touches keep the same
	// proportion (TestPerSessionTimeouts). Default IdleTimeout/64, at most
	// one minute. Negative means every Get writes: then Get always runs the
	// script, in one round trip.
	TouchInterval time.Duration

	// MaxPerUser caps the live sessions of one user. Default 0: no cap.
	MaxPerUser int

	// OnLimit is what Create does at the cap. Default RevokeOldest.
	OnLimit LimitPolicy

	// Codec encodes values. Default JSONCodec.
	Codec Codec

	// UserKey, when set, keys the hash that turns a user ID into the tag
	// carried by tokens and keys (HMAC-SHA256). Without it a token reveals a
	// plain SHA-256 of its user's ID to whoever holds the token. Changing it
	// orphans existing per-user indexes. Default none.
	UserKey []byte

	// MaxValueBytes caps one encoded value. Default 64 KiB.
	MaxValueBytes int

	// Clock supplies "now". Default nil: scripts read the Redis server's
	// TIME, so all application servers share one clock, and Get decides
	// whether a touch is due by the local clock corrected to Redis TIME.
	Clock func() time.Time

	// Pipelining chooses how the per-session commands (Create, Get,
	// Update, Delete, Extend, Rotate) reach Redis. The default,
	// PipelineAdaptive, sends a command on the client's pooled connections
	// while it is the store's only one in flight and through the client's
	// go-redis AutoPipeliner when others are, so a lone caller keeps pooled
	// latency and concurrent callers share round trips (BenchmarkAdaptive
	// in internal/pipeline; bench/: the "default options" rows).
	// PipelineAlways sends every one through the AutoPipeliner,
	// PipelineOff none. Stats, Cleanup and Preload use the client itself.
	//
	// The AutoPipeliner is the one go-redis keeps per client and shares
	// with every other user of it: the client owns it, Store.Close leaves it
	// open, and closing the client closes it. Writes keep their guarantee on
	// every path: Create and Update are sent with retry.Once, which go-redis
	// honours in its pipelines too, and go on pooled connections even in
	// adaptive mode, so they never stop the re-send of other callers'
	// batched reads; every other write is safe to repeat
	// (TestLostReplyMatrix). A Ring has no AutoPipeliner: adaptive runs as
	// off there, and New refuses PipelineAlways.
	Pipelining Pipelining

	// Deprecated: AutoPipeline true means Pipelining: PipelineAlways.
	AutoPipeline bool

	// DurableReplicas, when above 0, makes every write (Create, Update,
	// Delete, Extend, Rotate, DeleteByUser, RevokeHandle) wait until that
	// many replicas have confirmed it before reporting success: a WAIT sent
	// right after the script in the same pipeline, so still one round trip.
	// A write not confirmed within DurableTimeout fails with ErrNotDurable:
	// the master applied it, a failover may lose it. For a standalone server
	// with replicas, a Sentinel (failover) client, or a Cluster client (the
	// pipeline goes to the master of the session's slot); New refuses it
	// with a Ring client. The touch of Get does not wait. Default 0: no wait.
	DurableReplicas int

	// DurableTimeout bounds the WAIT of a durable write. Keep it well below
	// the client's ReadTimeout, which bounds the whole round trip. Default
	// 250 ms when DurableReplicas is set.
	DurableTimeout time.Duration

	// Tracer, when set, reports Create, Get, Update, Delete, Extend,
	// Rotate, DeleteByUser and each Manager request as spans; see Tracer
	// and the module github.com/rediskit/rediskit/otel. Default nil: no
	// tracing, at no cost.
	Tracer Tracer

	// Events, when true, makes every write script append a lifecycle event
	// (created, rotated, revoked, expired) of the session to an event
	// stream, in the same script as the change: see Store.Subscribe and
	// "Events" in the package documentation. It costs one XADD (and an
	// HSET or HDEL of a side record) per write, and two small keys per
	// anonymous session (an index of its own, so its timeout is reported).
	// Default false: the write scripts run as before, with no stream. Every
	// Store on one Prefix must agree: a store without events writes
	// sessions whose side records the others' scripts and sweeps miss.
	Events bool

	// EventsMaxLen is the approximate length (XADD MAXLEN ~) each event
	// stream is trimmed to. A subscriber that falls further behind loses
	// the oldest events. Default 10000.
	EventsMaxLen int64

	// EventsGrace is how long a user's index outlives its last session when
	// Events is on, so a sweeper (EventOptions.Sweep, or Cleanup) can still
	// report the timeouts of the last sessions. It must exceed the sweep
	// interval. Default 10 minutes.
	EventsGrace time.Duration
}

const (
	maxKeyBytes  = 256
	maxMetaBytes = 512
)

// Pipelining is how the per-session commands reach Redis: see
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
	// PipelineAlways: every per-session command through the AutoPipeliner.
	PipelineAlways = Pipelining(pipeline.Always)
	// PipelineOff: every command on the client's pooled connections.
	PipelineOff = Pipelining(pipeline.Off)
)

func (p Pipelining) String() string { return pipeline.Mode(p).String() }

func (o Options) withDefaults() (Options, error) {
	if o.Prefix == "" {
		o.Prefix = "session:"
	}
	if strings.ContainsAny(o.Prefix, "{}") {
		return o, badOption("Prefix", o.Prefix, "must not contain '{' or '}'")
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = 30 * time.Minute
	}
	if o.IdleTimeout < time.Millisecond {
		return o, badOption("IdleTimeout", o.IdleTimeout, "must be at least 1ms")
	}
	if o.AbsoluteTimeout == 0 {
		o.AbsoluteTimeout = 24 * time.Hour
	}
	if o.AbsoluteTimeout < time.Millisecond {
		return o, badOption("AbsoluteTimeout", o.AbsoluteTimeout, "must be at least 1ms")
	}
	if o.TouchInterval == 0 {
		o.TouchInterval = min(o.IdleTimeout/64, time.Minute)
	}
	if o.TouchInterval < 0 {
		o.TouchInterval = 0
	}
	if o.MaxPerUser < 0 {
		return o, badOption("MaxPerUser", o.MaxPerUser, "must not be negative")
	}
	if o.OnLimit != RevokeOldest && o.OnLimit != RefuseNew {
		return o, badOption("OnLimit", int(o.OnLimit), "is not a LimitPolicy")
	}
	if o.Codec == nil {
		o.Codec = JSONCodec{}
	}
	if o.MaxValueBytes == 0 {
		o.MaxValueBytes = 64 << 10
	}
	if o.MaxValueBytes < 0 {
		return o, badOption("MaxValueBytes", o.MaxValueBytes, "must not be negative")
	}
	if o.AutoPipeline && o.Pipelining == PipelineAdaptive {
		o.Pipelining = PipelineAlways
	}
	if !pipeline.Mode(o.Pipelining).Valid() {
		return o, badOption("Pipelining", int(o.Pipelining), "is not a Pipelining mode")
	}
	if o.DurableReplicas < 0 {
		return o, badOption("DurableReplicas", o.DurableReplicas, "must not be negative")
	}
	if o.DurableTimeout < 0 {
		return o, badOption("DurableTimeout", o.DurableTimeout, "must not be negative")
	}
	if o.DurableReplicas > 0 && o.DurableTimeout == 0 {
		o.DurableTimeout = 250 * time.Millisecond
	}
	if o.EventsMaxLen < 0 {
		return o, badOption("EventsMaxLen", o.EventsMaxLen, "must not be negative")
	}
	if o.EventsMaxLen == 0 {
		o.EventsMaxLen = 10000
	}
	if o.EventsGrace < 0 {
		return o, badOption("EventsGrace", o.EventsGrace, "must not be negative")
	}
	if o.EventsGrace == 0 {
		o.EventsGrace = 10 * time.Minute
	}
	o.UserKey = append([]byte(nil), o.UserKey...)
	return o, nil
}

// OptionError reports an invalid Options field, as New returns it.
type OptionError struct {
	Field  string // the Options field at fault
	Value  string // the offending value, quoted when a string
	Reason string
	Err    error // the underlying error, when there is one
}

func (e *OptionError) Error() string {
	return "session: Options." + e.Field + " = " + e.Value + ": " + e.Reason
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
