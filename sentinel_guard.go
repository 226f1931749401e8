package rediskit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// Sentinel mode: go-redis's failover client asks a sentinel for the
// master's address and dials it (sentinel.go, masterReplicaDialer), but
// nothing checks what the new connection reached. Between the answer and the
// connection the master can change, a failover can be under way, and an old
// master restarted without persistence answers as master, empty, until a
// sentinel converts it (about 10 s later): every command on such a
// connection reads or writes the wrong dataset. masterGuard checks each new
// connection before go-redis uses it.
//
// go-redis dials the sentinels with the same dialer, so the guard first
// tells a sentinel from a data node by address: the configured sentinels,
// and those the sentinels list (SENTINEL SENTINELS), as go-redis discovers
// them.
type masterGuard struct {
	cfg  Config
	dial func(ctx context.Context, network, addr string) (net.Conn, error)

	mu        sync.Mutex
	sentinels []string // configured, then discovered
}

func newMasterGuard(cfg Config, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *masterGuard {
	return &masterGuard{cfg: cfg, dial: dial, sentinels: slices.Clone(cfg.SentinelAddrs)}
}

// errIsSentinel tells Dial that the address checked is a sentinel's.
var errIsSentinel = errors.New("sentinel")

// testDialGate, when set by a test, runs before every dial of a data node
// (after go-redis picked the address): it lets a test hold a dial while the
// deployment changes under it.
var testDialGate atomic.Pointer[func(addr string)]

// Dial is the dialer of a Sentinel client: it dials addr and, unless addr is
// a sentinel, checks the connection.
func (g *masterGuard) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if g.isSentinel(addr) {
		return g.dial(ctx, network, addr)
	}
	if gate := testDialGate.Load(); gate != nil {
		(*gate)(addr)
	}
	cn, err := g.dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if err := g.check(ctx, addr); errors.Is(err, errIsSentinel) {
		return cn, nil
	} else if err != nil {
		_ = cn.Close()
		// A refused connection is what the guard is for, and go-redis
		// dials again: Warn, an operator may want to see a failover.
		g.cfg.logger().LogAttrs(ctx, slog.LevelWarn, "rediskit: sentinel guard refused a connection",
			slog.String("component", "rediskit"), slog.String("node", addr), slog.String("error", err.Error()))
		return nil, &net.OpError{Op: "dial", Net: network, Addr: cn.RemoteAddr(), Err: err}
	}
	return cn, nil
}

func (g *masterGuard) isSentinel(addr string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Contains(g.sentinels, addr)
}

// check requires that a sentinel names addr as the master, with no failover
// in progress and the master not seen down, and that the node at addr
// answers ROLE as a master. A sentinel's view of the node's role can be
// seconds old; the node's own answer is current.
func (g *masterGuard) check(ctx context.Context, addr string) error {
	named, err := g.sentinelMaster(ctx)
	if err != nil {
		return fmt.Errorf("%w: cannot confirm %s with a sentinel: %w", ErrNotMaster, addr, err)
	}
	if a := net.JoinHostPort(named["ip"], named["port"]); !sameAddr(a, addr) {
		// A sentinel go-redis discovered before the guard did?
		role, err := g.role(ctx, addr)
		if err == nil && role == "sentinel" {
			g.mu.Lock()
			g.sentinels = append(g.sentinels, addr)
			g.mu.Unlock()
			return errIsSentinel
		}
		// With replica reads go-redis dials the replicas the sentinels list
		// for read-only commands. A node that answers as a replica refuses
		// writes (READONLY), so it cannot take one by mistake.
		if err == nil && role == "slave" && g.cfg.readsReplicas() {
			return nil
		}
		return fmt.Errorf("%w: %s reached, the sentinels name %s", ErrNotMaster, addr, a)
	}
	for _, f := range strings.Split(named["flags"], ",") {
		switch f {
		case "s_down", "o_down", "failover_in_progress":
			return fmt.Errorf("%w: the sentinels flag %s %s", ErrNotMaster, addr, named["flags"])
		}
	}
	role, err := g.role(ctx, addr)
	if err != nil {
		return fmt.Errorf("%w: ROLE on %s: %w", ErrNotMaster, addr, err)
	}
	if role != "master" {
		return fmt.Errorf("%w: %s answers ROLE %s", ErrNotMaster, addr, role)
	}
	return nil
}

// sentinelMaster returns SENTINEL MASTER of the first configured sentinel
// that answers, and learns the sentinels it knows of.
func (g *masterGuard) sentinelMaster(ctx context.Context) (map[string]string, error) {
	var errs []error
	for _, sa := range g.cfg.SentinelAddrs {
		sc := redis.NewSentinelClient(&redis.Options{
			Addr: sa, Dialer: g.dial, Username: g.cfg.SentinelUsername, Password: g.cfg.SentinelPassword,
			DialTimeout: g.cfg.DialTimeout, ReadTimeout: g.cfg.ReadTimeout, WriteTimeout: g.cfg.WriteTimeout,
			MaxRetries: -1, PoolSize: 1, DisableIdentity: true,
		})
		m, err := sc.Master(ctx, g.cfg.MasterName).Result()
		if err == nil {
			if peers, err := sc.Sentinels(ctx, g.cfg.MasterName).Result(); err == nil {
				g.learn(peers)
			}
		}
		_ = sc.Close()
		if err == nil {
			return m, nil
		}
		errs = append(errs, fmt.Errorf("sentinel %s: %w", sa, err))
	}
	return nil, errors.Join(errs...)
}

func (g *masterGuard) learn(peers []map[string]string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, p := range peers {
		if a := net.JoinHostPort(p["ip"], p["port"]); p["ip"] != "" && !slices.Contains(g.sentinels, a) {
			g.sentinels = append(g.sentinels, a)
		}
	}
}

// role asks the node at addr for ROLE over a connection of its own: the
// connection being checked is not go-redis's yet.
func (g *masterGuard) role(ctx context.Context, addr string) (string, error) {
	rdb := redis.NewClient(&redis.Options{
		Addr: addr, Dialer: g.dial, Username: g.cfg.Username, Password: g.cfg.Password,
		DialTimeout: g.cfg.DialTimeout, ReadTimeout: g.cfg.ReadTimeout, WriteTimeout: g.cfg.WriteTimeout,
		MaxRetries: -1, PoolSize: 1, DisableIdentity: true,
	})
	defer rdb.Close()
	v, err := rdb.Do(ctx, "ROLE").Slice()
	if err != nil {
		return "", err
	}
	if len(v) == 0 {
		return "", errors.New("empty ROLE reply")
	}
	role, _ := v[0].(string)
	return role, nil
}

// sameAddr reports whether a and b name the same node. go-redis's failover
// cluster client (replica reads) dials a loopback node as ":port"
// (osscluster.go, replaceLoopbackHost, with no seed host to put back), and
// Go dials an empty host on the local system: it matches a loopback host.
func sameAddr(a, b string) bool {
	if a == b {
		return true
	}
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || pa != pb {
		return false
	}
	loop := func(h string) bool { ip := net.ParseIP(h); return h == "localhost" || ip != nil && ip.IsLoopback() }
	return ha == "" && loop(hb) || hb == "" && loop(ha)
}
