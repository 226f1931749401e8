package rediskit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/retry"
)

// The timing of a blocking command whose server-side timeout rediskit
// shortens to fit the caller's deadline D (see deadlineHook).
const (
	// blockMargin is how long before D the server is told to give up: the
	// time its "nothing" reply has to travel back.
	blockMargin = 30 * time.Millisecond
	// blockGrace is how long past D the socket still waits for that reply,
	// so that an element popped at the last moment reaches the caller
	// instead of a closed connection. A reply that is later than D+grace
	// makes the outcome ambiguous.
	blockGrace = 20 * time.Millisecond
	// sendBound is how long the command may wait for a pooled connection
	// before rediskit recomputes the server-side timeout: a timeout computed
	// before a long wait for a connection would end after D+grace.
	sendBound = 15 * time.Millisecond
	// minServerTimeout is the smallest timeout sent: Redis reads a timeout
	// that rounds to 0 ms as "block forever".
	minServerTimeout = time.Millisecond
	// wakeTimeout bounds a wake-up PING (see deadlineHook).
	wakeTimeout = time.Second
	// wakeBucket is the slot wake-up PINGs are coalesced into.
	wakeBucket = 2 * time.Millisecond
)

// deadlineError is returned for a command that did not complete by its
// context's deadline, or whose context was cancelled. It matches the
// context's error (context.DeadlineExceeded or context.Canceled) and only
// that: an i/o timeout caused by the caller's deadline is not a server
// fault.
type deadlineError struct {
	cmd   string
	ctx   error // context.DeadlineExceeded or context.Canceled
	cause error // what go-redis reported, nil when rediskit gave up itself
}

func (e *deadlineError) Error() string {
	if e.cause == nil || e.cause == e.ctx {
		return "rediskit: " + e.cmd + ": " + e.ctx.Error()
	}
	return "rediskit: " + e.cmd + ": " + e.ctx.Error() + " (" + e.cause.Error() + ")"
}

func (e *deadlineError) Unwrap() error { return e.ctx }

// deadlineHook is the innermost hook of a Client (on each node of a
// Cluster). It sees the raw outcome of every attempt and:
//
//   - turns the i/o timeout go-redis reports when a context deadline reaches
//     the socket into a *deadlineError (matching the context's error), or,
//     for a write that may have run, an *retry.AmbiguousError whose cause
//     is that error: outer hooks (breaker, retry, statistics) then see the
//     caller's deadline, not a server fault;
//   - rewrites the server-side timeout of a blocking command (BLPOP, BRPOP,
//     BRPOPLPUSH, BLMOVE, BLMPOP, BZPOPMIN, BZPOPMAX, BZMPOP, XREAD and
//     XREADGROUP with BLOCK, WAIT) to end blockMargin before the deadline,
//     so the server gives up first and an element is either returned or
//     never popped, and turns the empty answer caused by that shorter
//     timeout into context.DeadlineExceeded.
//
// Redis checks the timeouts of blocked clients when its event loop wakes up,
// which an idle server does only Config "hz" times a second (every 100 ms by
// default): a timeout ending at an idle moment would be noticed up to 100 ms
// late. So when a shortened timeout ends, the hook sends a PING to the same
// server through the pool (see waker), which wakes its event loop and makes
// it answer the blocked command at once.
type deadlineHook struct {
	n    *deadlineCounts
	wake *waker // nil when the hook has no client of its own
}

// deadlineCounts are shared by the hooks of every node of a Cluster.
type deadlineCounts struct {
	ambiguous atomic.Uint64 // writes left ambiguous by a deadline
	shortened atomic.Uint64 // blocking commands sent with a shortened timeout
	wakes     atomic.Uint64 // wake-up PINGs sent
}

// installDeadlines adds the hook innermost on rdb (on every node of a
// Cluster), or nothing when context deadlines are not honoured.
func installDeadlines(rdb redis.UniversalClient, cfg Config) *deadlineCounts {
	if cfg.DisableContextTimeout {
		return nil
	}
	n := &deadlineCounts{}
	switch r := rdb.(type) {
	case *redis.ClusterClient:
		r.OnNewNode(func(node *redis.Client) { node.AddHook(&deadlineHook{n: n, wake: newWaker(node, n)}) })
		r.AddHook(clusterPipelines{})
	case *redis.Client:
		r.AddHook(&deadlineHook{n: n, wake: newWaker(r, n)})
	default:
		rdb.AddHook(&deadlineHook{n: n})
	}
	return n
}

func newWaker(rdb *redis.Client, n *deadlineCounts) *waker {
	return &waker{rdb: rdb, n: n, slots: map[int64]bool{}}
}

func (n *deadlineCounts) ambiguousCount() uint64 {
	if n == nil {
		return 0
	}
	return n.ambiguous.Load()
}

// DialHook tells a blocking command's send (see blockSend) that its
// connection is being set up.
func (h *deadlineHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		st, _ := ctx.Value(blockKey{}).(*blockSend)
		if st == nil {
			return next(ctx, network, addr)
		}
		// From here to the write, the timeout is refreshed after the
		// handshake (see blockSend): sendBound need not cut the set-up
		// short, and must not, or a set-up slower than sendBound would
		// never complete.
		st.setDialing()
		cn, err := next(ctx, network, addr)
		st.setupDone(err)
		return cn, err
	}
}

// ownKey marks a context whose deadline rediskit set for its own checks.
type ownKey struct{}

// ownDeadline marks ctx as carrying rediskit's own deadline (a health
// probe's): a probe that runs out of time is a server fault, so the hook
// leaves its error as go-redis reports it.
func ownDeadline(ctx context.Context) context.Context { return context.WithValue(ctx, ownKey{}, true) }

func (h *deadlineHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		dl, ok := ctx.Deadline()
		if !ok || ctx.Value(ownKey{}) != nil {
			return next(ctx, cmd)
		}
		if st, _ := ctx.Value(blockKey{}).(*blockSend); st != nil && st.cmd != cmd {
			// The handshake of a connection for a blocking command.
			defer st.refresh()
			err := next(ctx, cmd)
			st.setupDone(err)
			return h.settle(ctx, cmd.Name(), false, err)
		}
		if b, ok := blockingTimeout(cmd); ok {
			return h.processBlocking(ctx, dl, cmd, b, next)
		}
		return h.settle(ctx, cmd.Name(), isWrite(ctx, cmd), next(ctx, cmd))
	}
}

func (h *deadlineHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if _, ok := ctx.Deadline(); !ok || ctx.Value(ownKey{}) != nil {
			return next(ctx, cmds)
		}
		st, _ := ctx.Value(blockKey{}).(*blockSend)
		if st != nil {
			// The handshake of a connection for a blocking command.
			defer st.refresh()
		}
		err := next(ctx, cmds)
		if st != nil {
			st.setupDone(err)
		}
		if err == nil || ctxErr(ctx) == nil {
			return err
		}
		if st != nil {
			for _, c := range cmds {
				if e := c.Err(); e != nil {
					c.SetErr(h.settle(ctx, c.Name(), false, e))
				}
			}
		} else if isTx(cmds) {
			// MULTI … EXEC ran as a whole or not at all: every failed
			// command carries the transaction's outcome.
			name, write := "multi", false
			for _, c := range cmds {
				if isWrite(ctx, c) {
					name, write = c.Name(), true
					break
				}
			}
			counted := false
			for _, c := range cmds {
				if e := c.Err(); e != nil {
					s := h.settleQuiet(ctx, name, write, e)
					if _, amb := s.(*retry.AmbiguousError); amb && !counted {
						h.n.ambiguous.Add(1)
						counted = true
					}
					c.SetErr(s)
				}
			}
		} else {
			for _, c := range cmds {
				if e := c.Err(); e != nil {
					c.SetErr(h.settle(ctx, c.Name(), isWrite(ctx, c), e))
				}
			}
		}
		if rec, _ := ctx.Value(settledKey{}).(*settled); rec != nil {
			rec.record(cmds)
		}
		for _, c := range cmds {
			if e := c.Err(); e != nil {
				return e
			}
		}
		return h.settleQuiet(ctx, "pipeline", false, err)
	}
}

// settledKey carries a *settled from the cluster-level pipeline hook to the
// node hooks.
type settledKey struct{}

// settled remembers the errors the node hooks gave the commands of one
// cluster pipeline. go-redis's ClusterClient re-sends the failed part of a
// pipeline after a backoff; when the deadline ends that backoff it stamps
// the bare context error on every command, erasing that a write was sent
// and may have run. clusterPipelines puts the node hooks' verdicts back.
type settled struct {
	mu sync.Mutex
	m  map[redis.Cmder]error
}

func (s *settled) record(cmds []redis.Cmder) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range cmds {
		if e := c.Err(); e != nil && isSettled(e) {
			s.m[c] = e
		}
	}
}

func isSettled(err error) bool {
	return errors.As(err, new(*deadlineError)) || errors.As(err, new(*retry.AmbiguousError))
}

// clusterPipelines is the cluster-level half of the deadline hook: see
// settled.
type clusterPipelines struct{}

func (clusterPipelines) DialHook(next redis.DialHook) redis.DialHook { return next }

func (clusterPipelines) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (clusterPipelines) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if _, ok := ctx.Deadline(); !ok {
			return next(ctx, cmds)
		}
		rec := &settled{m: map[redis.Cmder]error{}}
		err := next(context.WithValue(ctx, settledKey{}, rec), cmds)
		if err == nil {
			return nil
		}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		for _, c := range cmds {
			if e, ok := rec.m[c]; ok && c.Err() != nil && !isSettled(c.Err()) {
				c.SetErr(e)
			}
		}
		for _, c := range cmds {
			if e := c.Err(); e != nil {
				return e
			}
		}
		return err
	}
}

// settle maps err, the outcome of one attempt of the command name, when
// the caller's context has ended; write reports a command that must not run
// twice (its outcome is ambiguous if it may have run).
func (h *deadlineHook) settle(ctx context.Context, name string, write bool, err error) error {
	s := h.settleQuiet(ctx, name, write, err)
	if _, amb := s.(*retry.AmbiguousError); amb {
		h.n.ambiguous.Add(1)
	}
	return s
}

func (h *deadlineHook) settleQuiet(ctx context.Context, name string, write bool, err error) error {
	if err == nil {
		return nil
	}
	cerr := ctxErr(ctx)
	if cerr == nil || isReply(err) {
		return err
	}
	var de *deadlineError
	if errors.As(err, &de) || errors.As(err, new(*retry.AmbiguousError)) {
		return err // settled by an inner call (a cluster node)
	}
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// Waiting for a connection or dialling: never sent.
		return &deadlineError{cmd: name, ctx: cerr, cause: err}
	case isTimeout(err):
		// The deadline reached the socket while the command was being
		// written or its reply awaited: it may have run.
		de := &deadlineError{cmd: name, ctx: cerr, cause: err}
		if write {
			return &retry.AmbiguousError{Cmd: name, Cause: de}
		}
		return de
	}
	return err
}

// ctxErr is ctx.Err(), or context.DeadlineExceeded once ctx's deadline has
// passed even if its timer has not fired yet: go-redis puts the same
// deadline on the socket, whose timeout can be reported a moment before the
// context's own timer marks it done.
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

// blocking is where a blocking command carries its server-side timeout.
type blocking struct {
	pos  int           // index in Args
	unit time.Duration // time.Second or time.Millisecond
	orig time.Duration // the caller's timeout; 0 blocks forever
}

// blockingTimeout finds the server-side timeout of a blocking command, or
// reports false for any other command (or one whose timeout it cannot read:
// such a command is left as the caller wrote it).
func blockingTimeout(cmd redis.Cmder) (blocking, bool) {
	args := cmd.Args()
	b := blocking{pos: -1, unit: time.Second}
	switch cmd.Name() {
	case "blpop", "brpop", "bzpopmin", "bzpopmax", "brpoplpush", "blmove":
		if len(args) >= 3 {
			b.pos = len(args) - 1
		}
	case "blmpop", "bzmpop":
		if len(args) >= 4 {
			b.pos = 1
		}
	case "wait":
		if len(args) == 3 {
			b.pos, b.unit = 2, time.Millisecond
		}
	case "xread", "xreadgroup":
		from := 1
		if cmd.Name() == "xreadgroup" {
			from = 4 // XREADGROUP GROUP group consumer …: names may be anything
		}
		for i := from; i+1 < len(args); i++ {
			s, ok := args[i].(string)
			if !ok {
				continue
			}
			if strings.EqualFold(s, "streams") {
				break
			}
			if strings.EqualFold(s, "block") {
				b.pos, b.unit = i+1, time.Millisecond
				break
			}
		}
	}
	if b.pos < 0 {
		return b, false
	}
	v, ok := argFloat(args[b.pos])
	if !ok || v < 0 {
		return b, false
	}
	b.orig = time.Duration(v * float64(b.unit))
	return b, true
}

func (b blocking) format(d time.Duration) any {
	if b.unit == time.Millisecond {
		return int64(d / time.Millisecond)
	}
	return strconv.FormatFloat(float64(d/time.Millisecond)/1000, 'f', 3, 64)
}

// processBlocking sends a blocking command with a server-side timeout that
// ends blockMargin before dl when the caller's own timeout ends later (or
// never), and lets the socket wait until dl+blockGrace for the reply.
func (h *deadlineHook) processBlocking(ctx context.Context, dl time.Time, cmd redis.Cmder, b blocking, next redis.ProcessHook) error {
	args := cmd.Args()
	orig := args[b.pos]
	defer func() { args[b.pos] = orig }()
	for {
		budget := time.Until(dl) - blockMargin
		if b.orig != 0 && b.orig <= budget {
			// The server gives up first on its own.
			return h.settle(ctx, cmd.Name(), isWrite(ctx, cmd), next(ctx, cmd))
		}
		if err := ctx.Err(); err != nil {
			return &deadlineError{cmd: cmd.Name(), ctx: err}
		}
		st := &blockSend{cmd: cmd, b: b, dl: dl, wake: h.wake}
		st.refresh()
		h.n.shortened.Add(1)
		sctx, done := sendContext(ctx, st)
		err := next(sctx, cmd)
		late := done()
		if late && neverSent(err) && ctx.Err() == nil {
			// No connection within sendBound: the timeout computed above
			// may now end too late. Compute it again.
			cmd.SetErr(nil)
			continue
		}
		switch {
		case err != nil && st.wasUnsent():
			// The connection could not be set up: never written.
			if cerr := ctxErr(ctx); cerr != nil {
				err = &deadlineError{cmd: cmd.Name(), ctx: cerr, cause: err}
			}
			return err
		case st.poisoned && isReply(err):
			// The deadline passed while the connection was being set
			// up: the server refused the negative timeout, nothing ran.
			err = &deadlineError{cmd: cmd.Name(), ctx: context.DeadlineExceeded}
		case err == nil && cmd.Name() == "wait":
			if ic, ok := cmd.(*redis.IntCmd); ok && ic.Val() < waitTarget(args) {
				err = &deadlineError{cmd: "wait", ctx: context.DeadlineExceeded}
			}
		case errors.Is(err, redis.Nil):
			// The empty answer to the shortened timeout: the caller
			// asked to wait longer than its deadline allowed.
			err = &deadlineError{cmd: cmd.Name(), ctx: context.DeadlineExceeded}
		}
		return h.settle(ctx, cmd.Name(), isWrite(ctx, cmd), err)
	}
}

// blockKey carries the *blockSend of a blocking command to the hooks of the
// connection set-up that may run before it is written.
type blockKey struct{}

// blockSend is one attempt at sending a blocking command with a shortened
// timeout. go-redis may dial and run the connection handshake (HELLO, AUTH,
// …, through the hooks, with the command's context) after the hook computed
// the timeout and before it writes the command: the handshake's hook calls
// refresh, so the timeout is computed again right before the write.
type blockSend struct {
	cmd  redis.Cmder
	b    blocking
	dl   time.Time
	wake *waker

	mu       sync.Mutex
	dialing  bool // a connection is being set up: sendBound must not abort it
	poisoned bool // the deadline passed before the write: timeout sent as -1
	unsent   bool // the dial or the handshake failed: the command was not written
}

// setupDone records the outcome of a dial or handshake step. An error
// reply (CLIENT SETINFO on an older server) is ignored by go-redis and does
// not stop the command.
func (s *blockSend) setupDone(err error) {
	if err == nil || isReply(err) {
		return
	}
	s.mu.Lock()
	s.unsent = true
	s.mu.Unlock()
}

func (s *blockSend) wasUnsent() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unsent
}

// refresh sets the command's timeout from the time left now. Once the
// caller's deadline has passed it sends -1, which Redis refuses before
// doing anything ("timeout is negative"), so a command written too late
// pops nothing.
func (s *blockSend) refresh() {
	s.mu.Lock()
	defer s.mu.Unlock()
	left := time.Until(s.dl)
	if left <= 0 {
		s.cmd.Args()[s.b.pos] = "-1"
		s.poisoned = true
		return
	}
	timeout := max(left-blockMargin, minServerTimeout)
	s.cmd.Args()[s.b.pos] = s.b.format(timeout)
	// Wake the server when the timeout ends, and once more in case the
	// command then still waits for a pooled connection (at most sendBound).
	end := time.Now().Add(timeout + minServerTimeout)
	s.wake.at(end)
	s.wake.at(end.Add(sendBound))
}

func (s *blockSend) setDialing() {
	s.mu.Lock()
	s.dialing = true
	s.mu.Unlock()
}

func (s *blockSend) isDialing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dialing
}

// sendContext returns the context a shortened blocking command is sent
// with: its values are ctx's, its deadline (which go-redis puts on the
// socket) is st.dl+blockGrace, and, unless a connection is being set up
// for it, it is cancelled when ctx ends or after sendBound. go-redis watches cancellation
// only while it waits for a connection or dials, never during socket I/O,
// so a command already written still reads its reply until the deadline.
// done releases the context and reports whether sendBound fired.
func sendContext(ctx context.Context, st *blockSend) (context.Context, func() (late bool)) {
	dctx, cancelDeadline := context.WithDeadline(context.WithoutCancel(ctx), st.dl.Add(blockGrace))
	sctx, cancel := context.WithCancelCause(context.WithValue(dctx, blockKey{}, st))
	t := time.AfterFunc(sendBound, func() {
		// A connection being set up was not waited for in the pool; its
		// handshake refreshes the timeout (blockSend).
		if !st.isDialing() {
			cancel(errSendLate)
		}
	})
	stop := context.AfterFunc(ctx, func() {
		// A connection being set up is let finish (its reads are bounded
		// by the socket deadline): cut short, it would be dialled again by
		// the next call, and under short deadlines the pool would never
		// get a connection. The command itself is then sent with timeout
		// -1 and refused (see blockSend.refresh).
		if !st.isDialing() {
			cancel(context.Cause(ctx))
		}
	})
	return sctx, func() bool {
		t.Stop()
		stop()
		late := errors.Is(context.Cause(sctx), errSendLate)
		cancel(nil)
		cancelDeadline()
		return late
	}
}

// waker sends the wake-up PINGs of one server (see deadlineHook). Requests
// are coalesced into wakeBucket slots, one PING per slot, and at most one
// PING is in flight at a time (a slot that ends meanwhile gets one more PING
// when it is back), so a busy server is not flooded. A PING is bounded by wakeTimeout, and Close waits for it
// like for any call.
type waker struct {
	rdb *redis.Client
	n   *deadlineCounts

	mu       sync.Mutex
	slots    map[int64]bool // slots with a PING scheduled at their end
	inflight bool
	again    bool // a slot ended while a PING was in flight
}

// at asks for a PING to reach the server at or shortly after t.
func (w *waker) at(t time.Time) {
	if w == nil {
		return
	}
	slot := t.UnixNano()/int64(wakeBucket) + 1
	w.mu.Lock()
	if w.slots[slot] {
		w.mu.Unlock()
		return
	}
	w.slots[slot] = true
	w.mu.Unlock()
	time.AfterFunc(time.Until(time.Unix(0, slot*int64(wakeBucket))), func() { w.fire(slot) })
}

func (w *waker) fire(slot int64) {
	w.mu.Lock()
	delete(w.slots, slot)
	if w.inflight {
		// The PING in flight may have left before this slot's timeout
		// ended: send one more when it is back.
		w.again = true
		w.mu.Unlock()
		return
	}
	w.inflight = true
	w.mu.Unlock()
	for {
		w.n.wakes.Add(1)
		ctx, cancel := context.WithTimeout(retry.WithNoRetry(context.Background()), wakeTimeout)
		_ = w.rdb.Ping(ctx).Err()
		cancel()
		w.mu.Lock()
		if !w.again {
			w.inflight = false
			w.mu.Unlock()
			return
		}
		w.again = false
		w.mu.Unlock()
	}
}

// errSendLate cancels the send context of a blocking command that has not
// got a connection within sendBound.
var errSendLate = errors.New("rediskit: no connection within the send bound")

// neverSent reports whether err proves the command was not written: a
// context ended while it waited for a connection or dialled (go-redis
// watches cancellation nowhere else).
func neverSent(err error) bool {
	return err != nil && !isTimeoutOnly(err) &&
		(errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded))
}

// isTimeoutOnly is a socket timeout that is not a context's error.
func isTimeoutOnly(err error) bool {
	return isTimeout(err) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isReply reports whether err is a reply from the server (an error reply or
// redis.Nil): the command ran and answered.
func isReply(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}

// isWrite reports whether cmd must not run twice: its outcome is ambiguous
// when it may have run.
func isWrite(ctx context.Context, cmd redis.Cmder) bool {
	return !retry.IsIdempotent(cmd) && !retry.MarkedIdempotent(ctx)
}

func isTx(cmds []redis.Cmder) bool {
	return len(cmds) > 0 && cmds[0].Name() == "multi"
}

// waitTarget is the number of replicas a WAIT command asks for.
func waitTarget(args []any) int64 {
	v, ok := argFloat(args[1])
	if !ok {
		return 0
	}
	return int64(v)
}

func argFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	case uint64:
		return float64(x), true
	case float64:
		return x, true
	case string:
		f, err := strconv.ParseFloat(x, 64)
		return f, err == nil
	case []byte:
		f, err := strconv.ParseFloat(string(x), 64)
		return f, err == nil
	}
	f, err := strconv.ParseFloat(fmt.Sprint(v), 64)
	return f, err == nil
}

// lastChance is how long a read that hit its deadline waits, once, for bytes
// that may already be in the socket buffer.
const lastChance = 5 * time.Millisecond

// keepLateReplies wraps a connection so that a read which hits its deadline
// takes the bytes that arrived in time but were not read in time. Go's
// poller fails a read whose deadline has passed without looking at the
// socket, so a goroutine that was not running at the deadline (a GC pause,
// a busy machine) would turn a reply already received into an i/o timeout:
// for a blocking pop, an element popped on the server and dropped with the
// connection. The extra read costs lastChance, only on a timeout.
func keepLateReplies(c net.Conn) net.Conn {
	if sc, ok := c.(syscall.Conn); ok {
		// go-redis checks idle connections through syscall.Conn.
		return lateSysConn{lateConn{c}, sc}
	}
	return lateConn{c}
}

type lateConn struct{ net.Conn }

// NetConn returns the wrapped connection, as crypto/tls.Conn does: go-redis
// looks through NetConn for the socket when it peeks for pending data.
func (c lateConn) NetConn() net.Conn { return c.Conn }

func (c lateConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 || err == nil || !isTimeoutOnly(err) {
		return n, err
	}
	if c.Conn.SetReadDeadline(time.Now().Add(lastChance)) != nil {
		return n, err
	}
	if m, err2 := c.Conn.Read(b); m > 0 {
		return m, err2
	}
	return n, err
}

type lateSysConn struct {
	lateConn
	sc syscall.Conn
}

func (c lateSysConn) SyscallConn() (syscall.RawConn, error) { return c.sc.SyscallConn() }
