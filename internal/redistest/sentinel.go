package redistest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/internal/redisproc"
)

// MasterName is the name the sentinels monitor the master under.
const MasterName = "rediskit"

// Sentinel is a master, one replica and one sentinel watching them with a
// quorum of 1 and a 1.5 s down-after, so a failover takes a few seconds.
// Failover swaps Master and Replica; a test that fails over owns its setup
// (StartSentinel), never the shared one.
type Sentinel struct {
	MasterName string
	Master     *Server
	Replica    *Server
	Sentinels  []*Server

	tls *tls.Config // WithSentinelTLS
}

// SentinelOption configures StartSentinel.
type SentinelOption func(*sentinelConfig)

type sentinelConfig struct {
	tls     *tls.Config
	tlsArgs []string
}

// WithSentinelTLS makes the master, the replica and the sentinel listen on
// TLS only, and replicate and monitor over TLS. client is what the harness
// dials with; serverArgs name the certificate files. See
// internal/security.StartTLSSentinel.
func WithSentinelTLS(client *tls.Config, serverArgs []string) SentinelOption {
	return func(c *sentinelConfig) { c.tls, c.tlsArgs = client, serverArgs }
}

// StartSentinel starts a master, a replica and a sentinel, and waits until
// the sentinel knows the replica (so a failover can happen). All stop when the
// test ends.
func StartSentinel(t testing.TB, opts ...SentinelOption) *Sentinel {
	t.Helper()
	Binary(t)
	var cfg sentinelConfig
	for _, o := range opts {
		o(&cfg)
	}
	s, err := startSentinel(testDir(t), cfg)
	if s != nil {
		t.Cleanup(func() {
			for _, n := range append([]*Server{s.Master, s.Replica}, s.Sentinels...) {
				if n != nil {
					n.Stop()
				}
			}
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func startSentinel(dir string, cfg sentinelConfig) (*Sentinel, error) {
	s := &Sentinel{MasterName: MasterName, tls: cfg.tls}
	// A replica's full sync starts at once, not after the default 5 s wait
	// for more replicas: the window in which a restarted node is an empty
	// replica is as short as it can be.
	var tlsArgs []string
	if cfg.tls != nil {
		tlsArgs = append(append(tlsArgs, cfg.tlsArgs...), "--tls-replication", "yes")
	}
	nodeArgs := append([]string{"--repl-diskless-sync-delay", "0"}, tlsArgs...)
	master, err := redisproc.Start(redisproc.Config{Dir: dir, TLS: cfg.tls, Args: nodeArgs})
	if err != nil {
		return s, err
	}
	s.Master = &Server{master}
	replica, err := redisproc.Start(redisproc.Config{Dir: dir, TLS: cfg.tls, Args: append([]string{
		"--replicaof", "127.0.0.1", strconv.Itoa(master.Port),
	}, nodeArgs...)})
	if err != nil {
		return s, err
	}
	s.Replica = &Server{replica}
	// Sentinel rewrites its config file, so each gets its own.
	conf := filepath.Join(dir, fmt.Sprintf("sentinel-%d.conf", s.Master.Port))
	// down-after must exceed the sentinel's ping period (1 s): at 1000 ms
	// a sentinel that had just switched to a new master flagged it down
	// about 1.0 s after the switch, before its first PING on the new link
	// was answered, and failed over again — to the restarted old master,
	// which the real master then resynchronised from, losing its data
	// (docs/RELIABILITY.md, "Sentinel: what went wrong").
	body := fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 1\n"+
		"sentinel down-after-milliseconds %[1]s 1500\n"+
		"sentinel failover-timeout %[1]s 5000\n"+
		"sentinel parallel-syncs %[1]s 1\n", MasterName, s.Master.Port)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return s, err
	}
	sen, err := redisproc.Start(redisproc.Config{Dir: dir, Conf: conf, TLS: cfg.tls, Args: append([]string{"--sentinel"}, tlsArgs...)})
	if err != nil {
		return s, err
	}
	s.Sentinels = []*Server{{sen}}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.waitReplicaKnown(ctx); err != nil {
		return s, err
	}
	return s, nil
}

// waitReplicaKnown waits until the sentinel lists a replica that is in sync.
func (s *Sentinel) waitReplicaKnown(ctx context.Context) error {
	sc := s.sentinelClient()
	defer sc.Close()
	for {
		reps, err := sc.Replicas(ctx, s.MasterName).Result()
		if err == nil {
			for _, r := range reps {
				if r["flags"] == "slave" && r["master-link-status"] == "ok" {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("redistest: sentinel never saw an in-sync replica: %v (%w); now: %s",
				err, ctx.Err(), s.Describe(context.Background()))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// SentinelAddrs returns the sentinels' addresses.
func (s *Sentinel) SentinelAddrs() []string { return addrsOf(s.Sentinels) }

// sentinelClient returns a client of the first sentinel; the caller closes it.
func (s *Sentinel) sentinelClient() *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{Addr: s.Sentinels[0].Addr, TLSConfig: s.tls, MaxRetries: -1})
}

// Client returns a go-redis failover client for the master, closed when the
// test ends.
func (s *Sentinel) Client(t testing.TB, opt ...func(*redis.FailoverOptions)) *redis.Client {
	t.Helper()
	o := &redis.FailoverOptions{MasterName: s.MasterName, SentinelAddrs: s.SentinelAddrs(), TLSConfig: s.tls, DialTimeout: time.Second}
	for _, f := range opt {
		f(o)
	}
	rdb := redis.NewFailoverClient(o)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// MasterAddr asks the sentinel which address the master has now.
func (s *Sentinel) MasterAddr(ctx context.Context) (string, error) {
	sc := s.sentinelClient()
	defer sc.Close()
	hp, err := sc.GetMasterAddrByName(ctx, s.MasterName).Result()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(hp[0], hp[1]), nil
}

// Failover makes the sentinel promote the replica (SENTINEL FAILOVER) and
// waits until the sentinel names it and it accepts writes; then Master and
// Replica are swapped. When the master was killed first, the sentinel's own
// failover is awaited the same way.
func (s *Sentinel) Failover(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if s.Master.Running() {
		sc := s.sentinelClient()
		err := sc.Failover(ctx, s.MasterName).Err()
		sc.Close()
		if err != nil && !strings.Contains(err.Error(), "INPROG") {
			t.Fatalf("redistest: SENTINEL FAILOVER: %v", err)
		}
	}
	s.AwaitMaster(t, s.Replica.Addr)
	s.Master, s.Replica = s.Replica, s.Master
}

// AwaitMaster waits up to 30 s until the sentinel names addr as the master
// and addr answers as one.
func (s *Sentinel) AwaitMaster(t testing.TB, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rdb := redis.NewClient(&redis.Options{Addr: addr, TLSConfig: s.tls, MaxRetries: -1})
	defer rdb.Close()
	for {
		cur, err := s.MasterAddr(ctx)
		if err == nil && cur == addr {
			role, err := rdb.Do(ctx, "ROLE").Slice()
			if err == nil && len(role) > 0 && role[0] == "master" {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("redistest: %s never became master within 30 s; now: %s", addr, s.Describe(context.Background()))
		case <-time.After(50 * time.Millisecond):
		}
	}
}
