package cache

import (
	"context"
	"errors"
	"testing"
	"time"
)

type traceKey struct{}

// getOrSetFunc is GetOrSet of a Cache or a Typed[string], over strings.
type getOrSetFunc func(ctx context.Context, key string, ttl time.Duration, load func(context.Context) (string, error)) (string, error)

func cacheGetOrSet(c *Cache) getOrSetFunc {
	return func(ctx context.Context, key string, ttl time.Duration, load func(context.Context) (string, error)) (string, error) {
		v, err := c.GetOrSet(ctx, key, ttl, func(ctx context.Context) ([]byte, error) {
			s, err := load(ctx)
			return []byte(s), err
		})
		return string(v), err
	}
}

func typedGetOrSet(c *Cache) getOrSetFunc {
	tc := NewTyped[string](c, nil)
	return func(ctx context.Context, key string, ttl time.Duration, load func(context.Context) (string, error)) (string, error) {
		return tc.GetOrSet(ctx, key, ttl, LoaderFunc[string](load))
	}
}

// TestLoaderSeesCallerValues: the loader's context carries the values of the
// caller's context (a trace id here) without its cancellation, on the three
// paths a load takes: the caller's own load (foreground), a load a second
// caller joins (shared flight: the loader sees the FIRST caller's values),
// and a stale-while-revalidate refresh in the background (the values of the
// caller served the stale value); for Cache and for Typed.
func TestLoaderSeesCallerValues(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		c := newCache(t, tp.rdb, Options{StaleWhileRevalidate: time.Minute, LoadTimeout: 5 * time.Second})
		for _, api := range []struct {
			name string
			gos  getOrSetFunc
		}{{"Cache", cacheGetOrSet(c)}, {"Typed", typedGetOrSet(c)}} {
			t.Run(api.name, func(t *testing.T) {
				testLoaderValues(t, c, api.name+"-", api.gos)
			})
		}
	})
}

func testLoaderValues(t *testing.T, c *Cache, prefix string, gos getOrSetFunc) {
	t.Run("foreground", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.WithValue(ctxT(t), traceKey{}, "fg"))
		started, release := make(chan struct{}), make(chan struct{})
		type seen struct {
			trace any
			err   error
		}
		got := make(chan seen, 1)
		left := make(chan error, 1)
		go func() {
			_, err := gos(ctx, prefix+"fg", time.Minute, func(lctx context.Context) (string, error) {
				close(started)
				<-release
				got <- seen{lctx.Value(traceKey{}), lctx.Err()}
				return "v", nil
			})
			left <- err
		}()
		<-started
		cancel() // the caller leaves; the load goes on
		if err := <-left; !errors.Is(err, context.Canceled) {
			t.Fatalf("caller that left = %v, want context.Canceled", err)
		}
		close(release)
		s := <-got
		if s.trace != "fg" || s.err != nil {
			t.Fatalf("loader saw trace %v, ctx err %v; want the caller's value and no cancellation", s.trace, s.err)
		}
		waitFor(t, "the loaded value stored", func() bool {
			ok, _ := c.Exists(context.Background(), prefix+"fg")
			return ok
		})
	})
	t.Run("shared flight", func(t *testing.T) {
		first := context.WithValue(ctxT(t), traceKey{}, "first")
		second := context.WithValue(ctxT(t), traceKey{}, "second")
		started, release := make(chan struct{}), make(chan struct{})
		var trace any
		done := make(chan error, 1)
		go func() {
			_, err := gos(first, prefix+"shared", time.Minute, func(lctx context.Context) (string, error) {
				trace = lctx.Value(traceKey{})
				close(started)
				<-release
				return "v", nil
			})
			done <- err
		}()
		<-started
		dedup := c.LocalStats().DedupLoads
		joined := make(chan error, 1)
		go func() {
			_, err := gos(second, prefix+"shared", time.Minute, func(context.Context) (string, error) {
				t.Error("the second caller's loader ran: it did not join the flight")
				return "", nil
			})
			joined <- err
		}()
		waitFor(t, "the second caller to join", func() bool { return c.LocalStats().DedupLoads > dedup })
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if err := <-joined; err != nil {
			t.Fatal(err)
		}
		if trace != "first" {
			t.Fatalf("shared loader saw trace %v, want the first caller's", trace)
		}
	})
	t.Run("background refresh", func(t *testing.T) {
		ctx := ctxT(t)
		if _, err := gos(ctx, prefix+"swr", 20*time.Millisecond, func(context.Context) (string, error) { return "old", nil }); err != nil {
			t.Fatal(err)
		}
		time.Sleep(40 * time.Millisecond) // past its TTL, within StaleWhileRevalidate
		traces := make(chan any, 1)
		rctx, cancel := context.WithCancel(context.WithValue(ctx, traceKey{}, "refresh"))
		v, err := gos(rctx, prefix+"swr", time.Minute, func(lctx context.Context) (string, error) {
			traces <- lctx.Value(traceKey{})
			return "new", lctx.Err()
		})
		cancel() // the caller is gone before the refresh runs, or while it runs
		if err != nil || v != "old" {
			t.Fatalf("stale read = %q, %v; want the stale value", v, err)
		}
		select {
		case tr := <-traces:
			if tr != "refresh" {
				t.Fatalf("refresh loader saw trace %v, want the caller's", tr)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no background refresh")
		}
		// The refresh was not cancelled with its caller: it stored its value.
		waitFor(t, "the refreshed value", func() bool {
			v, err := gos(ctx, prefix+"swr", time.Minute, func(context.Context) (string, error) {
				return "", errors.New("no second refresh expected")
			})
			return err == nil && v == "new"
		})
	})
}
