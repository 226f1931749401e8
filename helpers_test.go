package rediskit

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// counter is a go-redis hook that counts what reaches it: dials, commands
// (per name), and pipelines (one round trip each). Added to a Client's
// Redis() after Open it sits innermost, so it sees every attempt.
type counter struct {
	dials     atomic.Int64
	pipelines atomic.Int64
	mu        sync.Mutex
	cmds      map[string]int
	// afterFail, when set, runs once after the first failed attempt.
	afterFail func()
	failOnce  sync.Once
}

func newCounter() *counter { return &counter{cmds: map[string]int{}} }

func (c *counter) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c.dials.Add(1)
		return next(ctx, network, addr)
	}
}

func (c *counter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.add(cmd.Name())
		err := next(ctx, cmd)
		c.failed(err)
		return err
	}
}

func (c *counter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.pipelines.Add(1)
		for _, cmd := range cmds {
			c.add(cmd.Name())
		}
		err := next(ctx, cmds)
		c.failed(err)
		return err
	}
}

func (c *counter) failed(err error) {
	if err != nil && c.afterFail != nil {
		c.failOnce.Do(c.afterFail)
	}
}

func (c *counter) add(name string) {
	c.mu.Lock()
	c.cmds[name]++
	c.mu.Unlock()
}

func (c *counter) n(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cmds[name]
}

func (c *counter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.cmds {
		n += v
	}
	return n
}

// topology is one deployment shared by the tests of this binary.
type topology struct {
	name string
	cfg  func(t *testing.T) Config
}

var topologies = []topology{
	{"standalone", func(t *testing.T) Config { return Config{Addr: redistest.Shared(t).Addr} }},
	{"cluster", func(t *testing.T) Config { return Config{ClusterAddrs: redistest.SharedCluster(t).Addrs()} }},
	{"sentinel", func(t *testing.T) Config {
		s := redistest.SharedSentinel(t)
		return Config{MasterName: s.MasterName, SentinelAddrs: s.SentinelAddrs()}
	}},
}

// open opens a client and closes it when the test ends.
func open(t testing.TB, cfg Config) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open(%v): %v", cfg, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// eventually polls cond every 20 ms until it holds or d has passed.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// transitions records breaker changes (Config.OnBreakerChange = tr.record);
// String lists them as "from>to", space-separated.
type transitions struct {
	mu   sync.Mutex
	list []string
}

func (tr *transitions) record(from, to BreakerState) {
	tr.mu.Lock()
	tr.list = append(tr.list, from.String()+">"+to.String())
	tr.mu.Unlock()
}

func (tr *transitions) String() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return strings.Join(tr.list, " ")
}
