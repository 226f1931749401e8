package loadtest_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit"
	"github.com/rediskit/rediskit/internal/redistest"
	"github.com/rediskit/rediskit/retry"
	"github.com/rediskit/rediskit/session"
)

// Durable writes (session.Options.DurableReplicas): a write is acknowledged
// only once a replica confirmed it, so every acknowledged session survives
// the master's death. While the replica is paused (SIGSTOP: it confirms
// nothing) durable writes fail with session.ErrNotDurable, which matches
// retry.ErrAmbiguous, instead of being acknowledged; plain writes are
// acknowledged by the master alone. (Whether those plain writes then
// survive depends on what reached the replica's socket before the master
// died; the test reports it and does not rely on it.)
func TestSentinelDurableSessions(t *testing.T) {
	parallelIfQuick(t)
	ctx := context.Background()
	// Never alongside a run, its set-up included: runs count the whole
	// process's goroutines.
	runMu.Lock()
	defer runMu.Unlock()
	s := redistest.StartSentinel(t)
	client, err := rediskit.Open(ctx, clientConfig(rediskit.Config{
		MasterName: s.MasterName, SentinelAddrs: s.SentinelAddrs(),
		BreakerThreshold: -1, // this test counts every write's outcome itself
		// and every round trip: no health PING may take the connection.
		HealthCheckInterval: -1,
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close() // before runMu is released
	opts := sessionOptions(runs.Add(1))
	plain, err := session.New(client.Redis(), opts)
	if err != nil {
		t.Fatal(err)
	}
	dopts := opts
	dopts.DurableReplicas, dopts.DurableTimeout = 1, 100*time.Millisecond
	durable, err := session.New(client.Redis(), dopts)
	if err != nil {
		t.Fatal(err)
	}

	create := func(st *session.Store, n int) (acked []string, notDurable int) {
		for i := range n {
			sess, err := st.Create(ctx, fmt.Sprintf("user%d", i%10), map[string]any{"n": i}, session.CreateOptions{})
			switch {
			case err == nil:
				acked = append(acked, sess.ID())
			case errors.Is(err, session.ErrNotDurable) && errors.Is(err, retry.ErrAmbiguous):
				notDurable++
			default:
				t.Fatalf("create: %v", err)
			}
		}
		return acked, notDurable
	}

	if err := durable.Preload(ctx); err != nil {
		t.Fatal(err)
	}
	// The first pipeline dials go-redis's pipeline pool, and the handshake
	// passes through the hooks: dial it before counting. The replica may
	// still be finishing its first sync (a new deployment, a loaded
	// machine): warm up until a create is confirmed.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, nd := create(durable, 1); nd == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no durable create within 10 s; deployment: %s", s.Describe(ctx))
		}
	}
	// Replicated: every durable create is acknowledged, each in one round
	// trip (the script and its WAIT in one pipeline).
	rt := &roundTrips{}
	client.Redis().AddHook(rt)
	before, nd := create(durable, 50)
	if cmds, pipes := rt.cmds.Load(), rt.pipes.Load(); cmds != 0 || pipes != 50 {
		t.Errorf("50 durable creates: %d commands and %d pipelines, want 0 and 50", cmds, pipes)
	}
	if len(before) != 50 || nd != 0 {
		t.Fatalf("with the replica up: %d acknowledged, %d not durable; want 50, 0", len(before), nd)
	}
	// Update and Delete wait too.
	if _, err := durable.Update(ctx, before[0], session.Changes{Set: map[string]any{"n": -1}}); err != nil {
		t.Fatal(err)
	}
	if ok, err := durable.Delete(ctx, before[1]); err != nil || !ok {
		t.Fatalf("durable delete: %v, %v", ok, err)
	}

	// The replica stops acknowledging: durable writes are refused, plain
	// writes acknowledged by the master alone.
	replica := s.Replica
	replica.Pause()
	t.Cleanup(replica.Resume)
	during, nd := create(durable, 5)
	if len(during) != 0 || nd != 5 {
		t.Fatalf("with the replica paused: %d durable creates acknowledged, %d not durable; want 0, 5", len(during), nd)
	}
	lost, _ := create(plain, 20)
	if len(lost) != 20 {
		t.Fatalf("plain creates: %d acknowledged, want 20", len(lost))
	}

	// The master dies with its unreplicated tail; the replica comes back
	// and is promoted.
	old := s.Master
	old.Kill()
	replica.Resume()
	if err := awaitNewMaster(ctx, s, old.Addr); err != nil {
		t.Fatal(err)
	}

	peek := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: s.MasterName, SentinelAddrs: s.SentinelAddrs()})
	defer peek.Close()
	reader, err := session.New(peek, opts)
	if err != nil {
		t.Fatal(err)
	}
	var survived, gone int
	for i, id := range before {
		sess, err := reader.Get(ctx, id)
		if i == 1 {
			if !errors.Is(err, session.ErrNotFound) {
				t.Errorf("durably deleted session: %v, want ErrNotFound", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("durable session %d after the failover: %v", i, err)
			continue
		}
		var n int
		if err := sess.Decode("n", &n); err != nil || (i == 0 && n != -1) || (i > 0 && n != i) {
			t.Errorf("durable session %d: n = %d, %v", i, n, err)
		}
		survived++
	}
	for _, id := range lost {
		if _, err := reader.Get(ctx, id); errors.Is(err, session.ErrNotFound) {
			gone++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("after the failover: %d/%d acknowledged durable sessions readable (1 durably deleted stays gone); "+
		"%d/%d plain sessions acknowledged while the replica was paused are gone", survived, len(before)-1, gone, len(lost))
}

// roundTrips counts round trips: a command is one, a pipeline is one.
type roundTrips struct{ cmds, pipes atomic.Int64 }

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.cmds.Add(1)
		return next(ctx, cmd)
	}
}

func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.pipes.Add(1)
		return next(ctx, cmds)
	}
}

// DurableReplicas is refused on a Ring, whose shards have no replicas, and
// validated like every option.
func TestDurableOptions(t *testing.T) {
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": "127.0.0.1:1"}})
	defer ring.Close()
	if _, err := session.New(ring, session.Options{DurableReplicas: 1}); err == nil {
		t.Error("DurableReplicas with a ring client: no error")
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}})
	defer cc.Close()
	if _, err := session.New(cc, session.Options{DurableReplicas: 1}); err != nil {
		t.Errorf("DurableReplicas with a cluster client: %v", err)
	}
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	for _, o := range []session.Options{{DurableReplicas: -1}, {DurableReplicas: 1, DurableTimeout: -time.Second}} {
		if _, err := session.New(c, o); err == nil {
			t.Errorf("session.New(%+v): no error", o)
		}
	}
	if _, err := session.New(c, session.Options{DurableReplicas: 1}); err != nil {
		t.Error(err)
	}
}

// Durable writes on Cluster: each write and its WAIT go in one pipeline to
// the master of the session's slot, whose replica must confirm it; after a
// resharding the client's stale slot map meets MOVED, learns the new master
// and sends the pair there; with the replicas paused, writes fail with
// ErrNotDurable.
func TestClusterDurableSessions(t *testing.T) {
	parallelIfQuick(t)
	ctx := context.Background()
	// Never alongside a run, its set-up included: runs count the whole
	// process's goroutines.
	runMu.Lock()
	defer runMu.Unlock()
	cl := redistest.StartCluster(t, redistest.WithReplicas(1))
	rec := &durablePipes{}
	cc := cl.Client(t, func(o *redis.ClusterOptions) {
		o.NewClient = func(opt *redis.Options) *redis.Client {
			c := redis.NewClient(opt)
			c.AddHook(durableHook{rec, opt.Addr})
			return c
		}
	})
	st, err := session.New(cc, session.Options{Prefix: "durable", DurableReplicas: 1, DurableTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Preload(ctx); err != nil {
		t.Fatal(err)
	}

	// Replicated: every write acknowledged, each one pipeline [evalsha wait]
	// sent to the master of its slot.
	var ids []string
	for i := range 30 {
		sess, err := st.Create(ctx, fmt.Sprintf("user%d", i), map[string]any{"n": i}, session.CreateOptions{})
		if err != nil {
			t.Fatalf("durable create %d: %v", i, err)
		}
		ids = append(ids, sess.ID())
	}
	pipes := rec.take()
	masters := map[string]bool{}
	for _, p := range pipes {
		if p.names != "evalsha wait" || p.err != "" {
			t.Fatalf("durable create sent %q (error %q), want one [evalsha wait]", p.names, p.err)
		}
		if owner := masterOf(t, cc, p.key); owner != p.addr {
			t.Fatalf("pipeline for %s went to %s, its master is %s", p.key, p.addr, owner)
		}
		masters[p.addr] = true
	}
	if len(pipes) != 30 || len(masters) < 2 {
		t.Fatalf("30 creates: %d pipelines on %d masters, want 30 on several", len(pipes), len(masters))
	}
	if _, err := st.Update(ctx, ids[0], session.Changes{Set: map[string]any{"n": -1}}); err != nil {
		t.Fatalf("durable update: %v", err)
	}
	if ok, err := st.Delete(ctx, ids[1]); err != nil || !ok {
		t.Fatalf("durable delete: %v, %v", ok, err)
	}
	if pipes := rec.take(); len(pipes) != 2 {
		t.Fatalf("durable update and delete: %d pipelines, want 2", len(pipes))
	}

	// Resharding: the slot of user "mover" goes to another master; the
	// client's slot map still names the old one.
	if _, err := st.Create(ctx, "mover", nil, session.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	moverKey := rec.take()[0].key
	if _, err := st.DeleteByUser(ctx, "mover"); err != nil { // an empty slot moves without MIGRATE
		t.Fatal(err)
	}
	// The call's tombstone (Store.DeleteByUser) lives 10 s in the slot:
	// remove it so the slot is empty.
	tombs := moverKey[:strings.LastIndex(moverKey, "}:s:")] + "}:d:*"
	if err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		keys, err := m.Keys(ctx, tombs).Result()
		if err != nil || len(keys) == 0 {
			return err
		}
		return m.Del(ctx, keys...).Err()
	}); err != nil {
		t.Fatal(err)
	}
	rec.take()
	slot, err := cc.ClusterKeySlot(ctx, moverKey).Result()
	if err != nil {
		t.Fatal(err)
	}
	from := masterOf(t, cc, moverKey)
	to := moveSlot(t, cl, int(slot), from)
	if _, err := st.Create(ctx, "mover", map[string]any{"n": 1}, session.CreateOptions{}); err != nil {
		t.Fatalf("durable create after resharding: %v", err)
	}
	pipes = rec.take()
	if len(pipes) != 2 || pipes[0].addr != from || !strings.HasPrefix(pipes[0].err, "MOVED") ||
		pipes[1].addr != to || pipes[1].err != "" {
		t.Fatalf("create after resharding sent %+v; want MOVED from %s, then the pair on %s", pipes, from, to)
	}

	// The replicas stop confirming: durable writes are refused.
	for _, r := range cl.Replicas {
		r.Pause()
		t.Cleanup(r.Resume)
	}
	for i := range 3 {
		_, err := st.Create(ctx, fmt.Sprintf("user%d", i), nil, session.CreateOptions{})
		if !errors.Is(err, session.ErrNotDurable) || !errors.Is(err, retry.ErrAmbiguous) {
			t.Fatalf("create with the replicas paused: %v, want ErrNotDurable", err)
		}
	}
}

// masterOf returns the address of the master that owns key, asking the
// cluster itself.
func masterOf(t *testing.T, cc *redis.ClusterClient, key string) string {
	t.Helper()
	ctx := context.Background()
	slot, err := cc.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	shards, err := cc.ClusterShards(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	addr := slotMaster(shards, slot)
	if addr == "" {
		t.Fatalf("no master owns slot %d", slot)
	}
	return addr
}

// slotMaster returns the address of the master of slot in shards, or "".
func slotMaster(shards []redis.ClusterShard, slot int64) string {
	for _, sh := range shards {
		for _, r := range sh.Slots {
			if r.Start > slot || slot > r.End {
				continue
			}
			for _, n := range sh.Nodes {
				if n.Role == "master" {
					return net.JoinHostPort(n.IP, strconv.FormatInt(n.Port, 10))
				}
			}
		}
	}
	return ""
}

// moveSlot moves an empty slot from the master at addr from to another
// master, the way redis-cli --cluster reshard does (IMPORTING, MIGRATING,
// then NODE on both and on the rest), and waits until every master agrees.
// It returns the new owner's address.
func moveSlot(t *testing.T, cl *redistest.Cluster, slot int, from string) string {
	t.Helper()
	ctx := context.Background()
	var src, dst *redis.Client
	for _, m := range cl.Masters {
		c := m.Client(t)
		if m.Addr == from {
			src = c
		} else if dst == nil {
			dst = c
		}
	}
	id := func(c *redis.Client) string {
		s, err := c.Do(ctx, "CLUSTER", "MYID").Text()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	srcID, dstID := id(src), id(dst)
	steps := []struct {
		c    *redis.Client
		args []any
	}{
		{dst, []any{"CLUSTER", "SETSLOT", slot, "IMPORTING", srcID}},
		{src, []any{"CLUSTER", "SETSLOT", slot, "MIGRATING", dstID}},
		{dst, []any{"CLUSTER", "SETSLOT", slot, "NODE", dstID}},
		{src, []any{"CLUSTER", "SETSLOT", slot, "NODE", dstID}},
	}
	for _, s := range steps {
		if err := s.c.Do(ctx, s.args...).Err(); err != nil {
			t.Fatalf("%v: %v", s.args, err)
		}
	}
	for _, m := range cl.Masters {
		if c := m.Client(t); m.Addr != from && m.Addr != dst.Options().Addr {
			if err := c.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", dstID).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, m := range cl.Masters {
		c := m.Client(t)
		for !ownsSlot(ctx, c, slot, dst.Options().Addr) {
			if time.Now().After(deadline) {
				t.Fatalf("master %s does not see slot %d moved", m.Addr, slot)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return dst.Options().Addr
}

// ownsSlot reports whether c's view of the cluster gives slot to addr.
func ownsSlot(ctx context.Context, c *redis.Client, slot int, addr string) bool {
	shards, err := c.ClusterShards(ctx).Result()
	return err == nil && slotMaster(shards, int64(slot)) == addr
}

// durablePipes records the pipelines that carry a WAIT, per node.
type durablePipes struct {
	mu    sync.Mutex
	pipes []durablePipe
}

type durablePipe struct {
	addr, names, key, err string
}

func (r *durablePipes) take() []durablePipe {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.pipes
	r.pipes = nil
	return p
}

type durableHook struct {
	r    *durablePipes
	addr string
}

func (h durableHook) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h durableHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (h durableHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if len(cmds) == 0 || cmds[len(cmds)-1].Name() != "wait" {
			return err
		}
		var names []string
		for _, c := range cmds {
			names = append(names, c.Name())
		}
		p := durablePipe{addr: h.addr, names: strings.Join(names, " ")}
		if args := cmds[0].Args(); len(args) > 3 {
			p.key = fmt.Sprint(args[3])
		}
		if e := cmds[0].Err(); e != nil {
			p.err = e.Error()
		}
		h.r.mu.Lock()
		h.r.pipes = append(h.r.pipes, p)
		h.r.mu.Unlock()
		return err
	}
}
