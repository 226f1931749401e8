package cache

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// invalidateChannel is where Redis sends invalidation messages to a RESP2
// client that is the target of a tracking REDIRECT.

const invalidateChannel = "__redis__:invalidate"

// Tracking design (doc.go states what the near tier guarantees).
//
// Each master has one tracker: a dedicated go-redis client (RESP2, one
// connection) whose Pub/Sub connection arms tracking on itself in its
// OnConnect hook, before go-redis sends SUBSCRIBE:
//
//	CLIENT ID                                  -> id
//	CLIENT TRACKING ON REDIRECT id BCAST PREFIX <namespace>
//	SUBSCRIBE __redis__:invalidate             (go-redis, after OnConnect)
//
// The connection that tracks and the one that receives are the same, so they
// fail together: no control connection can die unnoticed while the
// subscriber lives on. go-redis re-dials a broken Pub/Sub connection by
// itself, and every new connection runs OnConnect, so tracking is re-armed
// on every reconnect; the tracker only has to notice the gap:
//
//   - any error from Receive (a lost connection, or the nil payload of a
//     FLUSHALL/FLUSHDB message, which go-redis reports as an error) disarms
//     the tracker: the near tier stops serving and flushes;
//   - the next message received on a connection — the subscription
//     confirmation of a new one, or the answer to the PING sent after the
//     error — arms it again: that connection has run OnConnect, so every
//     write from then on is reported;
//   - a connection silent for a whole HealthInterval is pinged; silent for
//     another, it is replaced (a paused server or a black hole).
//
// The near tier serves only while every tracker is armed.
//
// RESP3 pushes were not used because go-redis reads pushes only when a
// connection is used for a command (its client-side caching drains them on a
// timer, 5 ms by default), whereas a Pub/Sub receive loop reads them as they
// arrive. go-redis's built-in client-side caching was not used because it
// works on standalone clients only, caches raw replies that must be decoded
// on every hit, and ties entries to pooled connections.

// manage keeps one tracker per master until the near tier stops.
func (n *near) manage() {
	trackers := make(map[string]*tracker)
	defer func() {
		for _, t := range trackers {
			t.stop()
		}
	}()
	known := false
	tick := time.NewTicker(n.opt.TopologyInterval)
	defer tick.Stop()
	for {
		masters, periodic, err := n.masters(n.ctx)
		if errors.Is(err, ErrUnsupportedClient) {
			n.turnOff(err)
			return
		}
		if err == nil {
			n.sync(trackers, masters, &known)
		}
		if known && !periodic {
			if !isFailover(n.rdb) {
				<-n.ctx.Done()
				return
			}
			for _, t := range trackers {
				n.checkMaster(t)
			}
		}
		select {
		case <-n.ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// masters returns the connection options of every master, by address, and
// whether the set may change (Cluster, Ring). A standalone or Sentinel
// client has one entry: its own options, whose dialer follows failovers.
func (n *near) masters(ctx context.Context) (map[string]*redis.Options, bool, error) {
	switch r := n.rdb.(type) {
	case *redis.Client:
		return map[string]*redis.Options{"": r.Options()}, false, nil
	case *redis.ClusterClient:
		// CLUSTER SHARDS, fresh on every call: go-redis's cached state may
		// lag behind a failover by seconds.
		shards, err := r.ClusterShards(ctx).Result()
		if err != nil {
			return nil, true, err
		}
		var tmpl *redis.Options
		var mu sync.Mutex
		err = r.ForEachMaster(ctx, func(_ context.Context, c *redis.Client) error {
			mu.Lock()
			if tmpl == nil {
				tmpl = c.Options()
			}
			mu.Unlock()
			return nil
		})
		if err != nil || tmpl == nil {
			return nil, true, fmt.Errorf("cluster nodes: %v", err)
		}
		m := make(map[string]*redis.Options)
		for _, sh := range shards {
			if len(sh.Slots) == 0 {
				continue
			}
			for _, node := range sh.Nodes {
				if node.Role != "master" || node.IP == "" || node.Port == 0 {
					continue
				}
				o := *tmpl
				o.Addr = net.JoinHostPort(node.IP, strconv.FormatInt(node.Port, 10))
				m[o.Addr] = &o
			}
		}
		return m, true, nil
	case *redis.Ring:
		m := make(map[string]*redis.Options)
		var mu sync.Mutex
		err := r.ForEachShard(ctx, func(_ context.Context, c *redis.Client) error {
			mu.Lock()
			m[c.Options().Addr] = c.Options()
			mu.Unlock()
			return nil
		})
		return m, true, err
	}
	return nil, false, fmt.Errorf("%w: %T", ErrUnsupportedClient, n.rdb)
}

// sync starts trackers for new masters and stops those of masters gone. A
// change flushes the local tier: the slots of a new master may have been
// written while nobody tracked them there.
func (n *near) sync(trackers map[string]*tracker, masters map[string]*redis.Options, known *bool) {
	var gone int
	for addr, t := range trackers {
		if _, ok := masters[addr]; !ok {
			t.stop()
			delete(trackers, addr)
			if !t.armed {
				gone++
			}
		}
	}
	var added []*tracker
	for addr, o := range masters {
		if _, ok := trackers[addr]; !ok {
			t := n.newTracker(o)
			trackers[addr] = t
			added = append(added, t)
		}
	}
	changed := gone > 0 || len(added) > 0 || len(trackers) != len(masters)
	if !changed && *known {
		return
	}
	first := !*known
	*known = true
	n.setServing(func() {
		n.down += len(added) - gone
		if first {
			n.down--
		}
	})
	if !first {
		n.flush()
	}
	// Started only now: a tracker arming before down counted it would
	// make down negative.
	for _, t := range added {
		t.start()
	}
}

// isFailover reports a Sentinel-backed client (redis.NewFailoverClient),
// whose master can move without our connection being closed.
func isFailover(rdb redis.UniversalClient) bool {
	r, ok := rdb.(*redis.Client)
	return ok && r.Options().Addr == "FailoverClient"
}

// checkMaster compares the server the caller's client writes to with the one
// the tracker listens to (by INFO run_id, unique per server process). After
// a Sentinel failover the old master may keep our connection open for a
// while, reporting nothing of the writes that now go elsewhere: renew it.
func (n *near) checkMaster(t *tracker) {
	tracked := t.runID.Load()
	if tracked == nil {
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, n.opt.TopologyInterval)
	defer cancel()
	info, err := n.rdb.Info(ctx, "server").Result()
	if err != nil {
		return
	}
	if id := runID(info); id != "" && id != *tracked {
		t.renew()
	}
}

func runID(info string) string {
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(line, "run_id:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// tracker owns the tracking connection of one master.
type tracker struct {
	n     *near
	rdb   *redis.Client
	armed bool // guarded by n.mu

	id      atomic.Int64                 // CLIENT ID of the current connection
	runID   atomic.Pointer[string]       // run_id of the server it is connected to
	renewed atomic.Bool                  // renew closed the Pub/Sub: open another
	refused atomic.Pointer[trackRefusal] // set when the server refused tracking

	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	ps     *redis.PubSub // guarded by mu; nil after stop
	done   chan struct{}
}

type trackRefusal struct{ err error }

func (n *near) newTracker(base *redis.Options) *tracker {
	t := &tracker{n: n, done: make(chan struct{})}
	o := *base
	o.Protocol = 2
	o.PoolSize = 1
	o.MinIdleConns, o.MaxIdleConns, o.MaxActiveConns = 0, 0, 0
	o.ClientName = "rediskit-near"
	o.Limiter = nil // our pings must not feed the caller's breaker
	o.AutoPipelineOptions = nil
	o.PushNotificationProcessor = nil
	o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	o.ClientSideCacheConfig, o.ClientSideCache = nil, nil
	userOnConnect := base.OnConnect
	o.OnConnect = func(ctx context.Context, cn *redis.Conn) error {
		if userOnConnect != nil {
			if err := userOnConnect(ctx, cn); err != nil {
				return err
			}
		}
		return t.onConnect(ctx, cn)
	}
	t.rdb = redis.NewClient(&o)
	t.ctx, t.cancel = context.WithCancel(n.ctx)
	return t
}

func (t *tracker) start() {
	if h := t.n.onTracker; h != nil {
		h(t)
	}
	go func() {
		defer close(t.done)
		defer func() { _ = t.rdb.Close() }()
		t.run()
	}()
}

// stop ends a started tracker and waits for it. go-redis does not interrupt a
// blocked read on context cancellation, so the Pub/Sub is closed under it.
func (t *tracker) stop() {
	t.cancel()
	t.mu.Lock()
	if t.ps != nil {
		_ = t.ps.Close()
		t.ps = nil
	}
	t.mu.Unlock()
	<-t.done
}

// onConnect arms tracking on a new connection of the tracker, redirected to
// the connection itself. It asks the node's role first, so that tracking is
// never armed on a replica, not even for the moment before the connection
// is dropped (TestNearRefusesTrackingANonMaster).
func (t *tracker) onConnect(ctx context.Context, cn *redis.Conn) error {
	info, infoErr := cn.Info(ctx, "server", "replication").Result()
	if infoErr == nil && isFailover(t.n.rdb) && !strings.Contains(info, "role:master") {
		// A Sentinel client's dialer follows the sentinels' answer, which
		// can name a node that is no longer the master: tracking it would
		// report none of the writes.
		return errors.New("cache: near tier: the node reached is not a master")
	}
	id, err := cn.ClientID(ctx).Result()
	if err == nil {
		err = cn.Do(ctx, "CLIENT", "TRACKING", "ON", "REDIRECT", strconv.FormatInt(id, 10),
			"BCAST", "PREFIX", t.n.ns).Err()
	}
	if err != nil {
		if refusal(err) {
			t.refused.Store(&trackRefusal{err})
		}
		return fmt.Errorf("cache: near tier: arm tracking: %w", err)
	}
	if infoErr == nil {
		if r := runID(info); r != "" {
			t.runID.Store(&r)
		}
	}
	t.id.Store(id)
	return nil
}

// renew makes the tracker drop its connection and open another, after a
// flush.
func (t *tracker) renew() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ps != nil {
		t.renewed.Store(true)
		_ = t.ps.Close()
	}
}

// refusal reports an error reply that retrying will not fix: the server
// does not know the command or forbids it.
func refusal(err error) bool {
	var re redis.Error
	if !errors.As(err, &re) {
		return false
	}
	return !redis.IsLoadingError(err) && !redis.IsClusterDownError(err) && !redis.IsTryAgainError(err) &&
		!redis.IsMasterDownError(err) && !redis.IsMaxClientsError(err) && !redis.IsReadOnlyError(err)
}

func (t *tracker) subscribe() *redis.PubSub {
	ps := t.rdb.Subscribe(t.ctx, invalidateChannel)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ctx.Err() != nil {
		_ = ps.Close()
		return nil
	}
	t.ps = ps
	return ps
}

func (t *tracker) run() {
	ctx := t.ctx
	ps := t.subscribe()
	if ps == nil {
		return
	}
	armed, pinged := false, false
	backoff := minBackoff
	setArmed := func(on bool) {
		if armed == on {
			return
		}
		armed = on
		t.n.setServing(func() {
			t.armed = on
			if on {
				t.n.down--
			} else {
				t.n.down++
			}
		})
	}
	for {
		msg, err := ps.ReceiveTimeout(ctx, t.n.opt.HealthInterval)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if r := t.refused.Load(); r != nil {
				t.n.turnOff(r.err)
				return
			}
			timeout := isTimeout(err)
			if timeout && !pinged {
				// Quiet: ask the connection to speak within an interval.
				pinged = true
				_ = ps.Ping(ctx, "near")
				continue
			}
			// Lost, silent for two intervals, or a flush message: stop
			// serving and flush until a connection is armed again.
			setArmed(false)
			pinged = false
			if t.renewed.Swap(false) || timeout {
				_ = ps.Close()
				if ps = t.subscribe(); ps == nil {
					return
				}
			}
			// The answer re-arms a connection that is still up (after a
			// flush message); a broken one is re-dialled by go-redis.
			if ps.Ping(ctx, "near") != nil {
				if !sleepCtx(ctx, backoff) {
					return
				}
				backoff = min(2*backoff, maxBackoff)
			}
			continue
		}
		backoff = minBackoff
		pinged = false
		setArmed(true)
		if m, ok := msg.(*redis.Message); ok {
			if m.PayloadSlice != nil {
				t.n.invalidateStored(m.PayloadSlice)
			} else {
				t.n.invalidateStored([]string{m.Payload})
			}
		}
	}
}

const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 2 * time.Second
)

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
