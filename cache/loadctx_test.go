package cache

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rediskit/rediskit/internal/redistest"
)

type ctxKey struct{}

func TestLoadCtxDeadlineFiresOnlyForWaiters(t *testing.T) {
	base := context.WithValue(context.Background(), ctxKey{}, "v")
	deadline := time.Now().Add(30 * time.Millisecond)
	l := newLoadCtx(base, nil, deadline)
	if d, ok := l.Deadline(); !ok || !d.Equal(deadline) {
		t.Fatalf("Deadline = %v, %v", d, ok)
	}
	if l.Value(ctxKey{}) != "v" {
		t.Fatal("Value does not reach the base context")
	}
	if l.Err() != nil {
		t.Fatalf("Err before the deadline = %v", l.Err())
	}
	select {
	case <-l.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed at the deadline")
	}
	if !errors.Is(l.Err(), context.DeadlineExceeded) {
		t.Fatalf("Err = %v, want DeadlineExceeded", l.Err())
	}
	if l.Value(ctxKey{}) != "v" {
		t.Fatal("Value lost once armed")
	}
	l.release()
	if !errors.Is(l.Err(), context.DeadlineExceeded) {
		t.Fatalf("Err after release = %v, want it kept", l.Err())
	}
}

func TestLoadCtxUnarmedPastDeadline(t *testing.T) {
	l := newLoadCtx(context.Background(), nil, time.Now().Add(-time.Millisecond))
	if !errors.Is(l.Err(), context.DeadlineExceeded) {
		t.Fatalf("Err past the deadline = %v", l.Err())
	}
	select {
	case <-l.Done(): // armed late, already expired
	default:
		t.Fatal("Done open past the deadline")
	}
	l.release()
}

func TestLoadCtxFollowsBaseCancellation(t *testing.T) {
	base, cancel := context.WithCancel(context.Background())
	idle := newLoadCtx(base, nil, time.Now().Add(time.Hour))
	waiting := newLoadCtx(base, nil, time.Now().Add(time.Hour))
	done := waiting.Done()
	// A context the loader derives from its own.
	child, cancelChild := context.WithTimeout(waiting, time.Hour)
	defer cancelChild()
	cancel()
	for _, ch := range []<-chan struct{}{done, child.Done()} {
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatal("base cancellation not propagated")
		}
	}
	for _, l := range []*loadCtx{idle, waiting} {
		if !errors.Is(l.Err(), context.Canceled) {
			t.Fatalf("Err = %v, want Canceled", l.Err())
		}
		l.release()
	}
}

func TestLoadCtxReleaseEndsIt(t *testing.T) {
	// Released before anyone asked for Done: a late user sees it ended.
	l := newLoadCtx(context.Background(), nil, time.Now().Add(time.Hour))
	l.release()
	select {
	case <-l.Done():
	default:
		t.Fatal("Done open after release")
	}
	if !errors.Is(l.Err(), context.Canceled) {
		t.Fatalf("Err after release = %v", l.Err())
	}
	// Released while a goroutine waits on it.
	l = newLoadCtx(context.Background(), nil, time.Now().Add(time.Hour))
	var wg sync.WaitGroup
	wg.Go(func() { <-l.Done() })
	for l.state.Load() != loadArmed {
		time.Sleep(time.Millisecond)
	}
	l.release()
	wg.Wait()
	if !errors.Is(l.Err(), context.Canceled) {
		t.Fatalf("Err after release = %v", l.Err())
	}
}

func TestLoadCtxConcurrentUse(t *testing.T) {
	for range 100 {
		l := newLoadCtx(context.Background(), nil, time.Now().Add(time.Hour))
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				_ = l.Err()
				_ = l.Value(ctxKey{})
				select {
				case <-l.Done():
				case <-time.After(time.Second):
					t.Error("Done open after release")
				}
			})
		}
		l.release()
		wg.Wait()
	}
}

// TestLoadCtxValuesFromCaller: a loader's context answers Value from the
// caller's context, follows the Cache's cancellation and deadline, and never
// the caller's cancellation, also in a context the loader derives from it.
func TestLoadCtxValuesFromCaller(t *testing.T) {
	base, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	caller, cancelCaller := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "trace-1"))
	l := newLoadCtx(base, caller, time.Now().Add(time.Hour))
	defer l.release()
	if got := l.Value(ctxKey{}); got != "trace-1" {
		t.Fatalf("Value before Done = %v, want the caller's", got)
	}
	child, cancelChild := context.WithCancel(l) // arms l
	defer cancelChild()
	if got := child.Value(ctxKey{}); got != "trace-1" {
		t.Fatalf("Value of a derived context = %v, want the caller's", got)
	}
	cancelCaller()
	select {
	case <-child.Done():
		t.Fatal("the caller's cancellation reached the loader")
	case <-time.After(20 * time.Millisecond):
	}
	if l.Err() != nil {
		t.Fatalf("Err after the caller left = %v", l.Err())
	}
	if d, _ := l.Deadline(); time.Until(d) < 30*time.Minute {
		t.Fatalf("Deadline %v is not the load's", d)
	}
	cancelBase()
	select {
	case <-child.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the Cache's cancellation did not reach the derived context")
	}
}

// TestFlightGoroutine: a miss on a context with a deadline runs its flight
// on a goroutine of the Cache's, so that the caller can leave at the
// deadline while the load goes on; on a context without one (Background, a
// request's context that can only be cancelled, a detached one) the caller
// runs the flight itself, as it would wait for it anyway
// (BenchmarkCacheGetOrSetMiss's rediskit-deadline row measures what the
// hand-off costs). Either way the caller is answered after the commit, so
// the value is in Redis when GetOrSet returns. GetOrSetMany runs its batch
// load by the same rule.
func TestFlightGoroutine(t *testing.T) {
	c := newCache(t, redistest.Shared(t).Client(t), Options{})
	cancellable, cancel := context.WithCancel(context.Background())
	defer cancel()
	deadline, cancelDeadline := context.WithTimeout(context.Background(), time.Minute)
	defer cancelDeadline()
	for _, tc := range []struct {
		name   string
		ctx    context.Context
		caller bool
	}{
		{"background", context.Background(), true},
		{"cancellable", cancellable, true},
		{"deadline", deadline, false},
		// A caller that need not leave at its deadline detaches its
		// context and keeps the load on its own goroutine.
		{"deadline without cancel", context.WithoutCancel(deadline), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := goroutineID()
			var loaderID string
			v, err := c.GetOrSet(tc.ctx, tc.name, time.Minute, func(context.Context) ([]byte, error) {
				loaderID = goroutineID()
				return []byte("v"), nil
			})
			if err != nil || string(v) != "v" {
				t.Fatalf("GetOrSet = %q, %v", v, err)
			}
			if onCaller := loaderID == id; onCaller != tc.caller {
				t.Errorf("GetOrSet: the loader ran on the caller's goroutine: %v, want %v", onCaller, tc.caller)
			}
			if got, hit, err := c.Get(context.Background(), tc.name); err != nil || !hit || string(got) != "v" {
				t.Errorf("Get right after GetOrSet = %q, %v, %v; want the stored value", got, hit, err)
			}
			many := tc.name + "-many"
			vs, err := c.GetOrSetMany(tc.ctx, []string{many}, time.Minute, func(_ context.Context, keys []string) (map[string][]byte, error) {
				loaderID = goroutineID()
				return map[string][]byte{many: []byte("v")}, nil
			})
			if err != nil || string(vs[many]) != "v" {
				t.Fatalf("GetOrSetMany = %q, %v", vs, err)
			}
			if onCaller := loaderID == id; onCaller != tc.caller {
				t.Errorf("GetOrSetMany: the loader ran on the caller's goroutine: %v, want %v", onCaller, tc.caller)
			}
		})
	}
}

// TestCancelledLoaderCallerGetsItsLoad: a caller without a deadline runs the
// load it starts; cancelling its context meanwhile neither cuts the load
// nor loses its result. The caller gets the value, which is stored, while a
// caller that joined the flight leaves when its own context is cancelled.
// Through each entry point that starts a load (GetOrSet, Typed.GetOrSet and
// GetOrSetMany's batch load), on every topology: the commit the caller runs
// differs (through the group commit on standalone Redis 7.0 and Sentinel,
// SET IFEQ on Valkey, a script call of its own on Cluster).
func TestCancelledLoaderCallerGetsItsLoad(t *testing.T) {
	// getOrSet loads "k" through one entry point with load, whose value
	// it returns.
	type getOrSet func(c *Cache, ctx context.Context, load func(context.Context) ([]byte, error)) ([]byte, error)
	ops := []struct {
		name string
		op   getOrSet
	}{
		{"GetOrSet", func(c *Cache, ctx context.Context, load func(context.Context) ([]byte, error)) ([]byte, error) {
			return c.GetOrSet(ctx, "k", time.Minute, load)
		}},
		{"Typed.GetOrSet", func(c *Cache, ctx context.Context, load func(context.Context) ([]byte, error)) ([]byte, error) {
			v, err := NewTyped[string](c, nil).GetOrSet(ctx, "k", time.Minute, func(ctx context.Context) (string, error) {
				b, err := load(ctx)
				return string(b), err
			})
			return []byte(v), err
		}},
		{"GetOrSetMany", func(c *Cache, ctx context.Context, load func(context.Context) ([]byte, error)) ([]byte, error) {
			vs, err := c.GetOrSetMany(ctx, []string{"k"}, time.Minute, func(ctx context.Context, keys []string) (map[string][]byte, error) {
				if len(keys) != 1 || keys[0] != "k" {
					return nil, fmt.Errorf("batch loader asked for %q", keys)
				}
				b, err := load(ctx)
				return map[string][]byte{"k": b}, err
			})
			return vs["k"], err
		}},
	}
	forEachTopology(t, func(t *testing.T, tp topo) {
		for _, o := range ops {
			t.Run(o.name, func(t *testing.T) {
				c := newCache(t, tp.rdb, Options{})
				owner, cancelOwner := context.WithCancel(context.Background())
				joiner, cancelJoiner := context.WithCancel(context.Background())
				started, release := make(chan struct{}), make(chan struct{})
				type answer struct {
					v   []byte
					err error
				}
				got := make(chan answer, 1)
				go func() {
					v, err := o.op(c, owner, func(lctx context.Context) ([]byte, error) {
						close(started)
						<-release
						if err := lctx.Err(); err != nil {
							return nil, err
						}
						return []byte("v"), nil
					})
					got <- answer{v, err}
				}()
				<-started
				left := make(chan error, 1)
				go func() {
					_, err := o.op(c, joiner, func(context.Context) ([]byte, error) {
						return nil, errors.New("a second load ran")
					})
					left <- err
				}()
				waitFor(t, "the second caller to join the flight", func() bool { return c.LocalStats().DedupLoads == 1 })
				cancelJoiner()
				if err := <-left; !errors.Is(err, context.Canceled) {
					t.Fatalf("the caller that joined = %v, want context.Canceled", err)
				}
				cancelOwner()
				close(release)
				if a := <-got; a.err != nil || string(a.v) != "v" {
					t.Fatalf("the cancelled caller that ran the load = %q, %v; want its value", a.v, a.err)
				}
				// Stored: the same entry point answers without a load.
				v, err := o.op(c, context.Background(), func(context.Context) ([]byte, error) {
					return nil, errors.New("the value was not stored: a load ran")
				})
				if err != nil || string(v) != "v" {
					t.Fatalf("%s after the load = %q, %v; want the stored value", o.name, v, err)
				}
			})
		}
	})
}

// goroutineID is the number in the first line of the calling goroutine's
// stack trace ("goroutine 7 [running]:").
func goroutineID() string {
	var buf [64]byte
	line := string(buf[:runtime.Stack(buf[:], false)])
	line, _, _ = strings.Cut(strings.TrimPrefix(line, "goroutine "), " ")
	return line
}
