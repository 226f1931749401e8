package redistest

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/internal/redisproc"
)

// Cluster is a Redis Cluster of real processes: three masters that share the
// 16384 slots, and a replica for each when asked for.
type Cluster struct {
	Masters  []*Server
	Replicas []*Server

	tls *tls.Config // WithTLS

	mu    sync.Mutex // guards the fields below, for AddMaster and RemoveMaster
	dir   string
	cfg   clusterConfig
	nodeN int // node config files handed out so far
}

// ClusterOption configures StartCluster.
type ClusterOption func(*clusterConfig)

type clusterConfig struct {
	masters  int
	replicas int
	tls      *tls.Config // client side; nil: plain TCP
	tlsArgs  []string    // redis-server certificate arguments
	cliArgs  []string    // redis-cli TLS arguments
}

// WithReplicas gives every master n replicas.
func WithReplicas(n int) ClusterOption {
	return func(c *clusterConfig) { c.replicas = n }
}

// WithTLS makes every node listen on TLS only, for clients and for the
// cluster bus and replication alike. client is what the harness dials with;
// serverArgs name the certificate files (--tls-cert-file, ...), cliArgs are
// what redis-cli needs to reach the nodes (--tls --cacert ...).
// internal/security.StartTLSCluster builds all three from a test CA.
func WithTLS(client *tls.Config, serverArgs, cliArgs []string) ClusterOption {
	return func(c *clusterConfig) { c.tls, c.tlsArgs, c.cliArgs = client, serverArgs, cliArgs }
}

// StartCluster starts a 3-master cluster, created with redis-cli --cluster
// create, and waits until every node reports cluster_state:ok. The nodes stop
// when the test ends. The node timeout is 1 s, so a killed master's replica
// is promoted within a few seconds.
func StartCluster(t testing.TB, opts ...ClusterOption) *Cluster {
	t.Helper()
	Binary(t)
	if _, err := redisproc.Binary("redis-cli"); err != nil {
		missing(t, err)
	}
	cfg := clusterConfig{masters: 3}
	for _, o := range opts {
		o(&cfg)
	}
	c, err := startCluster(testDir(t), cfg)
	if c != nil {
		t.Cleanup(func() {
			for _, s := range c.nodes() {
				s.Stop()
			}
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func startCluster(dir string, cfg clusterConfig) (*Cluster, error) {
	cli, err := redisproc.Binary("redis-cli")
	if err != nil {
		return nil, err
	}
	n := cfg.masters * (1 + cfg.replicas)
	c := &Cluster{tls: cfg.tls, dir: dir, cfg: cfg}
	var all []*Server
	for i := range n {
		s, err := c.startNode()
		if err != nil {
			return c, err
		}
		all = append(all, s)
		// redis-cli assigns the first `masters` addresses as masters.
		if i < cfg.masters {
			c.Masters = append(c.Masters, s)
		} else {
			c.Replicas = append(c.Replicas, s)
		}
	}
	args := append([]string(nil), cfg.cliArgs...)
	args = append(args, "--cluster", "create")
	for _, s := range all {
		args = append(args, s.Addr)
	}
	args = append(args, "--cluster-replicas", strconv.Itoa(cfg.replicas), "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		return c, fmt.Errorf("redistest: redis-cli --cluster create: %w\n%s", err, out)
	}
	if err := c.waitOK(ctx); err != nil {
		return c, fmt.Errorf("%w\n%s", err, c.logTails())
	}
	if err := c.waitReplicasKnown(ctx); err != nil {
		return c, fmt.Errorf("%w\n%s", err, c.logTails())
	}
	return c, nil
}

// waitReplicasKnown waits until every node lists every replica as one in
// CLUSTER NODES. A replica's role reaches the other nodes by gossip, after
// its own link to its master is up (which waitOK checks): a test that asks
// any node for the replica of a master must find it.
func (c *Cluster) waitReplicasKnown(ctx context.Context) error {
	return c.untilEveryNode(ctx, "replicas not known to every node", func(s *Server) bool {
		out, err := s.Do(ctx, "CLUSTER", "NODES")
		str, _ := out.(string)
		return err == nil && strings.Count(str, "slave ") >= len(c.Replicas)
	})
}

// untilEveryNode polls every 50 ms until ready holds for every running
// node, or ctx ends (the error names what was awaited).
func (c *Cluster) untilEveryNode(ctx context.Context, what string, ready func(*Server) bool) error {
	nodes := c.nodes()
	for {
		ok := true
		for _, s := range nodes {
			if s.Running() && !ready(s) {
				ok = false
				break
			}
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("redistest: %s: %w", what, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// startNode starts one more cluster-enabled node, not yet part of the
// cluster, with extra redis-server arguments.
func (c *Cluster) startNode(extra ...string) (*Server, error) {
	c.mu.Lock()
	i := c.nodeN
	c.nodeN++
	c.mu.Unlock()
	args := []string{
		"--cluster-enabled", "yes",
		"--cluster-config-file", "nodes-" + strconv.Itoa(i) + ".conf",
		"--cluster-node-timeout", "1000",
		"--cluster-require-full-coverage", "no",
		// A replica must be able to take over whatever its data age: a
		// test may kill a master seconds after the cluster is made.
		"--cluster-replica-validity-factor", "0",
		"--repl-diskless-sync-delay", "0",
	}
	args = append(args, extra...)
	if c.cfg.tls != nil {
		args = append(append(args, c.cfg.tlsArgs...), "--tls-cluster", "yes", "--tls-replication", "yes")
	}
	p, err := redisproc.Start(redisproc.Config{Dir: c.dir, Args: args, TLS: c.cfg.tls})
	if err != nil {
		return nil, err
	}
	return &Server{p}, nil
}

// logTails returns the last lines of every node's log, to say why a
// cluster did not form.
func (c *Cluster) logTails() string {
	var b strings.Builder
	for _, s := range c.nodes() {
		data, _ := os.ReadFile(s.LogPath())
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		fmt.Fprintf(&b, "--- %s (%s)\n%s\n", s.Addr, s.LogPath(), strings.Join(lines[max(0, len(lines)-8):], "\n"))
	}
	return b.String()
}

func (c *Cluster) nodes() []*Server {
	return append(append([]*Server(nil), c.Masters...), c.Replicas...)
}

// waitOK waits until every running node says cluster_state:ok and knows the
// same number of nodes, so that a client's first CLUSTER SLOTS is complete,
// and every running replica is in sync with its master, so that it can take
// over at once.
func (c *Cluster) waitOK(ctx context.Context) error {
	known := "cluster_known_nodes:" + strconv.Itoa(len(c.nodes()))
	return c.untilEveryNode(ctx, "cluster not ok", func(s *Server) bool {
		info, err := s.Do(ctx, "CLUSTER", "INFO")
		str, _ := info.(string)
		if err != nil || !strings.Contains(str, "cluster_state:ok") || !strings.Contains(str, known) {
			return false
		}
		repl, err := s.Do(ctx, "INFO", "replication")
		str, _ = repl.(string)
		return err == nil && (!strings.Contains(str, "role:slave") || strings.Contains(str, "master_link_status:up"))
	})
}

// WaitOK waits up to 30 s until every running node reports cluster_state:ok,
// as after a failover or a reshard.
func (c *Cluster) WaitOK(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.waitOK(ctx); err != nil {
		t.Fatal(err)
	}
}

// Addrs returns the addresses of the masters, as seeds for a client.
func (c *Cluster) Addrs() []string { return addrsOf(c.Masters) }

func addrsOf(servers []*Server) []string {
	addrs := make([]string, len(servers))
	for i, s := range servers {
		addrs[i] = s.Addr
	}
	return addrs
}

// Client returns a cluster client seeded with the masters' addresses, closed
// when the test ends.
func (c *Cluster) Client(t testing.TB, opt ...func(*redis.ClusterOptions)) *redis.ClusterClient {
	t.Helper()
	o := &redis.ClusterOptions{Addrs: c.Addrs(), TLSConfig: c.tls, DialTimeout: time.Second}
	for _, f := range opt {
		f(o)
	}
	rdb := redis.NewClusterClient(o)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// MasterOf returns the master that rdb's slot map names for key: the
// harness's server and rdb's client of that node. It fails the test when the
// map names a node that is not among Masters.
func (c *Cluster) MasterOf(t testing.TB, rdb *redis.ClusterClient, key string) (*Server, *redis.Client) {
	t.Helper()
	node, err := rdb.MasterForKey(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range c.Masters {
		if s.Addr == node.Options().Addr {
			return s, node
		}
	}
	t.Fatalf("redistest: no master at %s", node.Options().Addr)
	return nil, nil
}

// KillMaster kills master i and waits up to 30 s until one of its replicas
// has taken over and the cluster is ok again; then the promoted replica is
// in Masters in its place and the dead node in Replicas (Restart brings it
// back as a replica). It needs a cluster started WithReplicas.
func (c *Cluster) KillMaster(t testing.TB, i int) (promoted *Server) {
	t.Helper()
	victim := c.Masters[i]
	victim.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for promoted == nil {
		for j, r := range c.Replicas {
			if !r.Running() {
				continue
			}
			role, err := r.Do(ctx, "ROLE")
			if fields, ok := role.([]any); err == nil && ok && len(fields) > 0 && fields[0] == "master" {
				promoted = r
				c.Masters[i], c.Replicas[j] = r, victim
				break
			}
		}
		if promoted != nil {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("redistest: no replica of %s took over within 30 s", victim.Addr)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err := c.waitOK(ctx); err != nil {
		t.Fatal(err)
	}
	return promoted
}
