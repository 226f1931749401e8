package loadtest_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
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
			for i := 1; i <= kills && sleep(ctx, every-down); i++ {
				end := d.Fault("kill " + strconv.Itoa(i))
				srv.Kill()
				sleep(context.Background(), down) // the server stays down even if the run ends
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
			for i := 1; i <= pauses && sleep(ctx, pick(time.Second, 15*time.Second)); i++ {
				end := d.Fault("pause " + strconv.Itoa(i))
				srv.Pause()
				paused.Store(true)
				tl.add("SIGSTOP")
				sleep(context.Background(), 3*time.Second)
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
				if !sleep(ctx, gap) {
					return nil
				}
				end := d.Fault("latency 100 ms then 700 ms" + n)
				proxy.SetDelay(100 * time.Millisecond)
				sleep(ctx, 1500*time.Millisecond)
				proxy.SetDelay(700 * time.Millisecond) // above the 500 ms read timeout
				sleep(ctx, time.Second)
				proxy.SetDelay(0)
				end()
				if !sleep(ctx, gap) {
					return nil
				}
				end = d.Fault("3 connection resets" + n)
				for j := 0; j < 3; j++ {
					proxy.CutAll()
					sleep(ctx, 300*time.Millisecond)
				}
				end()
				if !sleep(ctx, gap) {
					return nil
				}
				end = d.Fault("black hole 1.5 s" + n)
				proxy.SetBlackHole(true)
				sleep(ctx, 1500*time.Millisecond)
				proxy.SetBlackHole(false)
				end()
				sleep(ctx, gap)
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
// client must follow it. Replication is asynchronous, so writes acknowledged
// just before the kill may be gone: the audits report them.
func TestSentinelFailover(t *testing.T) {
	parallelIfQuick(t)
	s := redistest.StartSentinel(t)
	kills := pick(1, 3)
	run(t, scenario{
		name: "Sentinel: master killed, replica promoted" + pick(" (quick)", ""),
		cfg:  rediskit.Config{MasterName: s.MasterName, SentinelAddrs: s.SentinelAddrs()},
		peek: func() redis.UniversalClient {
			return redis.NewFailoverClient(&redis.FailoverOptions{MasterName: s.MasterName, SentinelAddrs: s.SentinelAddrs()})
		},
		rate: pick(400, 1000), dur: pick(7*time.Second, 2*time.Minute),
		losesData: true,
		fault: func(ctx context.Context, d *loadtest.Driver) error {
			for i := 1; i <= kills && sleep(ctx, pick(time.Second, 20*time.Second)); i++ {
				old := s.Master
				d.Fault("master killed " + strconv.Itoa(i))() // instant: recovery runs from the kill
				old.Kill()
				if err := awaitNewMaster(ctx, s, old.Addr); err != nil {
					return err
				}
				s.Master, s.Replica = s.Replica, old
				// The old master comes back; the sentinel makes it a replica.
				if err := old.Server.Restart(); err != nil {
					return err
				}
				if long() {
					if err := awaitReplica(s); err != nil {
						return err
					}
				}
			}
			return nil
		},
	})
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
		if !sleep(ctx, 50*time.Millisecond) {
			return fmt.Errorf("no new master after killing %s: %w", old, ctx.Err())
		}
	}
}

// awaitLink waits up to 30 s until the replica srv is in sync with its master.
func awaitLink(srv *redistest.Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		info, err := srv.Do(ctx, "INFO", "replication")
		if str, ok := info.(string); err == nil && ok && strings.Contains(str, "master_link_status:up") {
			return nil
		}
		if !sleep(ctx, 100*time.Millisecond) {
			return fmt.Errorf("replica %s never synced: %w", srv.Addr, ctx.Err())
		}
	}
}

// awaitReplica waits until the restarted old master replicates from the
// new one.
func awaitReplica(s *redistest.Sentinel) error { return awaitLink(s.Replica) }

// Cluster (3 masters, 3 replicas, node timeout 1 s): slots resharded with
// redis-cli while the load runs — redirections are absorbed and no read
// returns an error — then a master is killed and its replica promoted.
func TestCluster(t *testing.T) {
	parallelIfQuick(t)
	c := redistest.StartCluster(t, redistest.WithReplicas(1))
	// A replica that never finished its first sync refuses to fail over:
	// wait for every link, without the default 5 s diskless-sync delay.
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
				for i := 1; i <= rounds && sleep(ctx, pick(time.Second, 10*time.Second)); i++ {
					end := d.Fault("reshard 1000 slots " + strconv.Itoa(i))
					err := reshard(context.Background(), from, to, 1000) // never interrupted half-way
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
				if !sleep(ctx, pick(time.Second, 20*time.Second)) {
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
		if !sleep(ctx, 100*time.Millisecond) {
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

// reshard moves n slots from one master to another with redis-cli, as an
// operator would.
func reshard(ctx context.Context, from, to *redistest.Server, n int) error {
	id := func(s *redistest.Server) (string, error) {
		v, err := s.Do(ctx, "CLUSTER", "MYID")
		str, _ := v.(string)
		if err == nil && str == "" {
			err = errors.New("empty CLUSTER MYID")
		}
		return str, err
	}
	fromID, err := id(from)
	if err != nil {
		return err
	}
	toID, err := id(to)
	if err != nil {
		return err
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, cli, "--cluster", "reshard", from.Addr,
		"--cluster-from", fromID, "--cluster-to", toID,
		"--cluster-slots", strconv.Itoa(n), "--cluster-yes").CombinedOutput()
	if err != nil {
		return fmt.Errorf("redis-cli --cluster reshard: %w\n%s", err, out)
	}
	return nil
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
			for i := 1; i <= kills && sleep(ctx, every); i++ {
				end := d.Fault("kill " + strconv.Itoa(i))
				srv.Kill()
				sleep(context.Background(), 500*time.Millisecond)
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
