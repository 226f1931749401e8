package cache

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/internal/redistest"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		// A child of TestMultiProcessStampede: no shared fixtures.
		os.Exit(m.Run())
	}
	redistest.Main(m)
}

// counter is a go-redis hook counting commands and round trips: a command
// outside a pipeline is 1 of each, a pipeline is 1 round trip of len(cmds)
// commands. On Cluster it is installed on every node client, so round trips
// are counted per node (by address).
type counter struct {
	mu    sync.Mutex
	cmds  int
	trips map[string]int
	names []string
}

type nodeHook struct {
	c    *counter
	addr string
}

func (h nodeHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h nodeHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if connInit([]redis.Cmder{cmd}) {
			return next(ctx, cmd)
		}
		h.c.mu.Lock()
		h.c.cmds++
		h.c.trips[h.addr]++
		h.c.names = append(h.c.names, cmd.Name())
		h.c.mu.Unlock()
		return next(ctx, cmd)
	}
}

func (h nodeHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if connInit(cmds) {
			return next(ctx, cmds) // a new connection's handshake, not the operation's
		}
		h.c.mu.Lock()
		h.c.cmds += len(cmds)
		h.c.trips[h.addr]++
		for _, c := range cmds {
			h.c.names = append(h.c.names, c.Name())
		}
		h.c.mu.Unlock()
		return next(ctx, cmds)
	}
}

func connInit(cmds []redis.Cmder) bool {
	for _, c := range cmds {
		switch c.Name() {
		case "hello", "client", "auth", "select", "readonly":
		default:
			return false
		}
	}
	return true
}

func (c *counter) reset() {
	c.mu.Lock()
	c.cmds, c.trips, c.names = 0, map[string]int{}, nil
	c.mu.Unlock()
}

// snapshot returns the commands, the total round trips, the round trips per
// node and the command names since the last reset.
func (c *counter) snapshot() (cmds, trips int, perNode map[string]int, names []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	perNode = make(map[string]int, len(c.trips))
	for a, n := range c.trips {
		perNode[a] = n
		trips += n
	}
	return c.cmds, trips, perNode, append([]string(nil), c.names...)
}

// topo is one deployment a test runs on, with a client carrying a counting
// hook.
type topo struct {
	name    string // "standalone", "valkey", "cluster" or "sentinel"
	rdb     redis.UniversalClient
	cnt     *counter
	cluster bool
	// addrs are the masters' addresses; on sentinel, the sentinels'.
	addrs []string
	// masters is the number of masters.
	masters int
	// client returns another client of the deployment, without the hook,
	// closed at the end of the test.
	client func(t testing.TB) redis.UniversalClient
}

// forEachTopology runs f on the shared standalone server, a shared
// standalone Valkey 9 server, the shared 3-master cluster and the shared
// Sentinel deployment (a failover client: master, replica, sentinel), each
// with a fresh client carrying a counting hook. The Sentinel deployment is a standalone master behind a failover
// client, so a test's standalone expectations hold there too.
func forEachTopology(t *testing.T, f func(t *testing.T, tp topo)) {
	single := func(name string, shared func(testing.TB) *redistest.Server) {
		t.Run(name, func(t *testing.T) {
			srv := shared(t)
			cnt := &counter{trips: map[string]int{}}
			rdb := srv.Client(t)
			rdb.AddHook(nodeHook{c: cnt, addr: srv.Addr})
			f(t, topo{name: name, rdb: rdb, cnt: cnt, addrs: []string{srv.Addr}, masters: 1,
				client: func(t testing.TB) redis.UniversalClient { return srv.Client(t) }})
		})
	}
	single("standalone", redistest.Shared)
	// Valkey 9 has SET … IFEQ, which Redis 7.0 lacks: the commit of a miss
	// is then a plain command instead of a script (commitIfEq).
	single("valkey", redistest.SharedValkey)
	t.Run("cluster", func(t *testing.T) {
		cl := redistest.SharedCluster(t)
		cnt := &counter{trips: map[string]int{}}
		rdb := cl.Client(t)
		rdb.OnNewNode(func(n *redis.Client) { n.AddHook(nodeHook{c: cnt, addr: n.Options().Addr}) })
		f(t, topo{name: "cluster", rdb: rdb, cnt: cnt, cluster: true, addrs: cl.Addrs(), masters: len(cl.Addrs()),
			client: func(t testing.TB) redis.UniversalClient { return cl.Client(t) }})
	})
	t.Run("sentinel", func(t *testing.T) {
		s := redistest.SharedSentinel(t)
		cnt := &counter{trips: map[string]int{}}
		rdb := s.Client(t)
		rdb.AddHook(nodeHook{c: cnt, addr: s.Master.Addr}) // the shared deployment never fails over
		f(t, topo{name: "sentinel", rdb: rdb, cnt: cnt, addrs: s.SentinelAddrs(), masters: 1,
			client: func(t testing.TB) redis.UniversalClient { return s.Client(t) }})
	})
}

// helperEnv returns the environment a helper process needs to reach tp's
// deployment with helperClient.
func (tp topo) helperEnv() []string {
	return []string{"CACHE_HELPER_KIND=" + tp.name, "CACHE_HELPER_ADDRS=" + strings.Join(tp.addrs, ",")}
}

// helperClient returns, in a helper process, a client of the deployment
// named by helperEnv.
func helperClient(poolSize int) redis.UniversalClient {
	addrs := strings.Split(os.Getenv("CACHE_HELPER_ADDRS"), ",")
	switch os.Getenv("CACHE_HELPER_KIND") {
	case "cluster":
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, PoolSize: poolSize})
	case "sentinel":
		return redis.NewFailoverClient(&redis.FailoverOptions{MasterName: redistest.MasterName, SentinelAddrs: addrs, PoolSize: poolSize})
	}
	return redis.NewClient(&redis.Options{Addr: addrs[0], PoolSize: poolSize})
}

// newCache returns a Cache in a namespace unique to the test, closed at the
// end of the test, with its scripts preloaded.
func newCache(t testing.TB, rdb redis.UniversalClient, opt Options) *Cache {
	t.Helper()
	if opt.Prefix == "" {
		opt.Prefix = strings.TrimSuffix(redistest.Prefix(t), ":")
	}
	c, err := New(rdb, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Preload(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond for up to 10s; it is for waiting on background work, not
// a timing assertion.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// countingLoader returns a loader that counts its calls and returns
// "value-<n>".
func countingLoader(n *atomic.Int64, delay time.Duration) LoaderFunc[[]byte] {
	return func(ctx context.Context) ([]byte, error) {
		k := n.Add(1)
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return fmt.Appendf(nil, "value-%d", k), nil
	}
}

// fakeClient is a client for tests that do no I/O.
func fakeClient(t testing.TB) *redis.Client {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}
