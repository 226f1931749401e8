package otel

import (
	"context"
	"errors"

	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/rediskit/rediskit/cache"
	"github.com/rediskit/rediskit/session"
)

// ScopeName is the instrumentation scope of the spans a Tracer makes.
const ScopeName = "github.com/rediskit/rediskit/otel"

// Attributes a Tracer records besides those named in cache and session
// (cache.AttrHit, session.AttrFound, ...).
const (
	// AttrNamespace is the key namespace of the operation: the cache's
	// Namespace ("<prefix>:v<version>:") or the session store's Prefix.
	AttrNamespace = "rediskit.namespace"
	// AttrNotFound is true on a span whose operation answered "not found"
	// (session.ErrNotFound, cache.ErrNotFound): an outcome, so the span's
	// status stays unset.
	AttrNotFound = "rediskit.not_found"
)

// Tracer reports rediskit operations as OpenTelemetry spans. It implements
// session.Tracer and cache.Tracer: set it as session.Options.Tracer and
// cache.Options.Tracer. It is safe for concurrent use.
type Tracer struct {
	tp     trace.TracerProvider
	tracer trace.Tracer
}

var (
	_ session.Tracer = (*Tracer)(nil)
	_ cache.Tracer   = (*Tracer)(nil)
)

// Option configures NewTracer.
type Option func(*Tracer)

// WithTracerProvider makes the Tracer use tp. Default: the global provider
// (otel.GetTracerProvider) at the time NewTracer is called.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(t *Tracer) { t.tp = tp }
}

// NewTracer returns a Tracer over the global TracerProvider, or the one of
// WithTracerProvider.
func NewTracer(opts ...Option) *Tracer {
	t := &Tracer{}
	for _, o := range opts {
		o(t)
	}
	if t.tp == nil {
		t.tp = otel.GetTracerProvider()
	}
	t.tracer = t.tp.Tracer(ScopeName)
	return t
}

// Start begins the span of op (an internal span named op, with
// AttrNamespace) as a child of the span in ctx, and returns the context
// carrying it and the function that ends it. An error other than "not
// found" is recorded on the span (RecordError) and sets its status to
// Error. rediskit's errors hold no token, value or password
// (TestNoSecretsInSpans); a cache error names its key, and a loader's own
// error is recorded as the loader wrote it.
func (t *Tracer) Start(ctx context.Context, op, namespace string) (context.Context, func(error)) {
	ctx, span := t.tracer.Start(ctx, op, trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(attribute.String(AttrNamespace, namespace)))
	return ctx, func(err error) { end(span, err) }
}

func end(span trace.Span, err error) {
	switch {
	case err == nil:
	case errors.Is(err, session.ErrNotFound) || errors.Is(err, cache.ErrNotFound):
		span.SetAttributes(attribute.Bool(AttrNotFound, true))
	default:
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// SetInt records an attribute on the span in ctx.
func (t *Tracer) SetInt(ctx context.Context, key string, v int) {
	trace.SpanFromContext(ctx).SetAttributes(attribute.Int(key, v))
}

// SetBool records an attribute on the span in ctx.
func (t *Tracer) SetBool(ctx context.Context, key string, v bool) {
	trace.SpanFromContext(ctx).SetAttributes(attribute.Bool(key, v))
}

// InstrumentClient adds go-redis's command spans (redisotel) to rdb, made
// with the Tracer's provider, so a trace shows each rediskit operation with
// its Redis commands as children (TestSessionSpans, TestCacheSpans). Call
// it on the client the stores and caches use, before they use it; for a
// rediskit.Client pass its Redis(). The command spans carry no db.statement
// (the command's arguments: values, and the keys that hold hashed tokens)
// unless opts turns it back on with redisotel.WithDBStatement(true).
func (t *Tracer) InstrumentClient(rdb redis.UniversalClient, opts ...redisotel.TracingOption) error {
	o := append([]redisotel.TracingOption{redisotel.WithTracerProvider(t.tp), redisotel.WithDBStatement(false)}, opts...)
	return redisotel.InstrumentTracing(rdb, o...)
}
