package rediskit

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/internal/redistest"
	"github.com/rediskit/rediskit/retry"
)

// The guarantees of the Client hold for commands sent through its
// AutoPipeliner (rdb.AutoPipeline(), which session and cache use with their
// AutoPipeline options): a write whose reply is lost is not re-sent, a read
// is, and an open breaker refuses batches without touching the network.
func TestAutoPipelineKeepsRetryGuarantees(t *testing.T) {
	ctx := context.Background()
	c, p, direct, n := faultClient(t, nil)
	ap, err := c.Redis().AutoPipeline()
	if err != nil {
		t.Fatal(err)
	}
	key := redistest.Prefix(t) + "counter"
	if err := ap.Get(ctx, key).Err(); !errors.Is(err, redis.Nil) { // the batch connection, open
		t.Fatal(err)
	}

	// The fault clears after the first failed attempt: only the decision not
	// to re-send keeps INCR from being applied twice.
	warm(t, c, n)
	p.SetDelay(time.Second)
	n.afterFail = func() { p.SetDelay(0) }
	if err := ap.Incr(ctx, key).Err(); err == nil {
		t.Fatal("Incr with its reply lost succeeded")
	}
	if got := n.n("incr"); got != 1 {
		t.Fatalf("INCR sent %d times through the auto-pipeliner, want 1", got)
	}
	if v, err := direct.Get(ctx, key).Int(); err != nil || v != 1 {
		t.Fatalf("server value = %d, %v; want 1 (applied exactly once)", v, err)
	}

	// A burst of INCRs shares batches (the first goes out alone, the rest
	// queue behind it and leave as one pipeline). The replies stay lost, so
	// every attempt is applied: a key at 1 proves its INCR was sent once.
	warm(t, c, n)
	n.afterFail = nil
	p.SetDelay(time.Second)
	const burst = 8
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range burst {
		wg.Go(func() {
			<-start
			if err := ap.Incr(ctx, key+strconv.Itoa(i)).Err(); !errors.Is(err, retry.ErrAmbiguous) {
				t.Errorf("INCR %d with its reply lost: %v, want retry.ErrAmbiguous", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	p.SetDelay(0)
	if n.pipelines.Load() == 0 {
		t.Fatal("no INCR went out in a pipeline: the batch path was not exercised")
	}
	if got := n.n("incr"); got != burst {
		t.Fatalf("%d INCRs sent for %d calls, want one each", got, burst)
	}
	for i := range burst {
		if v, err := direct.Get(ctx, key+strconv.Itoa(i)).Int(); err != nil || v != 1 {
			t.Fatalf("key %d = %d, %v; want 1", i, v, err)
		}
	}

	// A GET under the same fault is retried and succeeds.
	warm(t, c, n)
	p.SetDelay(time.Second)
	n.afterFail = func() { p.SetDelay(0) }
	if v, err := ap.Get(ctx, key).Int(); err != nil || v != 1 {
		t.Fatalf("Get through the auto-pipeliner under a transient fault = %d, %v; want 1", v, err)
	}
	if got := n.n("get"); got != 2 {
		t.Fatalf("GET sent %d times, want 2 (one failure, one retry)", got)
	}
}

func TestAutoPipelineRefusedByOpenBreaker(t *testing.T) {
	ctx := context.Background()
	s := redistest.Start(t)
	c := open(t, Config{
		Addr:                s.Addr,
		BreakerThreshold:    3,
		BreakerCooldown:     time.Hour,
		HealthCheckInterval: -1,
		Retry:               retry.Policy{MaxAttempts: 1},
	})
	n := newCounter()
	c.Redis().AddHook(n)
	ap, err := c.Redis().AutoPipeline()
	if err != nil {
		t.Fatal(err)
	}
	key := redistest.Prefix(t) + "k"
	if err := ap.Get(ctx, key).Err(); !errors.Is(err, redis.Nil) {
		t.Fatal(err)
	}
	s.Kill()
	deadline := time.Now().Add(10 * time.Second)
	for c.BreakerState() != BreakerOpen {
		if time.Now().After(deadline) {
			t.Fatal("breaker still closed after batches to a dead server")
		}
		if err := ap.Get(ctx, key).Err(); !retry.IsUnavailable(err) {
			t.Fatalf("Get with the server dead: %v, want an unavailable error", err)
		}
	}
	dials, sent := n.dials.Load(), n.n("get")
	for range 100 {
		if err := ap.Get(ctx, key).Err(); !errors.Is(err, ErrCircuitOpen) {
			t.Fatalf("auto-pipelined Get while open: %v, want ErrCircuitOpen", err)
		}
	}
	var wg sync.WaitGroup
	for range 50 { // concurrent calls, which the auto-pipeliner batches
		wg.Go(func() {
			if err := ap.Get(ctx, key).Err(); !errors.Is(err, ErrCircuitOpen) {
				t.Errorf("concurrent auto-pipelined Get while open: %v, want ErrCircuitOpen", err)
			}
		})
	}
	wg.Wait()
	if d := n.dials.Load() - dials; d != 0 {
		t.Fatalf("%d dials while open, want 0", d)
	}
	if got := n.n("get") - sent; got != 0 {
		t.Fatalf("%d GETs passed the open breaker, want 0", got)
	}
}
