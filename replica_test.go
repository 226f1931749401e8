package rediskit_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit"
	"github.com/rediskit/rediskit/cache"
	"github.com/rediskit/rediskit/internal/redistest"
	"github.com/rediskit/rediskit/session"
)

// readCommands are the read-only data commands a session store or a cache
// could send. Replicas execute the master's writes (counted in their
// commandstats too) but never a read: a read counted on a replica was
// routed there by the client.
var readCommands = []string{"get", "mget", "getrange", "strlen", "exists", "ttl", "pttl", "type",
	"hgetall", "hget", "hmget", "hexists", "hlen", "smembers", "sismember", "zrange", "zscore",
	"evalsha_ro", "eval_ro", "fcall_ro"}

// replicaReads counts, on the servers' own statistics, the read commands the
// replicas executed since reset.
type replicaReads struct {
	t        *testing.T
	replicas []*redis.Client
}

func newReplicaReads(t *testing.T, addrs ...string) *replicaReads {
	r := &replicaReads{t: t}
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a, MaxRetries: -1})
		t.Cleanup(func() { _ = c.Close() })
		r.replicas = append(r.replicas, c)
	}
	return r
}

func (r *replicaReads) reset() {
	r.t.Helper()
	for _, c := range r.replicas {
		if err := c.ConfigResetStat(context.Background()).Err(); err != nil {
			r.t.Fatal(err)
		}
	}
}

func (r *replicaReads) count() int {
	r.t.Helper()
	n := 0
	for _, c := range r.replicas {
		info, err := c.Info(context.Background(), "commandstats").Result()
		if err != nil {
			r.t.Fatal(err)
		}
		for _, line := range strings.Split(info, "\n") {
			name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
			if !ok || !strings.HasPrefix(name, "cmdstat_") {
				continue
			}
			name = strings.TrimPrefix(name, "cmdstat_")
			isRead := false
			for _, rc := range readCommands {
				isRead = isRead || name == rc
			}
			if !isRead {
				continue
			}
			calls, _, _ := strings.Cut(strings.TrimPrefix(rest, "calls="), ",")
			k, _ := strconv.Atoi(calls)
			n += k
		}
	}
	return n
}

type replicaMode struct {
	name string
	set  func(*rediskit.Config)
	// routesAll: every read goes to a replica (ReadOnly), or half of them
	// at random (RouteRandomly); RouteByLatency may keep every read on the
	// master of a loopback deployment, so the control check is skipped.
	routes bool
}

var replicaModes = []replicaMode{
	{"ReadOnly", func(c *rediskit.Config) { c.ReadOnly = true }, true},
	{"RouteRandomly", func(c *rediskit.Config) { c.RouteRandomly = true }, true},
	{"RouteByLatency", func(c *rediskit.Config) { c.RouteByLatency = true }, false},
}

// replicaDeployments starts a cluster with one replica per master and a
// Sentinel deployment (master and one replica), and returns for each a
// base Config and the replicas' addresses.
func replicaDeployments(t *testing.T) []deployment {
	cl := redistest.StartCluster(t, redistest.WithReplicas(1))
	awaitReplicasListed(t, cl.Masters[0].Addr, len(cl.Masters))
	var clReplicas []string
	for _, r := range cl.Replicas {
		clReplicas = append(clReplicas, r.Addr)
	}
	sn := redistest.StartSentinel(t)
	return []deployment{
		{"cluster", rediskit.Config{ClusterAddrs: cl.Addrs()}, clReplicas},
		{"sentinel", rediskit.Config{MasterName: sn.MasterName, SentinelAddrs: sn.SentinelAddrs()}, []string{sn.Replica.Addr}},
	}
}

// TestReplicaReads starts a Cluster with one replica per master and a
// Sentinel deployment (master and replica) once, and runs on each:
//
// session/<setting>: with each replica-read setting the session Store sends
// no read to a replica (so a replica that has not yet applied a Delete or
// a Rotate cannot serve the ended session), sessions work, and ended ones
// are not found; control reads through the same client do reach the
// replicas, so the setting is in effect.
//
// cache: with ReadOnly, GetOrSet sends nothing to a replica (its read is
// the lease command on the master), so a Delete is seen at once and a load
// that a Delete overtook is not written back; Get does read replicas and
// sees a Set once the replicas have it (WAIT).
func TestReplicaReads(t *testing.T) {
	deps := replicaDeployments(t)
	t.Run("session", func(t *testing.T) { replicaReadsSession(t, deps) })
	t.Run("cache", func(t *testing.T) { replicaReadsCache(t, deps) })
	t.Run("plain-failover-ReplicaOnly", func(t *testing.T) { replicaOnlyFailoverClient(t, deps[1]) })
}

// replicaOnlyFailoverClient: go-redis's plain failover client with
// ReplicaOnly sends writes to a replica too (which is why rediskit builds
// the failover cluster client instead): a Store or Cache on it fails every
// write with an error, and creates nothing.
func replicaOnlyFailoverClient(t *testing.T, d deployment) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: d.cfg.MasterName,
		SentinelAddrs: d.cfg.SentinelAddrs, ReplicaOnly: true, MaxRetries: -1})
	defer rdb.Close()
	store, err := session.New(rdb, session.Options{Prefix: redistest.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if s, err := store.Create(ctx, "alice", nil, session.CreateOptions{}); err == nil || !strings.Contains(err.Error(), "READONLY") {
		t.Fatalf("Create on a ReplicaOnly failover client = %v, %v; want a READONLY error", s, err)
	}
	c, err := cache.New(rdb, cache.Options{Prefix: strings.TrimSuffix(redistest.Prefix(t), ":")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Set(ctx, "k", []byte("v"), time.Minute); err == nil || !strings.Contains(err.Error(), "READONLY") {
		t.Fatalf("Set on a ReplicaOnly failover client = %v; want a READONLY error", err)
	}
}

type deployment = struct {
	name     string
	cfg      rediskit.Config
	replicas []string
}

func replicaReadsSession(t *testing.T, deps []deployment) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, d := range deps {
		reads := newReplicaReads(t, d.replicas...)
		for _, m := range replicaModes {
			t.Run(d.name+"/"+m.name, func(t *testing.T) {
				cfg := d.cfg
				m.set(&cfg)
				client, err := rediskit.Open(ctx, cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer client.Close()
				if _, ok := client.Redis().(*redis.ClusterClient); !ok {
					t.Fatalf("%s mode with %s built %T, want the (failover) cluster client that routes reads", d.name, m.name, client.Redis())
				}
				if h := client.Health(ctx); !h.Healthy() {
					t.Fatalf("Health = %+v", h)
				}
				if _, err := client.Stats(ctx); err != nil {
					t.Fatalf("Stats: %v", err)
				}
				store, err := session.New(client.Redis(), session.Options{Prefix: redistest.Prefix(t)})
				if err != nil {
					t.Fatal(err)
				}
				defer store.Close()

				reads.reset()
				live, err := store.Create(ctx, "alice", map[string]any{"n": 1}, session.CreateOptions{})
				if err != nil {
					t.Fatal(err)
				}
				rotated, err := store.Create(ctx, "alice", nil, session.CreateOptions{})
				if err != nil {
					t.Fatal(err)
				}
				successor, err := store.Rotate(ctx, rotated.ID())
				if err != nil {
					t.Fatal(err)
				}
				deleted, err := store.Create(ctx, "bob", nil, session.CreateOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := store.Delete(ctx, deleted.ID()); err != nil {
					t.Fatal(err)
				}
				for range 20 {
					if s, err := store.Get(ctx, live.ID()); err != nil || s.Info().UserID != "alice" {
						t.Fatalf("Get(live) = %v, %v", s, err)
					}
					if _, err := store.Get(ctx, successor); err != nil {
						t.Fatalf("Get(rotated successor): %v", err)
					}
					for name, id := range map[string]string{"deleted": deleted.ID(), "rotated away": rotated.ID()} {
						if s, err := store.Get(ctx, id); !errors.Is(err, session.ErrNotFound) {
							t.Fatalf("Get(%s) = %v, %v; want ErrNotFound", name, s, err)
						}
					}
					many, err := store.GetMany(ctx, []string{live.ID(), deleted.ID(), rotated.ID(), successor})
					if err != nil || many[0] == nil || many[1] != nil || many[2] != nil || many[3] == nil {
						t.Fatalf("GetMany(live, deleted, rotated away, successor) = %v, %v", many, err)
					}
				}
				if n := reads.count(); n != 0 {
					t.Fatalf("the session store sent %d reads to replicas", n)
				}

				if !m.routes {
					return
				}
				reads.reset()
				for i := range 20 {
					_ = client.Redis().Get(ctx, redistest.Prefix(t)+strconv.Itoa(i)).Err()
				}
				if n := reads.count(); n == 0 {
					t.Fatalf("control: 20 GETs through the client reached no replica: %s is not in effect", m.name)
				}
			})
		}
	}
}

func replicaReadsCache(t *testing.T, deps []deployment) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, d := range deps {
		reads := newReplicaReads(t, d.replicas...)
		t.Run(d.name, func(t *testing.T) {
			cfg := d.cfg
			cfg.ReadOnly = true
			client, err := rediskit.Open(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			c, err := cache.New(client.Redis(), cache.Options{Prefix: strings.TrimSuffix(redistest.Prefix(t), ":")})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()

			if err := c.Set(ctx, "k", []byte("v1"), time.Minute); err != nil {
				t.Fatal(err)
			}
			reads.reset()
			if err := c.Delete(ctx, "k"); err != nil {
				t.Fatal(err)
			}
			var calls atomic.Int32
			got, err := c.GetOrSet(ctx, "k", time.Minute, func(context.Context) ([]byte, error) {
				calls.Add(1)
				return []byte("v2"), nil
			})
			if err != nil || string(got) != "v2" || calls.Load() != 1 {
				t.Fatalf("GetOrSet after Delete = %q, %v, loader calls %d; want v2, nil, 1", got, err, calls.Load())
			}

			// A load overtaken by a Delete: the loader returns the old
			// value after the Delete; nothing may be stored.
			started, release := make(chan struct{}), make(chan struct{})
			done := make(chan error, 1)
			go func() {
				_, err := c.GetOrSet(ctx, "k3", time.Minute, func(context.Context) ([]byte, error) {
					close(started)
					<-release
					return []byte("old"), nil
				})
				done <- err
			}()
			<-started
			if err := c.Delete(ctx, "k3"); err != nil {
				t.Fatal(err)
			}
			close(release)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if n := reads.count(); n != 0 {
				t.Fatalf("GetOrSet and Delete sent %d reads to replicas", n)
			}
			cc := client.Redis().(*redis.ClusterClient)
			if err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
				n, err := m.Exists(ctx, c.Namespace()+"k3").Result()
				if err != nil && strings.HasPrefix(err.Error(), "MOVED") {
					return nil // not this master's slot
				}
				if err != nil || n != 0 {
					t.Errorf("master %s holds k3 after the Delete (%d, %v)", m.Options().Addr, n, err)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}

			// Get reads a replica: it sees the value once replicated.
			if err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
				return m.Do(ctx, "WAIT", 1, 5000).Err()
			}); err != nil {
				t.Fatal(err)
			}
			reads.reset()
			v, ok, err := c.Get(ctx, "k")
			if err != nil || !ok || string(v) != "v2" {
				t.Fatalf("Get after WAIT = %q, %v, %v; want v2", v, ok, err)
			}
			if n := reads.count(); n == 0 {
				t.Fatal("control: Cache.Get reached no replica with ReadOnly")
			}
		})
	}
}

// awaitReplicasListed waits until CLUSTER SLOTS lists a replica for each of
// the masters' slot ranges: a replica appears there only once it has
// synchronised, and a client reads the topology when it opens.
func awaitReplicasListed(t *testing.T, addr string, ranges int) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		//lint:ignore SA1019 go-redis builds its topology from CLUSTER SLOTS: wait on what it reads
		slots, err := c.ClusterSlots(context.Background()).Result()
		ok := err == nil && len(slots) == ranges
		for _, s := range slots {
			ok = ok && len(s.Nodes) >= 2
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("CLUSTER SLOTS lists no replica for some range after 30 s: %v, %v", slots, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
