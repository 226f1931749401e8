package loadtest_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit"
	"github.com/rediskit/rediskit/internal/loadtest"
	"github.com/rediskit/rediskit/internal/redistest"
	"github.com/rediskit/rediskit/session"
)

// Standalone server killed (SIGKILL) and restarted on the same port while
// the load runs. Without persistence the data goes with the process: the
// test requires recovery and clean failures, and reports what was gone.
func TestStandaloneKillRestart(t *testing.T) {
	srv := redistest.Start(t)
	every, down := pick(2*time.Second, 30*time.Second), pick(500*time.Millisecond, 2*time.Second)
	kills := pick(2, 5) // the last one well before the end, so its recovery is seen
	run(t, scenario{
		name: "Standalone server killed and restarted" + pick(" (quick)", ""),
		cfg:  rediskit.Config{Addr: srv.Addr}, peek: direct(srv.Addr),
		rate: pick(400, 1000), dur: pick(5500*time.Millisecond, 3*time.Minute),
		losesData: true,
		fault: func(ctx context.Context, d *loadtest.Driver) error {
			for i := 1; i <= kills && loadtest.Sleep(ctx, every-down); i++ {
				end := d.Fault("kill " + strconv.Itoa(i))
				srv.Kill()
				loadtest.Sleep(context.Background(), down) // the server stays down even if the run ends
				err := srv.Server.Restart()
				end()
				if err != nil {
					return err
				}
			}
			return nil
		},
	})
}

// Server paused with SIGSTOP for 3 s: connections stay open and nothing
// answers. The breaker must open, refuse calls at once while open (only a
// half-open probe may wait for the read timeout), and close after SIGCONT.
func TestPausedServerBreaker(t *testing.T) {
	srv := redistest.Start(t)
	var transitions [3]atomic.Int64
	pauses := pick(1, 4)
	tl := newTimeline()
	count := counterOf(&transitions)
	var paused atomic.Bool
	var closedWhilePaused atomic.Int64
	run(t, scenario{
		name: "Server paused (SIGSTOP) for 3 s" + pick(" (quick)", ""),
		cfg:  rediskit.Config{Addr: srv.Addr}, peek: direct(srv.Addr),
		rate: pick(400, 1000), dur: pick(5500*time.Millisecond, 80*time.Second),
		onBreaker: func(from, to rediskit.BreakerState) {
			count(from, to)
			tl.add(to.String())
			if to == rediskit.BreakerClosed && paused.Load() {
				closedWhilePaused.Add(1)
			}
		},
		fault: func(ctx context.Context, d *loadtest.Driver) error {
			for i := 1; i <= pauses && loadtest.Sleep(ctx, pick(time.Second, 15*time.Second)); i++ {
				end := d.Fault("pause " + strconv.Itoa(i))
				srv.Pause()
				paused.Store(true)
				tl.add("SIGSTOP")
				loadtest.Sleep(context.Background(), 3*time.Second)
				paused.Store(false)
				srv.Resume()
				tl.add("SIGCONT")
				end()
			}
			return nil
		},
		check: func(t *testing.T, r *loadtest.Result) {
			probes := transitions[rediskit.BreakerHalfOpen].Load()
			r.Notes = append(r.Notes, fmt.Sprintf("breaker transitions: open %d, half-open %d, closed %d",
				transitions[rediskit.BreakerOpen].Load(), probes, transitions[rediskit.BreakerClosed].Load()),
				"timeline (s from the run's start): "+tl.String())
			if r.BreakerOpens < uint64(pauses) || r.BreakerRejected == 0 || r.Outcomes[loadtest.Breaker] == 0 {
				t.Errorf("breaker opened %d times for %d pauses, rejected %d calls (%d ops saw breaker_open)",
					r.BreakerOpens, pauses, r.BreakerRejected, r.Outcomes[loadtest.Breaker])
			}
			// A probe against the paused server fails: nothing closes the
			// breaker before SIGCONT.
			if n := closedWhilePaused.Load(); n != 0 {
				t.Errorf("breaker closed %d times while the server was paused", n)
			}
			if transitions[rediskit.BreakerClosed].Load() < int64(pauses) {
				t.Errorf("breaker closed %d times after %d pauses", transitions[rediskit.BreakerClosed].Load(), pauses)
			}
			// Once open, calls fail fast: of the operations that started
			// while it was open, only the half-open probes may have waited
			// for the read timeout.
			if r.SlowWhileOpen > probes {
				t.Errorf("%d operations started while the breaker was open waited ≥ %v; only %d probes may",
					r.SlowWhileOpen, readTimeout, probes)
			}
		},
	})
}

// timeline records named events with their time since it was made.
type timeline struct {
	start  time.Time
	mu     sync.Mutex
	events []string
}

func newTimeline() *timeline { return &timeline{start: time.Now()} }

func (t *timeline) add(ev string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.events) < 40 {
		t.events = append(t.events, fmt.Sprintf("%s %.2f", ev, time.Since(t.start).Seconds()))
	}
}

func (t *timeline) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.events, ", ")
}

// Faults through a TCP proxy: reply latency (first below, then above the
// read timeout), connection resets, a black hole. Under all of them no
// increment may be applied twice: for every counter, acknowledged ≤ value ≤
// acknowledged + ambiguous. Nothing acknowledged may be lost, no deleted
// session may come back, and no stampede lease may outlive its TTL.
func TestProxyFaults(t *testing.T) {
	srv := redistest.Start(t)
	proxy := redistest.NewProxy(t, srv.Addr)
	cycles := pick(1, 6)
	gap := pick(700*time.Millisecond, 3*time.Second)
	run(t, scenario{
		name: "Fault proxy: latency, connection resets, black hole" + pick(" (quick)", ""),
		cfg:  rediskit.Config{Addr: proxy.Addr}, peek: direct(srv.Addr),
		rate: pick(400, 1000), dur: pick(8*time.Second, 2*time.Minute),
		awaitLeases: true,
		fault: func(ctx context.Context, d *loadtest.Driver) error {
			defer proxy.SetDelay(0)
			defer proxy.SetBlackHole(false)
			for i := 1; i <= cycles; i++ {
				n := " " + strconv.Itoa(i)
				if !loadtest.Sleep(ctx, gap) {
					return nil
				}
				end := d.Fault("latency 100 ms then 700 ms" + n)
				proxy.SetDelay(100 * time.Millisecond)
				loadtest.Sleep(ctx, 1500*time.Millisecond)
				proxy.SetDelay(700 * time.Millisecond) // above the 500 ms read timeout
				loadtest.Sleep(ctx, time.Second)
				proxy.SetDelay(0)
				end()
				if !loadtest.Sleep(ctx, gap) {
					return nil
				}
				end = d.Fault("3 connection resets" + n)
				for j := 0; j < 3; j++ {
					proxy.CutAll()
					loadtest.Sleep(ctx, 300*time.Millisecond)
				}
				end()
				if !loadtest.Sleep(ctx, gap) {
					return nil
				}
				end = d.Fault("black hole 1.5 s" + n)
				proxy.SetBlackHole(true)
				loadtest.Sleep(ctx, 1500*time.Millisecond)
				proxy.SetBlackHole(false)
				end()
				loadtest.Sleep(ctx, gap)
			}
			return nil
		},
		check: func(t *testing.T, r *loadtest.Result) {
			if r.Outcomes[loadtest.Ambiguous] == 0 {
				t.Errorf("no ambiguous outcome: the latency fault did not lose any reply, so the counter check proved nothing")
			}
		},
	})
}

// Sentinel: the master is killed; the sentinel promotes the replica and the
// client must follow it; the old master is restarted (without persistence:
// empty) and the sentinel makes it a replica. Replication is asynchronous,
// so writes acknowledged in the last moments before a kill may be gone: the
// replication lag is measured right before each kill, and what the audits
// find lost must be within what was acknowledged in that window.
func TestSentinelFailover(t *testing.T) { sentinelFailover(t, false) }

// The same with session.Options.DurableReplicas = 1: no acknowledged session
// write may be lost and no deleted session may come back. (Counters are
// cache writes, not durable: they are reported against the lag's bound.)
func TestSentinelFailoverDurable(t *testing.T) {
	if !long() {
		t.Skip("long only (-long): TestSentinelDurableSessions covers durable writes in the quick run")
	}
	sentinelFailover(t, true)
}

func sentinelFailover(t *testing.T, durable bool) {
	parallelIfQuick(t)
	s := deploy(func() *redistest.Sentinel { return redistest.StartSentinel(t) })
	w := newWatch(s)
	kills := pick(1, 3)
	var risk atRisk
	name := "Sentinel: master killed, replica promoted"
	if durable {
		name += ", durable sessions (DurableReplicas 1)"
	}
	run(t, scenario{
		name: name + pick(" (quick)", ""),
		cfg:  rediskit.Config{MasterName: s.MasterName, SentinelAddrs: s.SentinelAddrs()},
		peek: func() redis.UniversalClient {
			return redis.NewFailoverClient(&redis.FailoverOptions{MasterName: s.MasterName, SentinelAddrs: s.SentinelAddrs()})
		},
		sessionOpts: func(o *session.Options) {
			if durable {
				o.DurableReplicas = 1
			}
		},
		onClient: func(c *rediskit.Client) { c.Redis().AddHook(w) },
		rate:     pick(400, 1000), dur: pick(7*time.Second, 2*time.Minute),
		losesData: true,
		fault: func(ctx context.Context, d *loadtest.Driver) error {
			watching := make(chan struct{})
			go func() { defer close(watching); w.run(ctx) }()
			defer func() { <-ctx.Done(); <-watching }() // the timeline covers the whole run
			for i := 1; i <= kills && loadtest.Sleep(ctx, pick(time.Second, 20*time.Second)); i++ {
				old := s.Master
				lag, err := measureLag(ctx, s.Master, s.Replica)
				if err != nil {
					return fmt.Errorf("kill %d: %w", i, err)
				}
				before := acked(d)
				w.note("kill %d: SIGKILL %s (replica %s %v behind)", i, old.Addr, s.Replica.Addr, lag.Round(time.Microsecond))
				d.Fault("master killed " + strconv.Itoa(i))() // instant: recovery runs from the kill
				old.Kill()
				// Replies the master sent before it died arrive within
				// this; no other master exists yet to acknowledge more.
				time.Sleep(50 * time.Millisecond)
				risk.add(i, lag, before, acked(d))
				if err := awaitNewMaster(ctx, s, old.Addr); err != nil {
					return err
				}
				s.Master, s.Replica = s.Replica, old
				w.note("sentinel names %s; restarting %s", s.Master.Addr, old.Addr)
				// The old master comes back; the sentinel makes it a replica.
				if err := old.Server.Restart(); err != nil {
					return err
				}
				w.note("%s restarted: %s", old.Addr, redistest.State(ctx, old))
				if long() {
					if err := awaitReplica(s); err != nil {
						return err
					}
					w.note("%s in sync", old.Addr)
				}
			}
			return nil
		},
		check: func(t *testing.T, r *loadtest.Result) {
			t.Logf("timeline (s from the scenario's start):\n%s", w)
			if log, err := os.ReadFile(s.Sentinels[0].LogPath()); err == nil {
				t.Logf("sentinel log:\n%s", log)
			}
			r.Notes = append(r.Notes, risk.notes()...)
			sa, ca := r.SessionAudit, r.CounterAudit
			notFound, stale := r.Outcomes[loadtest.NotFound], r.Outcomes[loadtest.Stale]
			r.Notes = append(r.Notes, fmt.Sprintf("found during the run: %d sessions not found, %d stale reads", notFound, stale))
			for _, f := range r.Faults {
				// Durable writes fail (ErrNotDurable) until the restarted
				// node is a replica in sync again: their window is longer
				// by design, and reported.
				if !durable && f.ErrorWindow > 5*time.Second {
					t.Errorf("%s: error window %v, want ≤ 5 s", f.Name, f.ErrorWindow)
				}
			}
			if durable {
				if sa.Resurrected != 0 || sa.Missing != 0 || sa.Stale != 0 || notFound != 0 || stale != 0 {
					t.Errorf("durable sessions lost or undone: %s; during the run %d not found, %d stale", sa, notFound, stale)
				}
			} else {
				// A lost session is read as not found at most once (the
				// ledger drops it), or found missing by the audit.
				if b := risk.bound(loadtest.SessionDelete, loadtest.SessionRotate); int64(sa.Resurrected) > b {
					t.Errorf("%d deleted sessions came back; %d deletes and rotations were acknowledged in the kills' lag windows", sa.Resurrected, b)
				}
				if b := risk.bound(loadtest.SessionCreate, loadtest.SessionRotate); int64(sa.Missing)+notFound > b {
					t.Errorf("%d sessions missing at the audit and %d not found during the run; %d creates and rotations were acknowledged in the kills' lag windows",
						sa.Missing, notFound, b)
				}
				if b := risk.bound(loadtest.SessionUpdate); int64(sa.Stale) > b {
					t.Errorf("%d stale sessions at the audit; %d updates were acknowledged in the kills' lag windows", sa.Stale, b)
				}
			}
			if b := risk.bound(loadtest.CacheIncr); ca.LostCalls > b {
				t.Errorf("%d acknowledged increments lost; %d were acknowledged in the kills' lag windows", ca.LostCalls, b)
			}
		},
	})
}

// measureLag returns how long the replica took to reach the offset the
// master reported at the start: the replication lag at that moment. It
// polls the replica's INFO for at most a second.
func measureLag(ctx context.Context, master, replica *redistest.Server) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	m := redis.NewClient(&redis.Options{Addr: master.Addr, MaxRetries: -1, PoolSize: 1})
	defer m.Close()
	r := redis.NewClient(&redis.Options{Addr: replica.Addr, MaxRetries: -1, PoolSize: 1})
	defer r.Close()
	if err := r.Ping(ctx).Err(); err != nil { // dialled before the clock starts
		return 0, fmt.Errorf("replica %s: %w", replica.Addr, err)
	}
	if err := m.Ping(ctx).Err(); err != nil {
		return 0, fmt.Errorf("master %s: %w", master.Addr, err)
	}
	start := time.Now()
	target, err := replOffset(ctx, m, "master_repl_offset")
	if err != nil {
		return 0, fmt.Errorf("master %s: %w", master.Addr, err)
	}
	for {
		off, err := replOffset(ctx, r, "slave_repl_offset")
		if err == nil && off >= target {
			return time.Since(start), nil
		}
		if time.Since(start) > time.Second {
			return 0, fmt.Errorf("replica %s did not reach offset %d within 1 s (at %d, %v); now: %s",
				replica.Addr, target, off, err, redistest.State(ctx, replica))
		}
	}
}

func replOffset(ctx context.Context, c *redis.Client, field string) (int64, error) {
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in INFO replication", field)
}

// acked returns the operations acknowledged so far, by kind: what a kill
// can lose is the difference of two such snapshots around it. A delete
// that found nothing counts: it is recorded as deleted too.
func acked(d *loadtest.Driver) (n [loadtest.NumKinds]int64) {
	for k := range n {
		n[k] = d.Count(loadtest.Kind(k), loadtest.OK)
	}
	n[loadtest.SessionDelete] += d.Count(loadtest.SessionDelete, loadtest.NotFound)
	return n
}

// atRisk sums, over the kills, the writes acknowledged between the start of
// the lag measurement and just after the kill: an asynchronous replica may
// not have had them.
type atRisk struct {
	windows [loadtest.NumKinds]int64
	lines   []string
}

func (a *atRisk) add(kill int, lag time.Duration, before, after [loadtest.NumKinds]int64) {
	var parts []string
	for k := range a.windows {
		d := after[k] - before[k]
		a.windows[k] += d
		if d > 0 && loadtest.Kind(k) != loadtest.SessionGet && loadtest.Kind(k) != loadtest.CacheGet {
			parts = append(parts, fmt.Sprintf("%s %d", loadtest.Kind(k), d))
		}
	}
	if len(parts) == 0 {
		parts = []string{"no write"}
	}
	a.lines = append(a.lines, fmt.Sprintf("kill %d: replication lag %v; acknowledged from the lag measurement to the kill: %s",
		kill, lag.Round(time.Microsecond), strings.Join(parts, ", ")))
}

// bound returns the writes of the given kinds acknowledged in the windows.
func (a *atRisk) bound(kinds ...loadtest.Kind) int64 {
	var n int64
	for _, k := range kinds {
		n += a.windows[k]
	}
	return n
}

func (a *atRisk) notes() []string {
	return append(append([]string(nil), a.lines...), fmt.Sprintf(
		"bounds from the lag windows: resurrected ≤ %d (deletes + rotations), missing + not found ≤ %d (creates + rotations), "+
			"stale ≤ %d (updates), increments lost ≤ %d",
		a.bound(loadtest.SessionDelete, loadtest.SessionRotate), a.bound(loadtest.SessionCreate, loadtest.SessionRotate),
		a.bound(loadtest.SessionUpdate), a.bound(loadtest.CacheIncr)))
}

// parallelIfQuick lets the sentinel and cluster scenarios, which spend most
// of their time waiting for elections, overlap in the quick (CI) run. The
// long run keeps every scenario alone on the machine, for its figures.
func parallelIfQuick(t *testing.T) {
	if !long() {
		t.Parallel()
	}
}

// awaitNewMaster waits until the sentinel names a master other than old and
// that master accepts writes.
func awaitNewMaster(ctx context.Context, s *redistest.Sentinel, old string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		addr, err := s.MasterAddr(ctx)
		if err == nil && addr != old {
			for _, srv := range []*redistest.Server{s.Master, s.Replica} {
				if srv.Addr == addr {
					role, err := srv.Do(ctx, "ROLE")
					if r, ok := role.([]any); err == nil && ok && len(r) > 0 && r[0] == "master" {
						return nil
					}
				}
			}
		}
		if !loadtest.Sleep(ctx, 50*time.Millisecond) {
			return fmt.Errorf("no new master within 30 s of killing %s: %w; deployment: %s",
				old, ctx.Err(), s.Describe(context.Background()))
		}
	}
}

// awaitLink waits up to 30 s until the replica srv is in sync with its
// master. When it gives up, the error says what srv was doing.
func awaitLink(srv *redistest.Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		info, err := srv.Do(ctx, "INFO", "replication")
		if str, ok := info.(string); err == nil && ok && strings.Contains(str, "master_link_status:up") {
			return nil
		}
		if !loadtest.Sleep(ctx, 100*time.Millisecond) {
			return fmt.Errorf("replica %s never synced within 30 s: %w; now: %s",
				srv.Addr, ctx.Err(), redistest.State(context.Background(), srv))
		}
	}
}

// awaitReplica waits until the restarted old master replicates from the
// new one; when it gives up, the error has the sentinel's view and both
// nodes' roles and links.
func awaitReplica(s *redistest.Sentinel) error {
	if err := awaitLink(s.Replica); err != nil {
		return fmt.Errorf("%w; deployment: %s", err, s.Describe(context.Background()))
	}
	// A link that is up does not mean the master streams to it yet: a
	// failover in that window would lose writes from before it.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := s.Master.AwaitStreaming(ctx); err != nil {
		return fmt.Errorf("%w; deployment: %s", err, s.Describe(context.Background()))
	}
	return nil
}

// Cluster (3 masters, 3 replicas, node timeout 1 s): slots resharded with
// redis-cli while the load runs — redirections are absorbed and no read
// returns an error — then a master is killed and its replica promoted.
func TestCluster(t *testing.T) {
	parallelIfQuick(t)
	c := deploy(func() *redistest.Cluster {
		c := redistest.StartCluster(t, redistest.WithReplicas(1))
		// A replica that never finished its first sync refuses to fail
		// over: wait for every link, without the default 5 s
		// diskless-sync delay.
		for _, m := range c.Masters {
			if _, err := m.Do(context.Background(), "CONFIG", "SET", "repl-diskless-sync-delay", "0"); err != nil {
				t.Fatal(err)
			}
		}
		for _, r := range c.Replicas {
			if err := awaitLink(r); err != nil {
				t.Fatal(err)
			}
		}
		return c
	})
	cfg := rediskit.Config{ClusterAddrs: c.Addrs()}
	peek := func() redis.UniversalClient { return redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()}) }

	t.Run("reshard", func(t *testing.T) {
		rounds := pick(1, 6)
		run(t, scenario{
			name: "Cluster: slots resharded under load" + pick(" (quick)", ""),
			cfg:  cfg, peek: peek,
			rate: pick(400, 1000), dur: pick(4*time.Second, 2*time.Minute),
			fault: func(ctx context.Context, d *loadtest.Driver) error {
				from, to := c.Masters[0], c.Masters[1]
				for i := 1; i <= rounds && loadtest.Sleep(ctx, pick(time.Second, 10*time.Second)); i++ {
					end := d.Fault("reshard 1000 slots " + strconv.Itoa(i))
					err := c.Reshard(context.Background(), from, to, 1000) // never interrupted half-way
					end()
					if err != nil {
						return err
					}
					from, to = to, from
				}
				return nil
			},
			check: func(t *testing.T, r *loadtest.Result) {
				if n := r.ReadErrors(); n != 0 {
					t.Errorf("%d reads returned an error during the reshard", n)
				}
			},
		})
	})

	t.Run("master-killed", func(t *testing.T) {
		run(t, scenario{
			name: "Cluster: master killed, replica promoted" + pick(" (quick)", ""),
			cfg:  cfg, peek: peek,
			rate: pick(400, 1000), dur: pick(6500*time.Millisecond, time.Minute),
			losesData: true,
			fault: func(ctx context.Context, d *loadtest.Driver) error {
				if !loadtest.Sleep(ctx, pick(time.Second, 20*time.Second)) {
					return nil
				}
				victim := c.Masters[2]
				id, err := victim.Do(ctx, "CLUSTER", "MYID")
				if err != nil {
					return err
				}
				d.Fault("master killed")()
				victim.Kill()
				// The audits need the promotion done; it takes a few seconds.
				return awaitPromotion(c, fmt.Sprint(id))
			},
		})
	})
}

// awaitPromotion waits up to 30 s until every running node flags the killed
// node dead as a failed node, reports cluster_state:ok and every slot served.
func awaitPromotion(c *redistest.Cluster, deadID string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		ok := true
		for _, s := range append(append([]*redistest.Server(nil), c.Masters...), c.Replicas...) {
			if !s.Running() {
				continue
			}
			info, err := s.Do(ctx, "CLUSTER", "INFO")
			str, _ := info.(string)
			nodes, err2 := s.Do(ctx, "CLUSTER", "NODES")
			if err != nil || err2 != nil || !strings.Contains(str, "cluster_state:ok") ||
				!strings.Contains(str, "cluster_slots_ok:16384") || !failedMasterless(fmt.Sprint(nodes), deadID) {
				ok = false
				break
			}
		}
		if ok {
			return nil
		}
		if !loadtest.Sleep(ctx, 100*time.Millisecond) {
			return fmt.Errorf("cluster not ok after a master was killed: %w", ctx.Err())
		}
	}
}

// failedMasterless reports whether CLUSTER NODES output flags id as failed
// and serving no slot (a line's slot ranges follow its 8 fixed fields).
func failedMasterless(nodes, id string) bool {
	for _, line := range strings.Split(nodes, "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && f[0] == id {
			return strings.Contains(f[2], "fail") && !strings.Contains(f[2], "fail?") && len(f) <= 8
		}
	}
	return false
}

// With AOF and appendfsync always, every session write and increment that
// returned success survives SIGKILL: the server is killed and restarted
// during the load and once more after it, and the audits then require every
// live session with its last acknowledged value, every deleted session gone
// and every counter at or above its acknowledged increments.
func TestAOFNothingLost(t *testing.T) {
	srv := redistest.Start(t, redistest.WithArgs("--appendonly", "yes", "--appendfsync", "always"))
	var restarts int
	run(t, scenario{
		name: "AOF (appendfsync always): killed and restarted, nothing acknowledged lost" + pick(" (quick)", ""),
		cfg:  rediskit.Config{Addr: srv.Addr}, peek: direct(srv.Addr),
		rate: pick(400, 1000), dur: pick(4*time.Second, 2*time.Minute),
		fault: func(ctx context.Context, d *loadtest.Driver) error {
			every, kills := pick(2*time.Second, 20*time.Second), pick(1, 5)
			for i := 1; i <= kills && loadtest.Sleep(ctx, every); i++ {
				end := d.Fault("kill " + strconv.Itoa(i))
				srv.Kill()
				loadtest.Sleep(context.Background(), 500*time.Millisecond)
				err := srv.Server.Restart()
				end()
				if err != nil {
					return err
				}
				restarts++
			}
			// Once more after the load, so the audits read only what the
			// AOF brought back.
			srv.Kill()
			if err := srv.Server.Restart(); err != nil {
				return err
			}
			restarts++
			return nil
		},
		check: func(t *testing.T, r *loadtest.Result) {
			r.Notes = append(r.Notes, fmt.Sprintf("restarts: %d (the last one after the load)", restarts))
			if restarts < 2 {
				t.Errorf("%d restarts, want at least 2", restarts)
			}
			if r.LiveSessions == 0 {
				t.Errorf("no live session to check")
			}
		},
	})
}
