package loadtest_test

import (
	"context"
	"errors"
	"fmt"
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
	s := redistest.StartSentinel(t)
	// Never alongside a run: runs count the whole process's goroutines.
	runMu.Lock()
	defer runMu.Unlock()
	client, err := rediskit.Open(ctx, clientConfig(rediskit.Config{
		MasterName: s.MasterName, SentinelAddrs: s.SentinelAddrs(),
		BreakerThreshold: -1, // this test counts every write's outcome itself
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

// DurableReplicas is refused where a WAIT cannot follow the write to its
// node, and validated like every option.
func TestDurableOptions(t *testing.T) {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}})
	defer cc.Close()
	if _, err := session.New(cc, session.Options{DurableReplicas: 1}); err == nil {
		t.Error("DurableReplicas with a cluster client: no error")
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
