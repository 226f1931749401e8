package session

import (
	"context"
	"net/http"

	"github.com/rediskit/rediskit/internal/tracehook"
)

// Tracer is the hook through which a Store and its Managers report their
// operations as spans (Options.Tracer). The package holds no tracing
// library: the module github.com/rediskit/rediskit/otel implements Tracer
// with OpenTelemetry. A nil Tracer (the default) costs no allocation
// (TestNoTracerNoAllocs).
//
// Ops are named "session.Create", "session.Get", "session.Update",
// "session.Delete", "session.Extend", "session.Rotate",
// "session.DeleteByUser" and "session.Manager" (one request through
// Manager.LoadAndSave: its Get and its save are children). Tokens, session
// IDs, user IDs and values never reach a Tracer: Start gets the op and the
// key prefix, the attributes are the outcomes named by the Attr constants,
// and the end function gets the operation's error, whose text holds none
// of them (TestNoSecretsInSpans in the otel module).
type Tracer interface {
	// Start begins the span of op under the key prefix as a child of the
	// span in ctx. It returns a context carrying the new span, which the
	// operation passes to its Redis commands, and the function that ends
	// the span with the operation's error (nil on success; ErrNotFound is
	// an outcome, not a failure).
	Start(ctx context.Context, op, namespace string) (context.Context, func(error))
	// SetInt records an attribute on the span in ctx (a context returned
	// by Start).
	SetInt(ctx context.Context, key string, v int)
	// SetBool records an attribute on the span in ctx.
	SetBool(ctx context.Context, key string, v bool)
}

// Span attributes a Store records through its Tracer.
const (
	AttrFound   = "rediskit.session.found"   // bool: Delete found the session; a Manager request's cookie named a live one
	AttrDeleted = "rediskit.session.deleted" // int: sessions DeleteByUser removed
)

// Span names of the operations, as passed to Tracer.Start.
const (
	opCreate       = "session.Create"
	opGet          = "session.Get"
	opUpdate       = "session.Update"
	opDelete       = "session.Delete"
	opExtend       = "session.Extend"
	opRotate       = "session.Rotate"
	opDeleteByUser = "session.DeleteByUser"
	opManager      = "session.Manager"
)

// span is an operation's span: nothing without a Tracer.
type span = tracehook.Span

// trace starts the span of op, or returns ctx and no span without a Tracer.
func (s *Store) trace(ctx context.Context, op string) (context.Context, span) {
	return tracehook.Start(s.opts.Tracer, ctx, op, s.opts.Prefix)
}

// traceRequest starts the span of one Manager request and returns r with
// it in its context, or r itself without a Tracer.
func (m *Manager) traceRequest(r *http.Request) (*http.Request, span) {
	if m.store.opts.Tracer == nil {
		return r, span{}
	}
	ctx, sp := m.store.trace(r.Context(), opManager)
	return r.WithContext(ctx), sp
}
