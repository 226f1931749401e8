package cache

import (
	"context"
	"testing"

	"github.com/rediskit/rediskit/internal/redistest"
)

// TestNoTracerNoAllocs: without Options.Tracer the tracing hook costs no
// allocation. The span helpers, used as the instrumented methods use them,
// allocate nothing; and a whole Get through the hook allocates exactly as
// much as its body without it (the read and the counting), against a real
// server.
func TestNoTracerNoAllocs(t *testing.T) {
	c := &Cache{}
	ctx := context.Background()
	op := func() (hit bool, err error) {
		ctx, sp := c.trace(ctx, opGet)
		defer func() { sp.SetInt(AttrKeys, 1); sp.SetBool(AttrHit, hit); sp.Done(err) }()
		c.traceBool(ctx, AttrHit, true)
		_ = c.traced(ctx, ctx)
		return true, nil
	}
	if n := testing.AllocsPerRun(1000, func() { _, _ = op() }); n != 0 {
		t.Fatalf("span helpers without a Tracer: %v allocs, want 0", n)
	}

	// Pooled: on default options a lone command takes whichever path has
	// been faster for lone commands, and the two allocate differently (8
	// and 19 allocations a lone Get here); lone commands moving to the
	// AutoPipeliner during the first measurement (CI on 2026-12-02, where
	// the paths timed alike) made the two differ by the path, not the hook.
	rdb := redistest.Shared(t).Client(t)
	rc := newCache(t, rdb, Options{Pipelining: PipelineOff})
	if err := rc.Set(ctx, "k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	hooked := testing.AllocsPerRun(500, func() {
		if _, ok, err := rc.Get(ctx, "k"); !ok || err != nil {
			t.Fatalf("Get: %v %v", ok, err)
		}
	})
	body := testing.AllocsPerRun(500, func() {
		e, ok, err := rc.get(ctx, "k", codecRaw)
		if !ok || err != nil {
			t.Fatalf("get: %v %v", ok, err)
		}
		rc.countOne(ok)
		_ = e.payload
	})
	if hooked != body {
		t.Fatalf("Get without a Tracer: %v allocs, its body alone %v", hooked, body)
	}
}
