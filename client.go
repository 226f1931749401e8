package rediskit

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/internal/pipeline"
	"github.com/rediskit/rediskit/retry"
)

// Client is a connection to Redis (standalone, Sentinel or Cluster) with
// safe retries, a circuit breaker, a background health checker and
// statistics. It is safe for concurrent use. Create it with Open; hand
// Redis() to any code that takes a go-redis client.
type Client struct {
	cfg      Config // defaults applied
	log      *slog.Logger
	rdb      redis.UniversalClient
	retry    *retry.Hook
	breakers *breakers
	deadline *deadlineCounts // nil with Config.DisableContextTimeout
	counters counters
	health   *healthChecker

	inflight atomic.Int64
	closing  atomic.Bool
	drained  chan struct{}
	drainOne sync.Once

	closeOnce sync.Once
	closeErr  error
}

// Open validates cfg, connects, and verifies that every master answers PING
// (one PING on standalone and Sentinel, one per master on a Cluster). On
// failure it returns an error naming the address it could not reach, and
// releases everything it started. On success the health checker is running
// until Close.
//
// The underlying go-redis client has its own retries turned off
// (MaxRetries -1): retries come from the hook of package retry, which
// repeats only what is safe to repeat.
func Open(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	c := &Client{
		cfg:      cfg,
		log:      cfg.logger(),
		retry:    retry.NewHook(cfg.Retry),
		breakers: newBreakers(cfg),
		drained:  make(chan struct{}),
	}
	c.retry.SetLogger(c.log)
	if cfg.Logger != nil {
		redisLog.register(c) // go-redis's lines during Open too
	}
	c.rdb = newUniversal(cfg)
	// Hooks run in the order added: the stats hook sees a call once, with
	// its retries; the breaker admits and counts every attempt.
	c.rdb.AddHook(statsHook{c})
	c.rdb.AddHook(oomHook{}) // OOM error replies match ErrOutOfMemory
	c.retry.Install(c.rdb)
	c.breakers.install(c.rdb)
	c.deadline = installDeadlines(c.rdb, cfg) // innermost: sees every attempt's raw outcome
	if cc, ok := c.rdb.(*redis.ClusterClient); ok {
		cc.AddHook(topologyHook{cc})
	}

	if err := c.verify(ctx); err != nil {
		_ = c.rdb.Close()
		pipeline.ClearGate(c.rdb)
		redisLog.unregister(c)
		return nil, err
	}
	c.health = startHealth(c)
	c.log.LogAttrs(ctx, slog.LevelInfo, "rediskit: open", slog.String("component", "rediskit"),
		slog.String("mode", cfg.Mode().String()), slog.String("server", c.addrLabel()),
		slog.String("config", cfg.String()))
	return c, nil
}

// Redis returns the underlying go-redis client, with rediskit's hooks
// installed: a *redis.Client for standalone and Sentinel, a
// *redis.ClusterClient for Cluster and for Sentinel with replica reads
// (Config.ReadOnly, RouteByLatency or RouteRandomly: go-redis's failover
// cluster client). Do not Close it; close the Client.
func (c *Client) Redis() redis.UniversalClient { return c.rdb }

// Config returns the configuration in use, defaults applied.
func (c *Client) Config() Config { return c.cfg }

// BreakerState returns the circuit breaker's current state; on a Cluster, the
// most severe state among the breakers of the nodes in the topology.
func (c *Client) BreakerState() BreakerState { return c.breakers.State() }

// Close stops accepting commands (they fail with ErrClosed), waits up to
// Config.DrainTimeout for commands in flight, stops the health checker and
// closes every connection. It is idempotent: later calls return the first
// call's result.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.closing.Store(true)
		if c.inflight.Load() == 0 {
			c.drainOne.Do(func() { close(c.drained) })
		}
		t := time.NewTimer(c.cfg.DrainTimeout)
		select {
		case <-c.drained:
		case <-t.C:
		}
		t.Stop()
		c.health.stop()
		c.closeErr = c.rdb.Close()
		pipeline.ClearGate(c.rdb)
		redisLog.unregister(c)
	})
	return c.closeErr
}

// enter admits a call unless Close began; a call admitted here is waited for.
func (c *Client) enter() bool {
	if c.closing.Load() {
		return false
	}
	c.inflight.Add(1)
	// Close may have begun between the check and the increment: it then
	// either saw our increment (and waits for leave) or not; in the latter
	// case it may already consider the client drained, so back out.
	if c.closing.Load() {
		c.leave()
		return false
	}
	return true
}

func (c *Client) leave() {
	if c.inflight.Add(-1) == 0 && c.closing.Load() {
		c.drainOne.Do(func() { close(c.drained) })
	}
}

// statsHook is the outermost hook: it refuses calls after Close, tracks
// calls in flight for draining, and records counts and latency.
type statsHook struct{ c *Client }

func (h statsHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h statsHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !h.c.enter() {
			return ErrClosed
		}
		start := time.Now()
		err := next(ctx, cmd)
		h.c.counters.observe(start, 1, err)
		h.c.leave()
		return err
	}
}

func (h statsHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if !h.c.enter() {
			for _, cmd := range cmds {
				cmd.SetErr(ErrClosed)
			}
			return ErrClosed
		}
		start := time.Now()
		err := next(ctx, cmds)
		h.c.counters.pipelines.Add(1)
		h.c.counters.observe(start, len(cmds), err)
		h.c.leave()
		return err
	}
}

func newUniversal(cfg Config) redis.UniversalClient {
	o := &redis.UniversalOptions{
		Dialer:          dialer(cfg),
		Username:        cfg.Username,
		Password:        cfg.Password,
		MaxRetries:      -1, // retries come from package retry: only what is safe
		DialerRetries:   1,
		DialTimeout:     cfg.DialTimeout,
		ReadTimeout:     cfg.ReadTimeout,
		WriteTimeout:    cfg.WriteTimeout,
		PoolSize:        cfg.PoolSize,
		MinIdleConns:    cfg.MinIdleConns,
		ConnMaxIdleTime: cfg.ConnMaxIdleTime,
		ConnMaxLifetime: cfg.ConnMaxLifetime,

		ContextTimeoutEnabled: !cfg.DisableContextTimeout,
	}
	o.ReadOnly, o.RouteByLatency, o.RouteRandomly = cfg.ReadOnly, cfg.RouteByLatency, cfg.RouteRandomly
	switch cfg.Mode() {
	case Cluster:
		o.Addrs, o.IsClusterMode = cfg.ClusterAddrs, true
	case Sentinel:
		o.Addrs, o.MasterName, o.DB = cfg.SentinelAddrs, cfg.MasterName, cfg.DB
		o.SentinelUsername, o.SentinelPassword = cfg.SentinelUsername, cfg.SentinelPassword
		o.Dialer = newMasterGuard(cfg, o.Dialer).Dial // see sentinel_guard.go
		// Replica reads in Sentinel mode take go-redis's failover cluster
		// client (reads to replicas, writes to the master): its plain
		// failover client with ReplicaOnly would send writes to a replica.
		o.IsClusterMode = cfg.readsReplicas()
	default:
		o.Addrs, o.DB = []string{cfg.Addr}, cfg.DB
	}
	return redis.NewUniversalClient(o)
}

// tlsConfig returns the TLS configuration to dial with, or nil for plain TCP.
func (c Config) tlsConfig() *tls.Config {
	if c.TLSConfig != nil {
		return c.TLSConfig.Clone()
	}
	if !c.TLS {
		return nil
	}
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         c.TLSServerName,
		InsecureSkipVerify: c.TLSInsecureSkipVerify, //nolint:gosec // opt-in, documented as tests only
	}
}

// dialer returns the dial function for every connection: TCP keep-alive as
// configured, and TLS when enabled (go-redis applies its TLSConfig only with
// its own dialer, so ours does the handshake).
func dialer(cfg Config) func(ctx context.Context, network, addr string) (net.Conn, error) {
	nd := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: cfg.KeepAlive}
	tc := cfg.tlsConfig()
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if tc == nil {
			return nd.DialContext(ctx, network, addr)
		}
		conf := tc.Clone()
		if conf.ServerName == "" {
			if host, _, err := net.SplitHostPort(addr); err == nil {
				conf.ServerName = host
			}
		}
		d := &tls.Dialer{NetDialer: nd, Config: conf}
		return d.DialContext(ctx, network, addr)
	}
	if cfg.DisableContextTimeout {
		return dial
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		cn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return keepLateReplies(cn), nil
	}
}

// verify PINGs the standalone server, the Sentinel master, or every
// cluster master.
func (c *Client) verify(ctx context.Context) error {
	cc, ok := c.rdb.(*redis.ClusterClient)
	if !ok {
		if err := c.rdb.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("rediskit: open %s: cannot reach %s: %w", c.cfg.Mode(), c.addrLabel(), err)
		}
		return nil
	}
	err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		if err := m.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("cannot reach cluster node %s: %w", m.Options().Addr, err)
		}
		return nil
	})
	if err != nil {
		if c.cfg.Mode() == Sentinel {
			return fmt.Errorf("rediskit: open sentinel (%s): %w", c.addrLabel(), err)
		}
		return fmt.Errorf("rediskit: open cluster (seeds %s): %w", strings.Join(c.cfg.ClusterAddrs, ","), err)
	}
	return nil
}

// addrLabel names the server for errors and reports; never a secret.
func (c *Client) addrLabel() string {
	switch c.cfg.Mode() {
	case Sentinel:
		return fmt.Sprintf("master %q via sentinels %s", c.cfg.MasterName, strings.Join(c.cfg.SentinelAddrs, ","))
	case Cluster:
		return "cluster " + strings.Join(c.cfg.ClusterAddrs, ",")
	}
	return c.cfg.Addr
}

func errWrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, redis.Nil) {
		return fmt.Errorf("rediskit: %s: unexpected nil reply", op)
	}
	return fmt.Errorf("rediskit: %s: %w", op, err)
}

func sortNodes[T any](s []T, key func(T) string) {
	sort.Slice(s, func(i, j int) bool { return key(s[i]) < key(s[j]) })
}
