// Package tracehook is the span bookkeeping that package session and
// package cache share behind their Tracer hooks: each package documents its
// own Tracer interface (the ops and attributes it reports), and both have
// the method set of Tracer here.
package tracehook

import "context"

// Tracer is the method set of session.Tracer and cache.Tracer.
type Tracer interface {
	Start(ctx context.Context, op, namespace string) (context.Context, func(error))
	SetInt(ctx context.Context, key string, v int)
	SetBool(ctx context.Context, key string, v bool)
}

// Span is an operation's span: nothing without a Tracer. Its zero value is
// the span of an untraced operation, and every method is then a no-op that
// allocates nothing.
type Span struct {
	t   Tracer
	ctx context.Context // carries the span, for t.SetInt and t.SetBool
	end func(error)
}

// Start begins the span of op in namespace under the span in ctx, or
// returns ctx and no span when t is nil (or ctx is).
func Start(t Tracer, ctx context.Context, op, namespace string) (context.Context, Span) {
	if t == nil || ctx == nil {
		return ctx, Span{}
	}
	ctx, end := t.Start(ctx, op, namespace)
	return ctx, Span{t, ctx, end}
}

// SetInt records an attribute on the span, if any.
func (s *Span) SetInt(key string, v int) {
	if s.end != nil {
		s.t.SetInt(s.ctx, key, v)
	}
}

// SetBool records an attribute on the span, if any.
func (s *Span) SetBool(key string, v bool) {
	if s.end != nil {
		s.t.SetBool(s.ctx, key, v)
	}
}

// Done ends the span with err; later calls do nothing.
func (s *Span) Done(err error) {
	if s.end != nil {
		s.end(err)
		s.end = nil
	}
}
