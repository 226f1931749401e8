package session

import (
	"context"
	"net/http/httptest"
	"testing"
)

// TestNoTracerNoAllocs: without Options.Tracer the tracing hook costs no
// allocation: the span helpers, used as the instrumented methods and
// Manager.LoadAndSave use them, allocate nothing.
func TestNoTracerNoAllocs(t *testing.T) {
	s := &Store{}
	m := &Manager{store: s}
	ctx := context.Background()
	r := httptest.NewRequest("GET", "/", nil)
	op := func() (n int, err error) {
		_, sp := s.trace(ctx, opDeleteByUser)
		defer func() { sp.SetInt(AttrDeleted, n); sp.SetBool(AttrFound, true); sp.Done(err) }()
		r2, rsp := m.traceRequest(r)
		if r2 != r {
			t.Fatal("traceRequest without a Tracer made a new request")
		}
		rsp.Done(nil)
		return 1, nil
	}
	if n := testing.AllocsPerRun(1000, func() { _, _ = op() }); n != 0 {
		t.Fatalf("span helpers without a Tracer: %v allocs, want 0", n)
	}
}
