package loadtest_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit"
	"github.com/rediskit/rediskit/internal/loadtest"
	"github.com/rediskit/rediskit/internal/redistest"
)

// watch records a Sentinel deployment as a timeline of changes: the master
// the sentinel names, each node's role and link (with its key count when the
// change was seen), the addresses the workload's client dialled, and the
// harness's own steps (kills, restarts). It samples every 100 ms; the
// timeline is what RELIABILITY.md's failure analysis is built from.
type watch struct {
	s     *redistest.Sentinel
	nodes []*redistest.Server // both data nodes, fixed at the start
	start time.Time

	mu     sync.Mutex
	events []string
	last   string // the last sampled state, without key counts
}

const maxWatchEvents = 400

func newWatch(s *redistest.Sentinel) *watch {
	return &watch{s: s, nodes: []*redistest.Server{s.Master, s.Replica}, start: time.Now()}
}

// note adds an event to the timeline.
func (w *watch) note(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.noteLocked(fmt.Sprintf(format, args...))
}

func (w *watch) noteLocked(ev string) { w.noteAt(time.Now(), ev) }

// noteAt adds an event seen at a given time: the scenario's clock and the
// wall clock, to line it up with the servers' logs.
func (w *watch) noteAt(at time.Time, ev string) {
	if len(w.events) < maxWatchEvents {
		w.events = append(w.events, fmt.Sprintf("%6.3f s (%s)  %s", at.Sub(w.start).Seconds(), at.Format("15:04:05.000"), ev))
	}
}

// run samples until ctx ends.
func (w *watch) run(ctx context.Context) {
	for {
		w.sample(ctx)
		if !loadtest.Sleep(ctx, 100*time.Millisecond) {
			return
		}
	}
}

func (w *watch) sample(ctx context.Context) {
	at := time.Now() // the queries below take a few milliseconds
	v := w.s.View(ctx)
	key := []string{"sentinel → " + v.Master}
	full := []string{v.String()}
	for _, n := range w.nodes {
		st := redistest.State(ctx, n)
		role := "down"
		if st.Err == nil {
			role = st.Role
			if st.Role == "slave" {
				role = "replica of " + st.MasterAddr + " link " + st.Link
			}
		}
		key = append(key, n.Addr+" "+role)
		full = append(full, st.String())
	}
	k := strings.Join(key, " | ")
	w.mu.Lock()
	defer w.mu.Unlock()
	if k != w.last {
		w.last = k
		w.noteAt(at, strings.Join(full, " | "))
	}
}

// String returns the timeline, one event a line.
func (w *watch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.events, "\n")
}

// The watch is a go-redis hook on the workload's client: its dial hook
// records where every new connection goes, and the dials the client
// refused because the node was not the master (rediskit.ErrNotMaster).
func (w *watch) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		cn, err := next(ctx, network, addr)
		switch {
		case errors.Is(err, rediskit.ErrNotMaster):
			w.note("client dial refused: %v", err)
		case err == nil:
			w.note("client dials %s", cn.RemoteAddr())
		}
		return cn, err
	}
}

func (w *watch) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (w *watch) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
