package cache

import (
	"context"

	"github.com/rediskit/rediskit/internal/tracehook"
)

// Tracer is the hook through which a Cache reports its operations as spans
// (Options.Tracer). The package holds no tracing library: the module
// github.com/rediskit/rediskit/otel implements Tracer with OpenTelemetry,
// and any other tracer can be adapted in a few lines. A nil Tracer (the
// default) costs no allocation (TestNoTracerNoAllocs).
//
// Ops are named "cache.Get", "cache.Set", "cache.MGet", "cache.GetOrSet",
// "cache.GetOrSetMany", "cache.Delete", "cache.Clear" and
// "cache.InvalidateTags" (SetTagged is "cache.Set"), and within a GetOrSet that misses,
// "cache.lease_wait" (waiting for another load of the key) and
// "cache.load" (the loader call), both children of the GetOrSet span of the
// caller that started the load. Values never reach a Tracer: Start gets
// the op and the namespace, the attributes are the counts and outcomes
// named by the Attr constants, and the end function gets the operation's
// error as the caller gets it (it names the key, and wraps a loader's own
// error as the loader returned it).
type Tracer interface {
	// Start begins the span of op in namespace (Cache.Namespace) as a child
	// of the span in ctx. It returns a context carrying the new span, which
	// the operation passes to its Redis commands, and the function that ends
	// the span with the operation's error (nil on success; ErrNotFound for a
	// cached "not found" is an outcome, not a failure).
	Start(ctx context.Context, op, namespace string) (context.Context, func(error))
	// SetInt records an attribute on the span in ctx (a context returned
	// by Start).
	SetInt(ctx context.Context, key string, v int)
	// SetBool records an attribute on the span in ctx.
	SetBool(ctx context.Context, key string, v bool)
}

// Span attributes a Cache records through its Tracer.
const (
	AttrHit           = "rediskit.cache.hit"         // bool: Get, GetOrSet answered from a stored value
	AttrKeys          = "rediskit.cache.keys"        // int: keys asked for (MGet, Delete)
	AttrHits          = "rediskit.cache.hits"        // int: hits of an MGet
	AttrRemoved       = "rediskit.cache.removed"     // int: keys removed (Clear; counted in a dry run)
	AttrLeaseTakeover = "rediskit.cache.lease_taken" // bool: a lease wait ended by taking the lease over
)

// Span names of the operations, as passed to Tracer.Start.
const (
	opGet            = "cache.Get"
	opSet            = "cache.Set"
	opMGet           = "cache.MGet"
	opGetOrSet       = "cache.GetOrSet"
	opGetOrSetMany   = "cache.GetOrSetMany"
	opInvalidateTags = "cache.InvalidateTags"
	opDelete         = "cache.Delete"
	opClear          = "cache.Clear"
	opLeaseWait      = "cache.lease_wait"
	opLoad           = "cache.load"
)

// span is an operation's span: nothing without a Tracer.
type span = tracehook.Span

// trace starts the span of op, or returns ctx and no span without a Tracer.
func (c *Cache) trace(ctx context.Context, op string) (context.Context, span) {
	return tracehook.Start(c.opt.Tracer, ctx, op, c.ns)
}

// traceBool records an attribute on the span in ctx (the context of an
// operation's span), if tracing.
func (c *Cache) traceBool(ctx context.Context, key string, v bool) {
	if c.opt.Tracer != nil {
		c.opt.Tracer.SetBool(ctx, key, v)
	}
}

// traced returns base, carrying the values of vals (the context of the
// caller that started a shared load, and so its span) when tracing: the
// Redis commands of the load are then children of that caller's GetOrSet.
// Cancellation stays base's alone.
func (c *Cache) traced(base, vals context.Context) context.Context {
	if c.opt.Tracer == nil || vals == nil {
		return base
	}
	return valuesCtx{base, vals}
}

// valuesCtx is its Context, answering Value from vals as well. The base
// chain answers first, so a context derived from it links to base's
// cancellation directly (as loadCtx explains).
type valuesCtx struct {
	context.Context
	vals context.Context
}

func (v valuesCtx) Value(key any) any {
	if x := v.Context.Value(key); x != nil {
		return x
	}
	return v.vals.Value(key)
}
