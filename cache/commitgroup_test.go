package cache

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/internal/redistest"
)

// holdFirstCommit is a hook that holds the first n scriptCommit calls (1
// unless set) until release is closed, and records every commit call
// after them. held gets a value as each is held.
type holdFirstCommit struct {
	held, release chan struct{}
	n             int

	mu    sync.Mutex
	holds int
	calls [][]any // the arguments of every commit call after the held ones
}

func (h *holdFirstCommit) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *holdFirstCommit) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if args := cmd.Args(); len(args) > 1 && cmd.Name() == "evalsha" {
			switch args[1] {
			case scriptCommit.Hash():
				h.mu.Lock()
				hold := h.holds < max(h.n, 1)
				h.holds++
				h.mu.Unlock()
				if hold {
					h.held <- struct{}{}
					<-h.release
					return next(ctx, cmd)
				}
				fallthrough
			case scriptCommitGroup.Hash():
				h.mu.Lock()
				h.calls = append(h.calls, args)
				h.mu.Unlock()
			}
		}
		return next(ctx, cmd)
	}
}

func (h *holdFirstCommit) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// oneGroupCall fails t unless the commits after the held ones were one
// group call of n keys.
func (h *holdFirstCommit) oneGroupCall(t *testing.T, n int) {
	t.Helper()
	h.mu.Lock()
	calls := h.calls
	h.mu.Unlock()
	if len(calls) != 1 || calls[0][1] != scriptCommitGroup.Hash() || fmt.Sprint(calls[0][2]) != fmt.Sprint(n) {
		t.Fatalf("commits after the held ones: %v; want one group call of %d keys", calls, n)
	}
}

// misses runs GetOrSet calls on goroutines of their own, each loading
// value(key) ("loaded <key>" when value is nil), and collects whether each
// was answered with what it loaded.
type misses struct {
	t       *testing.T
	ctx     context.Context
	c       *Cache
	value   func(key string) []byte
	answers chan error
}

func newMisses(t *testing.T, ctx context.Context, c *Cache, value func(string) []byte) *misses {
	if value == nil {
		value = func(key string) []byte { return []byte("loaded " + key) }
	}
	return &misses{t: t, ctx: ctx, c: c, value: value, answers: make(chan error, 2*maxGroup)}
}

// start starts the GetOrSet of key.
func (m *misses) start(key string) {
	go func() {
		v, err := m.c.GetOrSet(m.ctx, key, time.Minute, func(context.Context) ([]byte, error) { return m.value(key), nil })
		if err == nil && !bytes.Equal(v, m.value(key)) {
			err = fmt.Errorf("GetOrSet(%s) = %d bytes, want its loaded %d", key, len(v), len(m.value(key)))
		}
		m.answers <- err
	}()
}

// startHeld starts the GetOrSet of key and waits until h holds its commit.
func (m *misses) startHeld(key string, h *holdFirstCommit) {
	m.t.Helper()
	m.start(key)
	select {
	case <-h.held:
	case <-m.ctx.Done():
		m.t.Fatalf("the commit of %s never ran", key)
	}
}

// answered waits for n answers, each right; what names them in a failure.
func (m *misses) answered(n int, what string) {
	m.t.Helper()
	for range n {
		select {
		case err := <-m.answers:
			if err != nil {
				m.t.Fatal(err)
			}
		case <-m.ctx.Done():
			m.t.Fatalf("%s: not answered", what)
		}
	}
}

// holdingCache returns a Cache on rdb, which groups commits on one wire,
// whose first commit h holds until release is called: at the latest at
// cleanup, before Close waits for it. With one wire, holding that commit
// holds them all (TestCommitWires has several).
func holdingCache(t *testing.T, rdb *redis.Client) (c *Cache, h *holdFirstCommit, release func()) {
	h = &holdFirstCommit{held: make(chan struct{}, maxGroup), release: make(chan struct{})}
	rdb.AddHook(h)
	c = newCache(t, rdb, Options{})
	if !c.grouped {
		t.Fatal("a Cache on a *redis.Client with default options does not group commits")
	}
	if c.group.wires != commitWires {
		t.Fatalf("a new Cache has %d wires, want %d", c.group.wires, commitWires)
	}
	c.group.wires = 1
	release = sync.OnceFunc(func() { close(h.release) })
	t.Cleanup(release)
	return c, h, release
}

// onWire returns how many commit calls of c are on the wire.
func onWire(c *Cache) int {
	c.group.mu.Lock()
	defer c.group.mu.Unlock()
	return c.group.sending
}

// waitGrouped waits until the group accepting commits holds n of them.
func waitGrouped(t *testing.T, c *Cache, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d commits to wait for a wire", n), func() bool {
		c.group.mu.Lock()
		defer c.group.mu.Unlock()
		return c.group.next != nil && len(c.group.next.keys) == n
	})
}

// TestCommitGroup: while a commit is on the wire, the commits of other
// misses wait for it and go as one call, each still a compare-and-set on
// its own lease: a key deleted while its commit waited is not written
// back, and a lease a waiter flagged gets its event.
func TestCommitGroup(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	c, h, release := holdingCache(t, rdb)
	ctx := ctxT(t)

	m := newMisses(t, ctx, c, nil)
	m.startHeld("first", h)
	const waiting = 5
	for i := range waiting {
		m.start(fmt.Sprint("k", i))
	}
	waitGrouped(t, c, waiting)

	// k1 is deleted while its commit waits; k2's lease is flagged by a
	// waiter, which listens for the event.
	if err := c.Delete(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	marker, err := rdb.Get(ctx, c.key("k2")).Result()
	if err != nil {
		t.Fatal(err)
	}
	if _, held, err := c.watchMarker(ctx, c.key("k2"), marker); err != nil || !held {
		t.Fatalf("flagging k2's lease: held %v, %v", held, err)
	}
	sub := rdb.Subscribe(ctx, c.channel)
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}

	release()
	m.answered(waiting+1, "the held commit and its group")
	h.oneGroupCall(t, waiting)
	for _, key := range []string{"first", "k0", "k2", "k3", "k4"} {
		v, hit, err := c.Get(ctx, key)
		if err != nil || !hit || string(v) != "loaded "+key {
			t.Errorf("Get(%s) = %q, %v, %v; want the loaded value", key, v, hit, err)
		}
	}
	if n, err := rdb.Exists(ctx, c.key("k1")).Result(); err != nil || n != 0 {
		t.Errorf("k1, deleted while its commit waited: exists %d, %v; want not written back", n, err)
	}
	msg, err := sub.ReceiveMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := string(evStored) + c.key("k2"); msg.Payload != want {
		t.Errorf("event %q, want %q", msg.Payload, want)
	}
}

// TestCommitWires: up to commitWires commits are on the wire at once, each
// alone; only while they all are do the commits that come meanwhile wait,
// as one group, which goes when a wire frees.
func TestCommitWires(t *testing.T) {
	c, h, release := holdingCache(t, redistest.Start(t).Client(t))
	c.group.wires = commitWires
	h.n = commitWires
	ctx := ctxT(t)

	m := newMisses(t, ctx, c, nil)
	for i := range commitWires {
		m.startHeld(fmt.Sprint("held", i), h)
	}
	c.group.mu.Lock()
	next := c.group.next
	c.group.mu.Unlock()
	if n := onWire(c); n != commitWires || next != nil {
		t.Fatalf("%d commits held: %d on the wire, a group waiting: %v; want %d and none", commitWires, n, next != nil, commitWires)
	}
	const waiting = 3
	for i := range waiting {
		m.start(fmt.Sprint("k", i))
	}
	waitGrouped(t, c, waiting)

	release()
	m.answered(commitWires+waiting, "the held commits and the group behind them")
	h.oneGroupCall(t, waiting)
	if n := onWire(c); n != 0 {
		t.Errorf("%d commits on the wire after every miss was answered, want 0", n)
	}
	for _, key := range []string{"held0", fmt.Sprint("held", commitWires-1), "k0", fmt.Sprint("k", waiting-1)} {
		if v, hit, err := c.Get(ctx, key); err != nil || !hit || string(v) != "loaded "+key {
			t.Errorf("Get(%s) = %q, %v, %v; want the loaded value", key, v, hit, err)
		}
	}
}

// TestCommitWiresPassOverGathering: a wire that frees while a group
// gathers on another wire is not handed to that group, which holds one
// already: it is freed, and the group's own return frees the other.
func TestCommitWiresPassOverGathering(t *testing.T) {
	c, h, release := holdingCache(t, redistest.Start(t).Client(t))
	c.group.wires = 2
	ctx := ctxT(t)
	m := newMisses(t, ctx, c, nil)
	m.startHeld("held", h) // alone: commands do not overlap yet

	c.group.yield = func() { // the gathering group, on the second wire
		release()
		waitFor(t, "the held commit to free its wire", func() bool { return onWire(c) == 1 })
	}
	for !c.reader.Overlapping() {
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() { _, _, _ = c.Get(ctx, fmt.Sprint("absent", i)) })
		}
		wg.Wait()
	}
	m.start("gathered")
	m.answered(2, "the held commit and the gathered one")
	if n := onWire(c); n != 0 {
		t.Errorf("%d commits on the wire after both were answered, want 0", n)
	}
	for _, key := range []string{"held", "gathered"} {
		if v, hit, err := c.Get(ctx, key); err != nil || !hit || string(v) != "loaded "+key {
			t.Errorf("Get(%s) = %q, %v, %v; want the loaded value", key, v, hit, err)
		}
	}
}

// TestCommitGroupOnlyWhereItHolds: commits group only on a *redis.Client,
// without a Tracer and without PipelineAlways (see commitgroup.go).
func TestCommitGroupOnlyWhereItHolds(t *testing.T) {
	cluster := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}})
	t.Cleanup(func() { _ = cluster.Close() })
	for _, tc := range []struct {
		name string
		rdb  redis.UniversalClient
		opt  Options
		want bool
	}{
		{"client", fakeClient(t), Options{}, true},
		{"pooled", fakeClient(t), Options{Pipelining: PipelineOff}, true},
		{"always", fakeClient(t), Options{Pipelining: PipelineAlways}, false},
		{"traced", fakeClient(t), Options{Tracer: noopTracer{}}, false},
		{"cluster", cluster, Options{}, false},
	} {
		tc.opt.Prefix = "t"
		c, err := New(tc.rdb, tc.opt)
		if err != nil {
			t.Fatal(err)
		}
		if c.grouped != tc.want {
			t.Errorf("%s: grouped %v, want %v", tc.name, c.grouped, tc.want)
		}
		_ = c.Close()
	}
}

// noopTracer is a Tracer that records nothing.
type noopTracer struct{}

func (noopTracer) Start(ctx context.Context, _, _ string) (context.Context, func(error)) {
	return ctx, func(error) {}
}
func (noopTracer) SetInt(context.Context, string, int)   {}
func (noopTracer) SetBool(context.Context, string, bool) {}

// groupSize is one commit call (scriptCommitGroup, or scriptCommit for
// one key): its keys and the bytes of its values.
type groupSize struct{ keys, bytes int }

// commitCall is the size of cmd when it is a commit call.
func commitCall(cmd redis.Cmder) (groupSize, bool) {
	args := cmd.Args()
	if cmd.Name() != "evalsha" || len(args) < 3 {
		return groupSize{}, false
	}
	switch args[1] {
	case scriptCommit.Hash(): // a call of one key: key, proof, value, …
		v, _ := args[5].([]byte)
		return groupSize{keys: 1, bytes: len(v)}, true
	case scriptCommitGroup.Hash():
		n, _ := args[2].(int)
		s := groupSize{keys: n}
		for i := 3 + n + 2 + 1; i < len(args); i += 3 { // past the keys, channel and event prefix: proof, value, ttl
			if v, ok := args[i].([]byte); ok {
				s.bytes += len(v)
			}
		}
		return s, true
	}
	return groupSize{}, false
}

// recordingCache returns a Cache on a server of its own and a hook that
// records its commit calls, sent alone or in a pipeline.
func recordingCache(t *testing.T) (*Cache, *redistest.Recorder[groupSize]) {
	rdb := redistest.Start(t).Client(t)
	h := &redistest.Recorder[groupSize]{Keep: commitCall}
	rdb.AddHook(h)
	return newCache(t, rdb, Options{}), h
}

// TestGetOrSetManyGroupBounds: a cold batch's commits go as group calls
// of at most maxGroup keys and maxGroupBytes of values; a value larger
// than that goes in a call of its own. Every value is stored whole.
func TestGetOrSetManyGroupBounds(t *testing.T) {
	c, h := recordingCache(t)
	ctx := ctxT(t)

	keys := manyKeys("small", 2*maxGroup+2)
	got, err := c.GetOrSetMany(ctx, keys, time.Minute, func(_ context.Context, keys []string) (map[string][]byte, error) {
		m := make(map[string][]byte, len(keys))
		for _, k := range keys {
			m[k] = []byte("v-" + k)
		}
		return m, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checkAll(t, got, keys)
	sizes := h.Take()
	if len(sizes) != 3 || sizes[0].keys+sizes[1].keys+sizes[2].keys != len(keys) {
		t.Fatalf("group calls for %d cold keys: %v; want 3 of at most %d keys, covering all", len(keys), sizes, maxGroup)
	}
	for _, s := range sizes {
		if s.keys > maxGroup {
			t.Errorf("a group call of %d keys, more than %d", s.keys, maxGroup)
		}
	}

	// Three values of 400 KiB need two calls whatever their order; one of
	// 1.5 MiB goes alone. Random bytes: compression must not shrink them.
	big := map[string][]byte{}
	for i, n := range []int{400 << 10, 400 << 10, 400 << 10, 1536 << 10} {
		v := make([]byte, n)
		if _, err := rand.Read(v); err != nil {
			t.Fatal(err)
		}
		big[fmt.Sprint("big", i)] = v
	}
	bigKeys := []string{"big0", "big1", "big2", "big3"}
	got, err = c.GetOrSetMany(ctx, bigKeys, time.Minute, func(_ context.Context, keys []string) (map[string][]byte, error) {
		m := make(map[string][]byte, len(keys))
		for _, k := range keys {
			m[k] = big[k]
		}
		return m, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sizes = h.Take()
	if len(sizes) != 3 {
		t.Fatalf("group calls for 3 values of 400 KiB and one of 1.5 MiB: %v; want 3", sizes)
	}
	for _, s := range sizes {
		if s.keys > 1 && s.bytes > maxGroupBytes {
			t.Errorf("a group call of %d keys and %d bytes, more than %d", s.keys, s.bytes, maxGroupBytes)
		}
	}
	for _, k := range bigKeys {
		if !bytes.Equal(got[k], big[k]) {
			t.Errorf("GetOrSetMany answered %d bytes for %s, want its %d", len(got[k]), k, len(big[k]))
		}
		if v, hit, err := c.Get(ctx, k); err != nil || !hit || !bytes.Equal(v, big[k]) {
			t.Errorf("Get(%s) = %d bytes, %v, %v; want the stored %d", k, len(v), hit, err, len(big[k]))
		}
	}
}

// TestCommitGroupBounds: while a commit is on the wire, the commits that
// wait for it go in groups of at most maxGroup keys and maxGroupBytes of
// values: a commit that would overfill the group accepting commits closes
// it and opens the next, and the groups take the wire in the order they
// closed; a commit whose value alone is larger than a group goes at once,
// alone.
func TestCommitGroupBounds(t *testing.T) {
	c, h, release := holdingCache(t, redistest.Start(t).Client(t))
	ctx := ctxT(t)

	values := map[string][]byte{}
	for key, n := range map[string]int{"huge": maxGroupBytes + 1, "mid0": 600 << 10, "mid1": 600 << 10} {
		v := make([]byte, n) // random: compression must not shrink it
		if _, err := rand.Read(v); err != nil {
			t.Fatal(err)
		}
		values[key] = v
	}
	value := func(key string) []byte {
		if v, ok := values[key]; ok {
			return v
		}
		return []byte("loaded " + key)
	}
	m := newMisses(t, ctx, c, value)
	sentAlone := func(want int) {
		t.Helper()
		h.mu.Lock()
		n := len(h.calls)
		h.mu.Unlock()
		if n != want {
			t.Fatalf("%d commits sent while the wire was held, want %d", n, want)
		}
	}

	m.startHeld("first", h)
	m.start("huge") // larger than a group: alone, though no group waits
	m.answered(1, "a value larger than a group")
	sentAlone(1)
	m.start("mid0")
	waitGrouped(t, c, 1)
	m.start("mid1") // 1.2 MiB with mid0: closes mid0's group, opens the next
	queued := func(full, next int) {
		t.Helper()
		waitFor(t, fmt.Sprintf("%d full groups and %d commits accepting more", full, next), func() bool {
			c.group.mu.Lock()
			defer c.group.mu.Unlock()
			return len(c.group.full) == full && c.group.next != nil && len(c.group.next.keys) == next
		})
	}
	queued(1, 1)
	for i := range maxGroup - 1 {
		m.start(fmt.Sprint("k", i))
	}
	queued(1, maxGroup)
	const over = 6
	for i := range over {
		m.start(fmt.Sprint("over", i))
	}
	queued(2, over)
	sentAlone(1)

	release()
	m.answered(1+1+maxGroup+over, "the held commit and the groups behind it")
	h.mu.Lock()
	calls := h.calls[1:]
	h.mu.Unlock()
	want := []struct {
		hash string
		keys int
	}{{scriptCommit.Hash(), 1}, {scriptCommitGroup.Hash(), maxGroup}, {scriptCommitGroup.Hash(), over}}
	if len(calls) != len(want) {
		t.Fatalf("%d commit calls after the held one returned; want %d: mid0 alone, then groups of %d and %d keys", len(calls), len(want), maxGroup, over)
	}
	for i, w := range want {
		if calls[i][1] != w.hash || fmt.Sprint(calls[i][2]) != fmt.Sprint(w.keys) {
			t.Errorf("commit call %d after the held one: %v keys by %v; want %d keys by %s", i, calls[i][2], calls[i][1], w.keys, w.hash)
		}
	}
	for _, key := range []string{"first", "huge", "mid0", "mid1", "k0", fmt.Sprint("k", maxGroup-2), "over0", fmt.Sprint("over", over-1)} {
		if v, hit, err := c.Get(ctx, key); err != nil || !hit || !bytes.Equal(v, value(key)) {
			t.Errorf("Get(%s) = %d bytes, %v, %v; want the loaded value", key, len(v), hit, err)
		}
	}
}

// TestCommitGroupCallerLeaves: a caller whose commit waits in a group
// behind a commit that does not return (a paused server) leaves at its
// own deadline; its load goes on and is stored once the wire frees.
func TestCommitGroupCallerLeaves(t *testing.T) {
	c, h, release := holdingCache(t, redistest.Start(t).Client(t))
	ctx := ctxT(t)

	newMisses(t, ctx, c, nil).startHeld("first", h)
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err := c.GetOrSet(short, "k", time.Minute, func(context.Context) ([]byte, error) { return []byte("loaded k"), nil })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("GetOrSet with its commit held in a group = %v, want its deadline", err)
	}
	waitGrouped(t, c, 1)
	release()
	waitFor(t, "the load to be stored", func() bool {
		v, hit, err := c.Get(ctx, "k")
		return err == nil && hit && string(v) == "loaded k"
	})
}

// TestCommitGroupAcrossFailover: commits waiting for the wire while
// Sentinel promotes the replica go to the new master (go-redis's failover
// client drops its connections to the old one at the switch). The leases
// they settle were replicated before the failover (WAIT), so each commit
// finds its marker there and stores its value; a key deleted while its
// commit waited is not written back.
func TestCommitGroupAcrossFailover(t *testing.T) {
	s := redistest.StartSentinel(t)
	rdb := s.Client(t)
	c, h, release := holdingCache(t, rdb)
	ctx := ctxT(t)

	m := newMisses(t, ctx, c, nil)
	m.startHeld("first", h)
	for _, key := range []string{"k0", "k1", "k2"} {
		m.start(key)
	}
	waitGrouped(t, c, 3)
	if err := c.Delete(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	// The leases and the Delete reach the replica before it is promoted.
	if n, err := rdb.Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT 1: %d replicas, %v", n, err)
	}
	s.Failover(t)

	release()
	m.answered(4, "the misses, after the failover")
	master := redis.NewClient(&redis.Options{Addr: s.Master.Addr})
	defer master.Close()
	for _, key := range []string{"first", "k0", "k2"} {
		v, hit, err := c.Get(ctx, key)
		if err != nil || !hit || string(v) != "loaded "+key {
			t.Errorf("Get(%s) after the failover = %q, %v, %v; want the loaded value", key, v, hit, err)
		}
	}
	if n, err := master.Exists(ctx, c.key("k1")).Result(); err != nil || n != 0 {
		t.Errorf("k1, deleted while its commit waited: exists %d on the new master, %v; want not written back", n, err)
	}
}

// TestCommitGroupGathers: while commands overlap, a commit that finds the
// wire free does not go alone at once: it yields, and the commits that
// arrive meanwhile go in its call. The test's yield waits for three.
func TestCommitGroupGathers(t *testing.T) {
	c, h := recordingCache(t)
	ctx := ctxT(t)
	leading := make(chan struct{})
	c.group.yield = func() {
		close(leading)
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			c.group.mu.Lock()
			n := len(c.group.next.keys)
			c.group.mu.Unlock()
			if n == 4 {
				return
			}
		}
	}
	// Overlapping reads leave the Exec counting the next commands as
	// overlapping (pipeline.Exec.Overlapping).
	for !c.reader.Overlapping() {
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() { _, _, _ = c.Get(ctx, fmt.Sprint("absent", i)) })
		}
		wg.Wait()
	}
	h.Take()

	m := newMisses(t, ctx, c, nil)
	m.start("a")
	select {
	case <-leading:
	case <-ctx.Done():
		t.Fatal("the first commit did not gather")
	}
	for _, key := range []string{"b", "c", "d"} {
		m.start(key)
	}
	m.answered(4, "the misses")
	if sizes := h.Take(); len(sizes) != 1 || sizes[0].keys != 4 {
		t.Fatalf("commit calls %v; want one of 4 keys", sizes)
	}
	for _, key := range []string{"a", "b", "c", "d"} {
		if v, hit, err := c.Get(ctx, key); err != nil || !hit || string(v) != "loaded "+key {
			t.Errorf("Get(%s) = %q, %v, %v; want the loaded value", key, v, hit, err)
		}
	}
}
