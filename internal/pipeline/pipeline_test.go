package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/internal/pipeline"
	"github.com/rediskit/rediskit/internal/redistest"
	"github.com/rediskit/rediskit/retry"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// paths counts the commands a client sends alone (pooled) and in pipelines
// (the AutoPipeliner's batches), skipping the handshakes of new connections.
type paths struct{ pooled, piped atomic.Int64 }

func (p *paths) DialHook(next redis.DialHook) redis.DialHook { return next }

func (p *paths) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		switch cmd.Name() {
		case "hello", "client", "auth", "select":
		default:
			p.pooled.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (p *paths) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			switch c.Name() {
			case "hello", "client", "auth", "select":
			default:
				p.piped.Add(1)
			}
		}
		return next(ctx, cmds)
	}
}

func (p *paths) sent() (pooled, piped uint64) {
	return uint64(p.pooled.Load()), uint64(p.piped.Load())
}

// newExec returns an Exec in mode on a new client of addr, the client, and
// the counts of what the client sends.
func newExec(t *testing.T, addr string, mode pipeline.Mode) (*pipeline.Exec, *redis.Client, *paths) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { rdb.Close() })
	p := &paths{}
	rdb.AddHook(p)
	e, err := pipeline.New(rdb, mode)
	if err != nil {
		t.Fatal(err)
	}
	return e, rdb, p
}

// TestAdaptive: a lone caller goes pooled; callers that overlap (a proxy
// holds every reply 50 ms, so eight callers are surely in flight together)
// share the AutoPipeliner; a command marked retry.Once goes pooled even
// then; every reply lands where it belongs on either path.
func TestAdaptive(t *testing.T) {
	srv := redistest.Shared(t)
	ctx := context.Background()
	proxy := redistest.NewProxy(t, srv.Addr)
	e, rdb, p := newExec(t, proxy.Addr, pipeline.Adaptive)
	prefix := redistest.Prefix(t)
	for i := range 8 {
		if err := rdb.Set(ctx, fmt.Sprint(prefix, i), i, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
	}
	p.pooled.Store(0)
	get := func(i int) {
		t.Helper()
		cmd := redis.NewStringCmd(ctx, "get", fmt.Sprint(prefix, i))
		if err := e.Process(ctx, cmd); err != nil || cmd.Val() != fmt.Sprint(i) {
			t.Errorf("get %d = %q, %v", i, cmd.Val(), err)
		}
	}
	for i := range 8 {
		get(i)
	}
	if pooled, piped := p.sent(); pooled != 8 || piped != 0 {
		t.Fatalf("sequential: %d pooled, %d piped; want 8, 0", pooled, piped)
	}

	proxy.SetDelay(50 * time.Millisecond)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 8 {
		wg.Go(func() { <-start; get(i) })
	}
	close(start)
	wg.Wait()
	if pooled, piped := p.sent(); piped == 0 {
		t.Fatalf("eight overlapping callers: %d pooled, %d piped; want some piped", pooled-8, piped)
	}

	// A Once command under load: hold one read in flight, then send it.
	before, _ := p.sent()
	_, pipedBefore := p.sent()
	hold := make(chan struct{})
	wg.Go(func() { close(hold); get(0) })
	<-hold
	time.Sleep(10 * time.Millisecond) // let the read get on its way
	cmd := redis.NewIntCmd(ctx, "incr", prefix+"once")
	if err := e.Process(ctx, retry.Once(cmd)); err != nil || cmd.Val() != 1 {
		t.Fatalf("incr = %d, %v", cmd.Val(), err)
	}
	wg.Wait()
	pooled, piped := p.sent()
	if pooled-before < 1 || piped-pipedBefore > 1 {
		t.Fatalf("a Once command under load went through the AutoPipeliner: pooled +%d, piped +%d", pooled-before, piped-pipedBefore)
	}
}

// TestModes: Off never pipelines (and never fetches the client's
// AutoPipeliner), Always takes it at New, Adaptive only once commands
// overlap; overlapping commands share pipelines in both; a Ring (no
// AutoPipeliner in go-redis) runs Adaptive as Off and refuses Always.
func TestModes(t *testing.T) {
	srv := redistest.Shared(t)
	ctx := context.Background()
	// overlap sends 8 pings at once through a proxy that holds each reply
	// 50 ms, so they are surely in flight together.
	proxy := redistest.NewProxy(t, srv.Addr)
	proxy.SetDelay(50 * time.Millisecond)
	overlap := func(e *pipeline.Exec) {
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if err := e.Process(ctx, redis.NewStatusCmd(ctx, "ping")); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	for _, tc := range []struct {
		mode pipeline.Mode
		// batched: the 8 overlapping pings share pipelines.
		fetchedAtNew, batched bool
	}{{pipeline.Off, false, false}, {pipeline.Always, true, true}, {pipeline.Adaptive, false, true}} {
		e, _, p := newExec(t, proxy.Addr, tc.mode)
		if got := e.AutoPipeliner() != nil; got != tc.fetchedAtNew {
			t.Errorf("%v: AutoPipeliner fetched at New: %v, want %v", tc.mode, got, tc.fetchedAtNew)
		}
		overlap(e)
		if pooled, piped := p.sent(); (piped > 0) != tc.batched || (!tc.batched && pooled != 8) {
			t.Errorf("%v: %d pooled, %d in pipelines; want batched %v", tc.mode, pooled, piped, tc.batched)
		}
		if got := e.AutoPipeliner() != nil; got != tc.batched {
			t.Errorf("%v: AutoPipeliner in use after an overlap: %v, want %v", tc.mode, got, tc.batched)
		}
	}
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": srv.Addr}})
	t.Cleanup(func() { ring.Close() })
	if _, err := pipeline.New(ring, pipeline.Always); err == nil {
		t.Error("Always on a Ring: no error")
	}
	e, err := pipeline.New(ring, pipeline.Adaptive)
	if err != nil || e.AutoPipeliner() != nil {
		t.Fatalf("Adaptive on a Ring = %v, %v; want Off", e.AutoPipeliner(), err)
	}
}

// TestAutoPipelinerSettings: on a plain client rediskit's AutoPipeliner is
// go-redis's blocking default with MaxBatchSize BatchTarget, and it is the
// client's own (the client hands the same one to the user); a client built
// with its own AutoPipelineOptions, or whose AutoPipeliner the user made
// first, keeps its settings.
func TestAutoPipelinerSettings(t *testing.T) {
	srv := redistest.Shared(t)
	want := *redis.DefaultBlockingAutoPipelineOptions()
	want.MaxBatchSize = pipeline.BatchTarget
	mine := &redis.AutoPipelineOptions{MaxBatchSize: 7, MaxConcurrentBatches: 1}
	for _, tc := range []struct {
		name      string
		opts      *redis.AutoPipelineOptions
		userFirst bool
		batch     int
	}{
		{"plain client", nil, false, pipeline.BatchTarget},
		{"client with its own settings", mine, false, 7},
		{"AutoPipeliner made by the user first", nil, true, redis.DefaultBlockingAutoPipelineOptions().MaxBatchSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, AutoPipelineOptions: tc.opts})
			t.Cleanup(func() { rdb.Close() })
			var users *redis.AutoPipeliner
			if tc.userFirst {
				var err error
				if users, err = rdb.AutoPipeline(); err != nil {
					t.Fatal(err)
				}
			}
			e, err := pipeline.New(rdb, pipeline.Always)
			if err != nil {
				t.Fatal(err)
			}
			ap := e.AutoPipeliner()
			if got := ap.Config().MaxBatchSize; got != tc.batch {
				t.Errorf("MaxBatchSize = %d, want %d", got, tc.batch)
			}
			if tc.batch == pipeline.BatchTarget {
				got := ap.Config()
				if got.MaxBatchBytes != want.MaxBatchBytes || got.MaxConcurrentBatches != want.MaxConcurrentBatches ||
					got.Unordered || got.FullDuplex || got.MaxFlushDelay != want.MaxFlushDelay || got.NumShards != want.NumShards {
					t.Errorf("settings = %+v, want %+v", got, want)
				}
			}
			if again, err := rdb.AutoPipeline(); err != nil || again != ap {
				t.Errorf("client's AutoPipeliner = %p, %v; want rediskit's %p", again, err, ap)
			}
			if users != nil && users != ap {
				t.Errorf("rediskit made a second AutoPipeliner beside the user's")
			}
			ctx := context.Background()
			if err := ap.Set(ctx, redistest.Prefix(t)+"k", "v", 0).Err(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// BenchmarkAdaptive compares the three modes on GET at 1, 16 and 128
// callers (b.SetParallelism over GOMAXPROCS). Run it with
//
//	go test -run '^$' -bench Adaptive -benchmem ./internal/pipeline/
func BenchmarkAdaptive(b *testing.B) {
	srv := redistest.Shared(b)
	ctx := context.Background()
	rdb := srv.Client(b, func(o *redis.Options) { o.PoolSize = 256 })
	key := redistest.Prefix(b) + "k"
	if err := rdb.Set(ctx, key, "value", 0).Err(); err != nil {
		b.Fatal(err)
	}
	for _, m := range []pipeline.Mode{pipeline.Off, pipeline.Always, pipeline.Adaptive} {
		e, err := pipeline.New(rdb, m)
		if err != nil {
			b.Fatal(err)
		}
		for _, callers := range []int{1, 16, 128} {
			b.Run(fmt.Sprintf("%v/callers=%d", m, callers), func(b *testing.B) {
				runCallers(b, callers, func() {
					cmd := redis.NewStringCmd(ctx, "get", key)
					if err := e.Process(ctx, cmd); err != nil {
						b.Error(err)
					}
				})
			})
		}
	}
}

// runCallers runs op b.N times in total from exactly n goroutines.
func runCallers(b *testing.B, n int, op func()) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	left := b.N
	b.ResetTimer()
	for range n {
		wg.Go(func() {
			for {
				mu.Lock()
				if left == 0 {
					mu.Unlock()
					return
				}
				k := min(left, 64)
				left -= k
				mu.Unlock()
				for range k {
					op()
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// TestLonePath: a lone caller's commands take the path measured faster: one
// in 32 is timed on the chosen path and, while no mean is far apart, one in
// 32 on the other, and every reply lands where it belongs on either. Which
// path wins is the machine's; TestChooseLonePath checks the choice from
// given latencies, TestProbeEvery how often the other path is tried.
func TestLonePath(t *testing.T) {
	ctx := context.Background()
	e, rdb, p := newExec(t, redistest.Shared(t).Addr, pipeline.Adaptive)
	prefix := redistest.Prefix(t)
	for i := range 640 {
		if err := rdb.Set(ctx, fmt.Sprint(prefix, i), i, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
	}
	p.pooled.Store(0)
	for i := range 640 {
		cmd := redis.NewStringCmd(ctx, "get", fmt.Sprint(prefix, i))
		if err := e.Process(ctx, cmd); err != nil || cmd.Val() != fmt.Sprint(i) {
			t.Fatalf("get %d = %q, %v", i, cmd.Val(), err)
		}
	}
	// go-redis dispatches a batch of one without a pipeline, so the hooks
	// see every command alone; each was sent once.
	if pooled, piped := p.sent(); pooled+piped != 640 {
		t.Errorf("640 lone commands: %d sent alone, %d in pipelines", pooled, piped)
	}
	if e.AutoPipeliner() == nil {
		t.Error("the AutoPipeliner was never tried")
	}
	if pooledNs, apNs := pipeline.LoneMeans(e); pooledNs <= 0 || apNs <= 0 {
		t.Errorf("mean lone latency: pooled %d ns, auto-pipelined %d ns; want both paths timed", pooledNs, apNs)
	}
}

// TestChooseLonePath: the running means and the choice, from given
// latencies: a path must be 5 % faster to take over, and a reply that
// waited out a timeout moves a mean by at most half of it.
func TestChooseLonePath(t *testing.T) {
	for _, tc := range []struct {
		cur        bool
		pooled, ap int64
		want       bool
	}{
		{false, 100, 96, false}, {false, 100, 94, true},
		{true, 100, 104, true}, {true, 100, 106, false},
	} {
		if got := pipeline.ChooseAP(tc.cur, tc.pooled, tc.ap); got != tc.want {
			t.Errorf("chooseAP(%v, pooled %d, ap %d) = %v, want %v", tc.cur, tc.pooled, tc.ap, got, tc.want)
		}
	}
	if got := pipeline.EWMA(0, 50); got != 50 {
		t.Errorf("first sample: mean %d, want 50", got)
	}
	if got := pipeline.EWMA(80, 160); got != 90 {
		t.Errorf("mean 80, sample 160: %d, want 90", got)
	}
	if got := pipeline.EWMA(80, 1_000_000_000); got != 110 { // counted as 320
		t.Errorf("mean 80, a 1 s sample: %d, want 110", got)
	}
}

// TestProbeEvery: a lone command goes down the path not chosen one time in
// 32 while the two paths' means are within 1.5× of each other or either is
// unknown, and one time in 256 while the other path is slower than that.
func TestProbeEvery(t *testing.T) {
	for _, tc := range []struct {
		pooled, ap int64
		onAP       bool
		want       uint32
	}{
		{0, 0, false, 32},     // nothing timed yet
		{100, 0, false, 32},   // the other path not timed yet
		{100, 150, false, 32}, // 1.5x: still alike
		{100, 151, false, 256},
		{160, 100, true, 256}, // on the AutoPipeliner, pooled far slower
		{140, 100, true, 32},
		{100, 60, false, 32}, // the other path faster: try it often
	} {
		if got := pipeline.ProbeEvery(tc.pooled, tc.ap, tc.onAP); got != tc.want {
			t.Errorf("means pooled %d ns, ap %d ns, on AP %v: probe every %d, want %d", tc.pooled, tc.ap, tc.onAP, got, tc.want)
		}
	}
}

// TestGate: a command that an Exec would hand to the AutoPipeliner fails
// with the client's gate's error, unsent, while the gate refuses; a lone
// command on the pooled path is left to the client's own hooks; an Exec on
// a client without a gate, or made after ClearGate, sends everything.
func TestGate(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Shared(t).Client(t)
	key := redistest.Prefix(t) + "k"
	refused := errors.New("refused")
	var refusing atomic.Bool
	pipeline.SetGate(rdb, func() error {
		if refusing.Load() {
			return refused
		}
		return nil
	})
	exec := func(m pipeline.Mode) *pipeline.Exec {
		e, err := pipeline.New(rdb, m)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	always, off := exec(pipeline.Always), exec(pipeline.Off)
	pipeline.ClearGate(rdb)
	after := exec(pipeline.Always)
	get := func(e *pipeline.Exec) error { return e.Process(ctx, redis.NewStringCmd(ctx, "get", key)) }
	if err := get(always); !errors.Is(err, redis.Nil) {
		t.Fatalf("gate open: %v, want redis.Nil", err)
	}
	refusing.Store(true)
	if err := get(always); !errors.Is(err, refused) {
		t.Fatalf("gate refusing, auto-pipelined: %v, want its error", err)
	}
	if err := get(off); !errors.Is(err, redis.Nil) {
		t.Fatalf("gate refusing, pooled: %v, want the command sent", err)
	}
	if err := get(after); !errors.Is(err, redis.Nil) {
		t.Fatalf("Exec made after ClearGate: %v, want the command sent", err)
	}
}
