package linearize

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/cache"
	"github.com/rediskit/rediskit/retry"
	"github.com/rediskit/rediskit/session"
)

// outcome is how a call ended, for the history.
type outcome int

const (
	definite   outcome = iota // a reply: the output says what happened
	unknown                   // may or may not have happened
	notApplied                // proven not applied (or a failed read): not recorded
)

// errorTally counts the errors the clients saw, by kind, for the report.
type errorTally struct {
	ambiguous, unavailable, other atomic.Int64
	mu                            sync.Mutex
	samples                       []string
}

func (e *errorTally) String() string {
	return fmt.Sprintf("ambiguous %d, unavailable %d, other %d", e.ambiguous.Load(), e.unavailable.Load(), e.other.Load())
}

// classify sorts an error of a write (read=false) or a read. A write's error
// is unknown unless it proves the write was not applied.
func (e *errorTally) classify(err error, read bool) outcome {
	switch {
	case errors.Is(err, retry.ErrAmbiguous):
		e.ambiguous.Add(1)
	case retry.IsUnavailable(err):
		e.unavailable.Add(1)
		return notApplied
	default:
		e.other.Add(1)
		e.mu.Lock()
		if len(e.samples) < 5 {
			e.samples = append(e.samples, err.Error())
		}
		e.mu.Unlock()
	}
	if read {
		return notApplied
	}
	return unknown
}

// world is the state the clients of one run share: the recorders, the IDs
// they know per user, the small numbers the history uses for session IDs.
type world struct {
	sessions, counters, gos *Recorder
	errs                    errorTally

	users, keys int
	pause       time.Duration // see pace
	failovers   bool          // the run fails over: record the possible re-runs of Rotate and Delete
	prefix      string        // user IDs are prefix+"u<n>"

	mu    sync.Mutex
	ids   map[string]int // session ID -> its number in the history
	known [][]string     // per user, the IDs seen, newest last
	seq   atomic.Int64   // unique values
}

func newWorld(prefix string, users, keys int) *world {
	return &world{
		sessions: NewRecorder(), counters: NewRecorder(), gos: NewRecorder(),
		users: users, keys: keys, prefix: prefix,
		ids: map[string]int{}, known: make([][]string, users),
	}
}

// pace waits up to w.pause between two calls of a client, so that a
// history stays small enough to check in seconds however fast the server.
func (w *world) pace(rng *rand.Rand) {
	if w.pause > 0 {
		time.Sleep(time.Duration(rng.Int64N(int64(w.pause))))
	}
}

func (w *world) value() int { return int(w.seq.Add(1)) }

// failoverClient is the client number of failover operations in a history
// (porcupine's view draws a row per client).
const failoverClient = 99

// failover records a failover's window, from start to end, in every
// history (see WithFailover).
func (w *world) failover(start, end time.Time) {
	for _, r := range []*Recorder{w.sessions, w.counters, w.gos} {
		r.Add(failoverClient, FailoverInput{}, FailoverOutput{}, r.At(start), r.At(start))
		r.Add(failoverClient, FailoverInput{End: true}, FailoverOutput{}, r.At(start), r.At(end))
	}
}

// outage returns fault, which makes the server unreachable while it runs,
// recording that window until outageGrace after it in the GetOrSet
// history: a miss in it may hand its load to its callers without storing
// it (GetOrSetInput.Outage). The sessions and counters have no such
// allowance.
func (w *world) outage(fault func()) func() {
	return func() {
		start := time.Now()
		fault()
		w.gos.Outage(start, time.Now().Add(outageGrace))
	}
}

// outageGrace is how long after a fault a commit may still fail on every
// attempt: go-redis's three retries on the connections the fault broke,
// with backoff, at most about 1 s with the workload clients' settings.
const outageGrace = time.Second

// markOutages flags the GetOrSet calls that overlapped an outage.
func (w *world) markOutages() {
	w.gos.MarkOutages(func(in any) any {
		g := in.(GetOrSetInput)
		g.Outage = g.Op == GGetOrSet
		return g
	})
}

// learn gives a session ID its number and makes it known under user u.
func (w *world) learn(u int, id string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, ok := w.ids[id]
	if !ok {
		n = len(w.ids) + 1
		w.ids[id] = n
		w.known[u] = append(w.known[u], id)
	}
	return n
}

// dumpIDs writes each session's number in the history and its ID (a test
// token: with it, the session's key in a kept append-only file is found).
func (w *world) dumpIDs(path string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b strings.Builder
	for id, n := range w.ids {
		fmt.Fprintf(&b, "s%d %s\n", n, id)
	}
	_ = os.WriteFile(path, []byte(b.String()), 0o644)
}

// pick returns a known ID of user u (mostly the newest), or "".
func (w *world) pick(rng *rand.Rand, u int) (string, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := w.known[u]
	if len(k) == 0 {
		return "", 0
	}
	i := len(k) - 1
	if rng.IntN(10) < 3 {
		i = max(0, len(k)-1-rng.IntN(4))
	}
	return k[i], w.ids[k[i]]
}

// sessionClient runs session operations until ctx ends.
func (w *world) sessionClient(ctx context.Context, client int, st *session.Store, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, uint64(client)))
	versions := map[string]int64{} // the last version this client saw per ID
	for ctx.Err() == nil {
		w.sessionOnce(ctx, client, st, rng, versions)
		w.pace(rng)
	}
}

// sessionOnce runs one random session operation.
func (w *world) sessionOnce(ctx context.Context, client int, st *session.Store, rng *rand.Rand, versions map[string]int64) {
	rec := w.sessions
	octx, cancel := opCtx(ctx)
	defer cancel()
	{
		u := rng.IntN(w.users)
		user := w.prefix + "u" + strconv.Itoa(u)
		id, n := w.pick(rng, u)
		r := rng.IntN(100)
		if id == "" || r < 10 {
			v := w.value()
			call := rec.Now()
			s, err := st.Create(octx, user, map[string]any{"a": v}, session.CreateOptions{})
			ret := rec.Now()
			if s == nil { // no ID: nobody can observe it but DeleteByUser
				if err != nil {
					w.errs.classify(err, false)
				}
				return
			}
			in := SessionInput{Op: SCreate, User: u, ID: w.learn(u, s.ID()), Value: v}
			w.record(rec, client, in, SessionOutput{}, call, ret, err, false)
			return
		}
		in := SessionInput{User: u, ID: n}
		var out SessionOutput
		var err error
		call := rec.Now()
		read := false
		switch {
		case r < 45:
			in.Op, read = SGet, true
			var s *session.Session
			if s, err = st.Get(octx, id); err == nil {
				out.Version = s.Version()
				versions[id] = s.Version()
				out.A, out.B = intValue(s, "a"), intValue(s, "b")
			}
		case r < 75:
			in.Op, in.Value, in.Key = SUpdate, w.value(), "a"
			if r >= 60 { // compare-and-set on what this client last saw
				in.Key, in.IfVersion = "b", max(versions[id], 1)
			}
			out.Version, err = st.Update(octx, id, session.Changes{Set: map[string]any{in.Key: in.Value}, IfVersion: in.IfVersion})
		case r < 82:
			in.Op = SExtend
			_, _, err = st.Extend(octx, id, time.Hour)
		case r < 92:
			in.Op = SRotate
			var nid string
			nid, err = st.Rotate(octx, id)
			if nid != "" {
				in.NewID = w.learn(u, nid)
			} else if err != nil && !errors.Is(err, session.ErrNotFound) {
				w.errs.classify(err, false) // not sent: no new ID to know
				return
			}
		case r < 97:
			in.Op = SDelete
			out.Deleted, err = st.Delete(octx, id)
		default:
			in = SessionInput{Op: SDeleteByUser, User: u}
			_, err = st.DeleteByUser(octx, user)
		}
		ret := rec.Now()
		if !w.record(rec, client, in, out, call, ret, err, read) {
			return
		}
		again := in
		switch {
		case in.Op == SDeleteByUser:
			again.Op = SDeleteByUserAgain
		case w.failovers && in.Op == SRotate && in.NewID != 0:
			again.Op = SRotateAgain
		case w.failovers && in.Op == SDelete:
			again.Op = SDeleteAgain
		default:
			return
		}
		if err == nil || errors.Is(err, session.ErrNotFound) {
			rec.Add(client, again, SessionOutput{Unknown: true}, call, ret)
		} else {
			rec.AddUnknown(client, again, SessionOutput{Unknown: true}, call)
		}
	}
}

// record adds one session call to the history and reports whether it did.
func (w *world) record(rec *Recorder, client int, in SessionInput, out SessionOutput, call, ret int64, err error, read bool) bool {
	switch {
	case err == nil:
	case errors.Is(err, session.ErrNotFound):
		out.NotFound = true
	case errors.Is(err, session.ErrConflict):
		out.Conflict = true
	default:
		if w.errs.classify(err, read) == notApplied {
			return false
		}
		rec.AddUnknown(client, in, SessionOutput{Unknown: true}, call)
		return true
	}
	rec.Add(client, in, out, call, ret)
	return true
}

func intValue(s *session.Session, key string) int {
	var v int
	if err := s.Decode(key, &v); err != nil {
		return 0
	}
	return v
}

// cacheClient runs counter and GetOrSet operations until ctx ends.
func (w *world) cacheClient(ctx context.Context, client int, c *cache.Cache, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, uint64(client)+1000))
	for ctx.Err() == nil {
		w.cacheOnce(ctx, client, c, rng)
		w.pace(rng)
	}
}

// cacheOnce runs one random cache operation.
func (w *world) cacheOnce(ctx context.Context, client int, c *cache.Cache, rng *rand.Rand) {
	octx, cancel := opCtx(ctx)
	defer cancel()
	{
		k := rng.IntN(w.keys)
		r := rng.IntN(100)
		switch {
		case r < 60:
			rec := w.counters
			in := CounterInput{Op: CIncr, Key: k, Delta: int64(1 + rng.IntN(5))}
			var out CounterOutput
			var err error
			call := rec.Now()
			switch {
			case r < 30:
				out.Value, err = c.Incr(octx, "c"+strconv.Itoa(k), in.Delta, time.Hour)
			case r < 40:
				out.Value, err = c.Decr(octx, "c"+strconv.Itoa(k), in.Delta, time.Hour)
				in.Delta = -in.Delta
			default:
				in.Op = CRead
				out.Value, out.Exists, err = c.Counter(octx, "c"+strconv.Itoa(k))
			}
			ret := rec.Now()
			if err != nil {
				if w.errs.classify(err, in.Op == CRead) == unknown {
					rec.AddUnknown(client, in, CounterOutput{Unknown: true}, call)
				}
				return
			}
			rec.Add(client, in, out, call, ret)
		default:
			rec := w.gos
			key := "g" + strconv.Itoa(k)
			in := GetOrSetInput{Op: GGetOrSet, Key: k, Loaded: w.value()}
			var out GetOrSetOutput
			var err error
			call := rec.Now()
			if r < 92 {
				var b []byte
				b, err = c.GetOrSet(octx, key, time.Hour, func(context.Context) ([]byte, error) {
					return []byte(strconv.Itoa(in.Loaded)), nil
				})
				if err == nil {
					out.Value, err = strconv.Atoi(string(b))
				}
			} else {
				in = GetOrSetInput{Op: GDelete, Key: k}
				err = c.Delete(octx, key)
			}
			ret := rec.Now()
			if err != nil {
				if w.errs.classify(err, false) == unknown {
					rec.AddUnknown(client, in, GetOrSetOutput{Unknown: true}, call)
					if in.Op == GDelete {
						rec.AddUnknown(client, GetOrSetInput{Op: GDeleteAgain, Key: k}, GetOrSetOutput{Unknown: true}, call)
					}
				}
				return
			}
			rec.Add(client, in, out, call, ret)
			if in.Op == GDelete {
				rec.Add(client, GetOrSetInput{Op: GDeleteAgain, Key: k}, GetOrSetOutput{Unknown: true}, call, ret)
			}
		}
	}
}

// opCtx bounds one call, so a call stuck behind a fault ends as an unknown
// outcome rather than holding the run.
func opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
}

// resendHook is the deliberately broken client: it sends every script a
// second time after it succeeded, as a client whose retries re-send a write
// after a lost reply would (the reply the caller gets is the second run's).
// It proves the checker can fail.
type resendHook struct{}

func (resendHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (resendHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if name := cmd.Name(); err == nil && (name == "evalsha" || name == "eval") {
			return next(ctx, cmd)
		}
		return err
	}
}

func (resendHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
