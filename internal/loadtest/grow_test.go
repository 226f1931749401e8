package loadtest_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit"
	"github.com/rediskit/rediskit/cache"
	"github.com/rediskit/rediskit/internal/loadtest"
	"github.com/rediskit/rediskit/internal/redistest"
)

// Bounds of the grow/shrink scenario. A correct build fails no operation
// here (see docs/RELIABILITY.md); the bounds leave room for a loaded machine
// and still catch a client that loses its way after a topology change.
const (
	// growMaxFailedShare is the share of operations that may fail over
	// the whole run.
	growMaxFailedShare = 0.01
	// growMaxTail is how long after a grow or shrink ended operations may
	// still fail.
	growMaxTail = 5 * time.Second
)

// Cluster grown from 3 to 6 masters and shrunk back under the mixed load,
// as an operator does it: redis-server nodes joined with redis-cli
// --cluster add-node, slots spread with rebalance
// --cluster-use-empty-masters (the quick version moves 100 slots to each
// new master with reshard instead: a full rebalance moves 8,192 slots,
// minutes on a loaded CI machine); then rebalance with weight 0 for the
// new nodes and del-node. No session may be lost, resurrected or left
// unreachable, no cache value may be written back over a Delete; the new
// masters must show up in the health report and the stats and feed the
// near tier's invalidations without the application doing anything; and
// the operations that failed and the error window are bounded.
func TestClusterGrowShrink(t *testing.T) {
	parallelIfQuick(t)
	c := deploy(func() *redistest.Cluster { return redistest.StartCluster(t) })
	cycles := pick(1, 3)

	var (
		client   *rediskit.Client
		inv      *loadtest.Invalidator
		invCache *cache.Cache
		nearC    *cache.Cache
		mu       sync.Mutex
		spans    = map[string]time.Duration{} // each grow and shrink, by fault name
		notes    []string
	)
	note := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		notes = append(notes, fmt.Sprintf(format, args...))
	}
	invPrefix := fmt.Sprintf("ltinv%d", time.Now().UnixNano())
	nearPrefix := invPrefix + "near"
	plain := func() *redis.ClusterClient {
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	}

	run(t, scenario{
		name: fmt.Sprintf("Cluster: grown 3 → 6 masters and shrunk back, %d time(s), under load", cycles) + pick(" (quick)", ""),
		cfg:  rediskit.Config{ClusterAddrs: c.Addrs()},
		peek: func() redis.UniversalClient { return plain() },
		rate: pick(400, 1000), dur: pick(4*time.Second, 6*time.Minute),
		onClient: func(cl *rediskit.Client) {
			client = cl
			var err error
			if invCache, err = cache.New(cl.Redis(), cache.Options{Prefix: invPrefix, LoadTimeout: loadTimeout, LeaseTTL: leaseTTL}); err != nil {
				t.Fatal(err)
			}
			inv = loadtest.NewInvalidator(invCache, 64, time.Minute)
			if nearC, err = cache.New(cl.Redis(), cache.Options{Prefix: nearPrefix, Near: &cache.NearOptions{}}); err != nil {
				t.Fatal(err)
			}
		},
		fault: func(ctx context.Context, d *loadtest.Driver) error {
			invCtx, stopInv := context.WithCancel(context.Background())
			invDone := make(chan struct{})
			go func() { defer close(invDone); inv.Run(invCtx, 2) }()
			defer func() { stopInv(); <-invDone; _ = invCache.Close(); _ = nearC.Close() }()

			for i := 1; i <= cycles && loadtest.Sleep(ctx, pick(time.Second, 10*time.Second)); i++ {
				n := " " + strconv.Itoa(i)
				// The load goes on while a fault is on: this one spans the
				// cycle, checks included. Failures count against the
				// latest fault, the grow or the shrink.
				endCycle := d.Fault("cycle" + n + " (grow, checks, shrink)")
				start := time.Now()
				name := "grow 3 → 6 masters" + n
				end := d.Fault(name)
				var added []*redistest.Server
				for range 3 {
					s, err := c.AddMaster(context.Background())
					if err != nil {
						end()
						return err
					}
					added = append(added, s)
				}
				var err error
				if long() {
					err = c.Rebalance(context.Background())
				} else {
					// Quick: 100 slots from each original master to a new
					// one.
					for j, s := range added {
						if err = c.Reshard(context.Background(), c.Masters[j], s, 100); err != nil {
							break
						}
					}
				}
				end()
				if err != nil {
					return err
				}
				mu.Lock()
				spans[name] = time.Since(start)
				mu.Unlock()
				note("grow%s: added %s; took %v", n, addrList(added), time.Since(start).Round(time.Millisecond))
				if err := checkNewMasters(client, nearC, nearPrefix, added, note); err != nil {
					endCycle()
					return fmt.Errorf("grow%s: %w", n, err)
				}

				// Shrink even when the load has ended: the audits expect
				// the original masters.
				loadtest.Sleep(ctx, pick(time.Second, 10*time.Second))
				start = time.Now()
				name = "shrink 6 → 3 masters" + n
				end = d.Fault(name)
				err = c.RemoveMasters(context.Background(), added...)
				if err == nil {
					// go-redis keeps a removed node in its slot map until its
					// next reload (up to 10 s), and the health check's calls to
					// it open its breaker meanwhile: reload now, and let the
					// shrink end when the client no longer lists the node.
					err = awaitNodesGone(ctx, client, added)
				}
				end()
				endCycle()
				if err != nil {
					return err
				}
				mu.Lock()
				spans[name] = time.Since(start)
				mu.Unlock()
				note("shrink%s: removed %s; took %v", n, addrList(added), time.Since(start).Round(time.Millisecond))
			}
			<-ctx.Done() // the invalidator runs as long as the load
			stopInv()
			<-invDone
			peek := plain()
			defer peek.Close()
			pc, err := cache.New(peek, cache.Options{Prefix: invPrefix})
			if err != nil {
				return err
			}
			defer pc.Close()
			a, err := inv.AuditInvalidations(context.Background(), pc)
			if err != nil {
				return err
			}
			note("invalidation audit: %s", a)
			if a.WrittenBack != 0 {
				return fmt.Errorf("cache values written back over an acknowledged Delete: %s; %v", a, a.Examples)
			}
			if a.Deletes == 0 || a.Reads == 0 || a.Cached == 0 {
				return fmt.Errorf("the invalidator did not run: %s", a)
			}
			return nil
		},
		check: func(t *testing.T, r *loadtest.Result) {
			mu.Lock()
			r.Notes = append(r.Notes, notes...)
			mu.Unlock()
			failed := r.Attempted - r.Succeeded
			r.Notes = append(r.Notes, fmt.Sprintf("failed operations: %d of %d (bound %.0f%%); error windows bounded by each step's duration + %v",
				failed, r.Attempted, 100*growMaxFailedShare, growMaxTail))
			if float64(failed) > growMaxFailedShare*float64(r.Attempted) {
				t.Errorf("%d of %d operations failed while the cluster grew and shrank: %v", failed, r.Attempted, r.Samples)
			}
			if len(r.Faults) != 3*cycles || len(spans) != 2*cycles {
				t.Fatalf("%d faults, %d steps timed; want %d and %d", len(r.Faults), len(spans), 3*cycles, 2*cycles)
			}
			for _, f := range r.Faults {
				span, ok := spans[f.Name]
				if ok && f.ErrorWindow > span+growMaxTail {
					t.Errorf("%s: error window %v, the step took %v: failures went on more than %v after it",
						f.Name, f.ErrorWindow, span, growMaxTail)
				}
			}
		},
	})
}

// checkNewMasters waits until the client's health report and stats list
// every added master as up, then shows that the near tier tracks the new
// masters: a value it holds locally for a key on a new master is
// invalidated by a write from another client.
func checkNewMasters(client *rediskit.Client, nearC *cache.Cache, prefix string, added []*redistest.Server, note func(string, ...any)) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	want := addrList(added)
	for {
		h := client.Health(ctx)
		st, _ := client.Stats(ctx)
		var up, listed []string
		for _, n := range h.Nodes {
			if n.Up {
				up = append(up, n.Addr)
			}
		}
		for _, n := range st.Nodes {
			if n.Err == "" {
				listed = append(listed, n.Addr)
			}
		}
		if containsAll(up, want) && containsAll(listed, want) {
			note("health lists %d nodes up and stats %d masters, the new ones included", len(up), len(listed))
			break
		}
		if !loadtest.Sleep(ctx, 200*time.Millisecond) {
			return fmt.Errorf("health (up: %v) or stats (%v) never listed the new masters %v", up, listed, want)
		}
	}

	outside := redis.NewClusterClient(&redis.ClusterOptions{Addrs: want})
	defer outside.Close()
	oc, err := cache.New(outside, cache.Options{Prefix: prefix})
	if err != nil {
		return err
	}
	defer oc.Close()
	near, far := cache.NewTyped[string](nearC, cache.JSONCodec{}), cache.NewTyped[string](oc, cache.JSONCodec{})
	for i, s := range added {
		// A key whose slot the new master serves.
		var key string
		for j := 0; key == ""; j++ {
			k := fmt.Sprintf("n%d-%d", i, j)
			m, err := outside.MasterForKey(ctx, nearC.Namespace()+k)
			if err != nil {
				return err
			}
			if m.Options().Addr == s.Addr {
				key = k
			}
			if j > 100000 {
				return fmt.Errorf("no key on %s", s.Addr)
			}
		}
		if err := far.Set(ctx, key, "old", time.Minute); err != nil {
			return err
		}
		// Read until the value is served locally: the tracker of the new
		// master is armed only once the near tier re-read the topology.
		for {
			before := nearC.NearStats().Hits
			v, _, err := near.Get(ctx, key)
			if err == nil && v == "old" && nearC.NearStats().Hits > before {
				break
			}
			if !loadtest.Sleep(ctx, 50*time.Millisecond) {
				return fmt.Errorf("near tier never served %s (on new master %s) locally: %+v", key, s.Addr, nearC.NearStats())
			}
		}
		inv := nearC.NearStats().Invalidations
		if err := far.Set(ctx, key, "new", time.Minute); err != nil {
			return err
		}
		for {
			v, _, err := near.Get(ctx, key)
			if err == nil && v == "new" && nearC.NearStats().Invalidations > inv {
				break
			}
			if !loadtest.Sleep(ctx, 20*time.Millisecond) {
				return fmt.Errorf("near tier kept %s (on new master %s) after another client wrote it: %q, %v; %+v",
					key, s.Addr, v, err, nearC.NearStats())
			}
		}
	}
	note("near tier: a key on each new master invalidated by an outside write")
	return nil
}

func addrList(servers []*redistest.Server) []string {
	out := make([]string, len(servers))
	for i, s := range servers {
		out[i] = s.Addr
	}
	return out
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// awaitNodesGone reloads the slot map of cl's cluster client until its
// health report lists none of removed, for at most 20 s.
func awaitNodesGone(ctx context.Context, cl *rediskit.Client, removed []*redistest.Server) error {
	cc, ok := cl.Redis().(*redis.ClusterClient)
	if !ok {
		return nil
	}
	gone := map[string]bool{}
	for _, s := range removed {
		gone[s.Addr] = true
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		cc.ReloadState(ctx)
		listed := false
		for _, n := range cl.Health(ctx).Nodes {
			listed = listed || gone[n.Addr]
		}
		if !listed {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("removed masters still in the client's topology after 20 s")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}
