package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/cache"
	"github.com/rediskit/rediskit/session"
)

// Params sizes a measurement run.
type Params struct {
	// Items is how many sessions or cache entries each memory variant
	// creates before used_memory is read again.
	Items int
	// Ops is how many times each operation runs between CONFIG RESETSTAT
	// and the read of INFO commandstats.
	Ops int
	// Workers is how many goroutines share the work (concurrent clients).
	Workers int
	// Payloads are the session payload sizes in bytes: one value, a string
	// of that many characters (JSON adds 2 bytes of quotes); 0 is no value.
	Payloads []int
	// CacheSizes are the cache value sizes in bytes (random, incompressible).
	CacheSizes []int
	// OpPayload is the session payload and OpValue the cache value size used
	// while measuring operations.
	OpPayload, OpValue int
	// MGetKeys is how many keys one measured MGet asks for.
	MGetKeys int
}

// DefaultParams is the run whose figures docs/CAPACITY.md holds.
func DefaultParams() Params {
	return Params{
		Items: 10000, Ops: 5000, Workers: 8,
		Payloads: []int{0, 256, 1024, 4096}, CacheSizes: []int{64, 1024, 16384},
		OpPayload: 1024, OpValue: 1024, MGetKeys: 10,
	}
}

// MemRow is the Redis memory of one item (a session or a cache entry).
type MemRow struct {
	Kind  string // "session" or "cache"
	Size  int    // payload or value bytes
	User  bool   // the session has a user ID (so a per-user index exists)
	Items int
	// Used is the INFO memory used_memory delta over Items, in bytes, less
	// the change in client buffers (mem_clients_normal): what the allocator
	// holds for the items, dictionaries and expiry tables included.
	Used float64
	// Usage is the sum of MEMORY USAGE over every key, over Items.
	Usage float64
	// Keys is the number of keys per item.
	Keys float64
}

// OpRow is the cost of one logical operation, averaged over Params.Ops.
type OpRow struct {
	Group, Name string
	Ops         int
	// Sent is the commands the client sent per operation (a go-redis hook),
	// by name: each is one round trip unless pipelined together.
	Sent map[string]float64
	// Trips is the sum of Sent.
	Trips float64
	// ServerCmds is the commands Redis executed per operation, the ones a
	// script calls included (INFO commandstats calls).
	ServerCmds float64
	// ExecUsec is the command execution time per operation in µs: for each
	// command the client sent, its usec_per_call times its count. A script's
	// usec_per_call covers the commands it calls.
	ExecUsec float64
	// ExecP50 is ExecUsec with the median execution time of each command
	// (INFO latencystats p50) in place of its mean: the mean counts the
	// time the server thread was descheduled in the middle of a command,
	// which on a busy machine dominates; the median leaves those calls out.
	ExecP50 float64
	// ProcUsec is the Redis main thread's CPU time per operation in µs
	// (used_cpu_user_main_thread + used_cpu_sys_main_thread): execution plus
	// reading, parsing and writing the commands and replies.
	ProcUsec float64
	// NetIn and NetOut are bytes per operation, from total_net_input_bytes
	// and total_net_output_bytes.
	NetIn, NetOut float64
}

// Result is one measurement run.
type Result struct {
	Version, Allocator string
	Params             Params
	Memory             []MemRow
	Ops                []OpRow
}

// Op finds the row of an operation, or nil.
func (r *Result) Op(group, name string) *OpRow {
	for i := range r.Ops {
		if r.Ops[i].Group == group && r.Ops[i].Name == name {
			return &r.Ops[i]
		}
	}
	return nil
}

// Mem finds a memory row, or nil.
func (r *Result) Mem(kind string, size int, user bool) *MemRow {
	for i := range r.Memory {
		m := &r.Memory[i]
		if m.Kind == kind && m.Size == size && m.User == user {
			return m
		}
	}
	return nil
}

// counter is a go-redis hook that counts the commands the client sends, by
// name, while on.
type counter struct {
	mu     sync.Mutex
	on     bool
	counts map[string]int
}

func (c *counter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *counter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.add(cmd)
		return next(ctx, cmd)
	}
}

func (c *counter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			c.add(cmd)
		}
		return next(ctx, cmds)
	}
}

func (c *counter) add(cmd redis.Cmder) {
	c.mu.Lock()
	if c.on {
		c.counts[strings.ToLower(cmd.Name())]++
	}
	c.mu.Unlock()
}

func (c *counter) start() {
	c.mu.Lock()
	c.on, c.counts = true, map[string]int{}
	c.mu.Unlock()
}

func (c *counter) stop() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.on = false
	return c.counts
}

// meter measures on one server through one client.
type meter struct {
	rdb  *redis.Client
	hook *counter
	p    Params
	rng  *rand.Rand
}

// Measure runs every measurement against the redis-server at addr, which it
// flushes and whose statistics it resets: give it a server of its own.
func Measure(ctx context.Context, addr string, p Params) (*Result, error) {
	if p.Items <= 0 || p.Ops <= 0 || p.Workers <= 0 || p.MGetKeys <= 0 {
		return nil, fmt.Errorf("capacity: Items, Ops, Workers and MGetKeys must be positive: %+v", p)
	}
	hook := &counter{}
	rdb := redis.NewClient(&redis.Options{Addr: addr, PoolSize: p.Workers + 4, MinIdleConns: p.Workers})
	defer rdb.Close()
	rdb.AddHook(hook)
	m := &meter{rdb: rdb, hook: hook, p: p, rng: rand.New(rand.NewPCG(1, 2))}
	info, err := m.info(ctx, "server", "memory")
	if err != nil {
		return nil, err
	}
	res := &Result{Version: info["redis_version"], Allocator: info["mem_allocator"], Params: p}
	for _, user := range []bool{false, true} {
		for _, size := range p.Payloads {
			row, err := m.sessionMemory(ctx, size, user)
			if err != nil {
				return nil, err
			}
			res.Memory = append(res.Memory, row)
		}
	}
	for _, size := range p.CacheSizes {
		row, err := m.cacheMemory(ctx, size)
		if err != nil {
			return nil, err
		}
		res.Memory = append(res.Memory, row)
	}
	ops, err := m.sessionOps(ctx)
	if err != nil {
		return nil, err
	}
	res.Ops = append(res.Ops, ops...)
	if ops, err = m.cacheOps(ctx); err != nil {
		return nil, err
	}
	res.Ops = append(res.Ops, ops...)
	return res, nil
}

// info reads INFO sections into one map.
func (m *meter) info(ctx context.Context, sections ...string) (map[string]string, error) {
	s, err := m.rdb.Info(ctx, sections...).Result()
	if err != nil {
		return nil, fmt.Errorf("capacity: INFO %v: %w", sections, err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && !strings.HasPrefix(k, "#") {
			out[k] = v
		}
	}
	return out, nil
}

func num(info map[string]string, key string) float64 {
	f, _ := strconv.ParseFloat(info[key], 64)
	return f
}

// cmdstat is one INFO commandstats line.
type cmdstat struct{ calls, usec float64 }

// cmdstats reads the per-command statistics of an INFO map, without the
// commands of the measurement itself and of connection setup.
func cmdstats(info map[string]string) map[string]cmdstat {
	out := map[string]cmdstat{}
	for k, v := range info {
		name, ok := strings.CutPrefix(k, "cmdstat_")
		if !ok || name == "info" || name == "ping" || name == "hello" ||
			strings.HasPrefix(name, "config") || strings.HasPrefix(name, "client") {
			continue
		}
		var st cmdstat
		for _, f := range strings.Split(v, ",") {
			fk, fv, _ := strings.Cut(f, "=")
			x, _ := strconv.ParseFloat(fv, 64)
			switch fk {
			case "calls":
				st.calls = x
			case "usec":
				st.usec = x
			}
		}
		out[name] = st
	}
	return out
}

// medians reads the p50 execution time of each command, in µs, from INFO
// latencystats.
func medians(info map[string]string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range info {
		name, ok := strings.CutPrefix(k, "latency_percentiles_usec_")
		if !ok {
			continue
		}
		for _, f := range strings.Split(v, ",") {
			if fv, ok := strings.CutPrefix(f, "p50="); ok {
				out[name], _ = strconv.ParseFloat(fv, 64)
			}
		}
	}
	return out
}

// parallel runs fn(i) for i in [0, n) on p.Workers goroutines and returns
// the first error.
func (m *meter) parallel(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	var next atomic.Int64
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range m.p.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, i); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// warm opens Workers connections, so that none is dialled (HELLO, CLIENT
// SETINFO) while a measurement runs.
func (m *meter) warm(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, m.p.Workers)
	for w := range m.p.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[w] = m.rdb.Ping(ctx).Err()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// flush empties the server (scripts stay loaded).
func (m *meter) flush(ctx context.Context) error {
	if err := m.rdb.Do(ctx, "FLUSHALL", "SYNC").Err(); err != nil {
		return fmt.Errorf("capacity: FLUSHALL: %w", err)
	}
	return m.warm(ctx)
}

// payload is n printable bytes.
func (m *meter) payload(n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[m.rng.IntN(len(alphabet))]
	}
	return string(b)
}

// value is n random bytes: incompressible, so the cache stores them as is.
func (m *meter) value(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(m.rng.Uint32())
	}
	return b
}

// footprint measures the memory that fill adds, per item.
func (m *meter) footprint(ctx context.Context, items int, fill func(ctx context.Context, i int) error) (used, usage, keys float64, err error) {
	if err := m.flush(ctx); err != nil {
		return 0, 0, 0, err
	}
	before, err := m.info(ctx, "memory")
	if err != nil {
		return 0, 0, 0, err
	}
	if err := m.parallel(ctx, items, fill); err != nil {
		return 0, 0, 0, err
	}
	after, err := m.info(ctx, "memory")
	if err != nil {
		return 0, 0, 0, err
	}
	var total, n int64
	iter := m.rdb.Scan(ctx, 0, "*", 1000).Iterator()
	var batch []string
	sum := func() error {
		pipe := m.rdb.Pipeline()
		cmds := make([]*redis.IntCmd, len(batch))
		for i, k := range batch {
			cmds[i] = pipe.MemoryUsage(ctx, k, 0)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("capacity: MEMORY USAGE: %w", err)
		}
		for _, c := range cmds {
			total += c.Val()
		}
		n += int64(len(batch))
		batch = batch[:0]
		return nil
	}
	for iter.Next(ctx) {
		if batch = append(batch, iter.Val()); len(batch) == 500 {
			if err := sum(); err != nil {
				return 0, 0, 0, err
			}
		}
	}
	if err := iter.Err(); err != nil {
		return 0, 0, 0, fmt.Errorf("capacity: SCAN: %w", err)
	}
	if err := sum(); err != nil {
		return 0, 0, 0, err
	}
	f := float64(items)
	// Client buffers come and go with the connections' activity (an idle
	// connection's query buffer is freed): they are not the items'.
	data := func(info map[string]string) float64 {
		return num(info, "used_memory") - num(info, "mem_clients_normal")
	}
	return (data(after) - data(before)) / f, float64(total) / f, float64(n) / f, nil
}

func (m *meter) newStore(touch time.Duration) (*session.Store, error) {
	return session.New(m.rdb, session.Options{
		Prefix: "cap:", IdleTimeout: 30 * time.Minute, TouchInterval: touch,
	})
}

func (m *meter) sessionMemory(ctx context.Context, size int, user bool) (MemRow, error) {
	st, err := m.newStore(time.Minute)
	if err != nil {
		return MemRow{}, err
	}
	defer st.Close()
	if err := st.Preload(ctx); err != nil {
		return MemRow{}, err
	}
	var data map[string]any
	if size > 0 {
		data = map[string]any{"data": m.payload(size)}
	}
	used, usage, keys, err := m.footprint(ctx, m.p.Items, func(ctx context.Context, i int) error {
		uid := ""
		if user {
			uid = fmt.Sprintf("user-%07d", i)
		}
		_, err := st.Create(ctx, uid, data, session.CreateOptions{IP: deviceIP, UserAgent: userAgent})
		return err
	})
	if err != nil {
		return MemRow{}, fmt.Errorf("capacity: session memory (payload %d, user %v): %w", size, user, err)
	}
	return MemRow{Kind: "session", Size: size, User: user, Items: m.p.Items, Used: used, Usage: usage, Keys: keys}, nil
}

// deviceIP is the IP address every measured session carries.
const deviceIP = "203.0.113.7"

// userAgent is the device metadata every measured session carries: a
// typical desktop browser's.
const userAgent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"

func (m *meter) newCache() (*cache.Cache, error) {
	return cache.New(m.rdb, cache.Options{Prefix: "cap"})
}

func (m *meter) cacheMemory(ctx context.Context, size int) (MemRow, error) {
	c, err := m.newCache()
	if err != nil {
		return MemRow{}, err
	}
	defer c.Close()
	val := m.value(size)
	used, usage, keys, err := m.footprint(ctx, m.p.Items, func(ctx context.Context, i int) error {
		return c.Set(ctx, fmt.Sprintf("item:%07d", i), val, time.Hour)
	})
	if err != nil {
		return MemRow{}, fmt.Errorf("capacity: cache memory (value %d): %w", size, err)
	}
	return MemRow{Kind: "cache", Size: size, Items: m.p.Items, Used: used, Usage: usage, Keys: keys}, nil
}

// op is one logical operation to measure: setup prepares the data (not
// measured), run(i) is the i-th operation.
type op struct {
	group, name string
	setup       func(ctx context.Context) error
	run         func(ctx context.Context, i int) error
}

// measure runs one operation Ops times between two reads of the server's
// statistics.
func (m *meter) measure(ctx context.Context, o op) (OpRow, error) {
	fail := func(err error) (OpRow, error) {
		return OpRow{}, fmt.Errorf("capacity: %s %s: %w", o.group, o.name, err)
	}
	if err := m.flush(ctx); err != nil {
		return fail(err)
	}
	if o.setup != nil {
		if err := o.setup(ctx); err != nil {
			return fail(err)
		}
	}
	if err := m.warm(ctx); err != nil {
		return fail(err)
	}
	if err := m.rdb.ConfigResetStat(ctx).Err(); err != nil {
		return fail(err)
	}
	// Two reads with nothing between them: what one INFO exchange adds to
	// the network and CPU counters, subtracted below.
	a, err := m.info(ctx, "stats", "cpu")
	if err != nil {
		return fail(err)
	}
	b, err := m.info(ctx, "stats", "cpu")
	if err != nil {
		return fail(err)
	}
	m.hook.start()
	err = m.parallel(ctx, m.p.Ops, o.run)
	sent := m.hook.stop()
	if err != nil {
		return fail(err)
	}
	c, err := m.info(ctx, "stats", "cpu", "commandstats", "latencystats")
	if err != nil {
		return fail(err)
	}
	k := float64(m.p.Ops)
	delta := func(key string) float64 {
		return ((num(c, key) - num(b, key)) - (num(b, key) - num(a, key))) / k
	}
	row := OpRow{Group: o.group, Name: o.name, Ops: m.p.Ops, Sent: map[string]float64{},
		NetIn: delta("total_net_input_bytes"), NetOut: delta("total_net_output_bytes"),
		ProcUsec: 1e6 * (delta("used_cpu_user_main_thread") + delta("used_cpu_sys_main_thread")),
	}
	stats := cmdstats(c)
	p50s := medians(c)
	for _, st := range stats {
		row.ServerCmds += st.calls / k
	}
	for name, n := range sent {
		row.Sent[name] = float64(n) / k
		row.Trips += float64(n) / k
		if st, ok := stats[name]; ok && st.calls > 0 {
			row.ExecUsec += st.usec / st.calls * float64(n) / k
		}
		row.ExecP50 += p50s[name] * float64(n) / k
	}
	return row, nil
}

// sessionOps measures every Store operation on sessions of Params.OpPayload
// bytes, each with a user ID; users hold two sessions each.
func (m *meter) sessionOps(ctx context.Context) ([]OpRow, error) {
	plain, err := m.newStore(time.Minute)
	if err != nil {
		return nil, err
	}
	defer plain.Close()
	// The same sessions through a store whose touch is always due: every
	// Get takes the read and then the touch script, as a Get does once per
	// TouchInterval per session.
	touching, err := m.newStore(time.Millisecond)
	if err != nil {
		return nil, err
	}
	defer touching.Close()
	if err := plain.Preload(ctx); err != nil {
		return nil, err
	}
	data := map[string]any{"data": m.payload(m.p.OpPayload)}
	k := m.p.Ops
	pool := min(k, 1000) // sessions that repeated operations cycle through
	var ids []string
	create := func(n int) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			ids = make([]string, n)
			return m.parallel(ctx, n, func(ctx context.Context, i int) error {
				s, err := plain.Create(ctx, fmt.Sprintf("user-%07d", i/2), data, session.CreateOptions{IP: deviceIP, UserAgent: userAgent})
				if err == nil {
					ids[i] = s.ID()
				}
				return err
			})
		}
	}
	get := func(st *session.Store) func(ctx context.Context, i int) error {
		return func(ctx context.Context, i int) error {
			_, err := st.Get(ctx, ids[i%pool])
			return err
		}
	}
	ops := []op{
		{"session", "Create", nil, func(ctx context.Context, i int) error {
			_, err := plain.Create(ctx, fmt.Sprintf("user-%07d", i/2), data, session.CreateOptions{IP: deviceIP, UserAgent: userAgent})
			return err
		}},
		{"session", "Get (read)", create(pool), get(plain)},
		{"session", "Get (read + touch)", create(pool), get(touching)},
		{"session", "Update", create(pool), func(ctx context.Context, i int) error {
			_, err := plain.Update(ctx, ids[i%pool], session.Changes{Set: map[string]any{"theme": "dark"}})
			return err
		}},
		{"session", "Extend", create(pool), func(ctx context.Context, i int) error {
			_, _, err := plain.Extend(ctx, ids[i%pool], 10*time.Minute)
			return err
		}},
		{"session", "Rotate", create(k), func(ctx context.Context, i int) error {
			_, err := plain.Rotate(ctx, ids[i])
			return err
		}},
		{"session", "Delete", create(k), func(ctx context.Context, i int) error {
			ok, err := plain.Delete(ctx, ids[i])
			if err == nil && !ok {
				err = errors.New("deleted nothing")
			}
			return err
		}},
		{"session", "ListByUser", create(2 * pool), func(ctx context.Context, i int) error {
			infos, err := plain.ListByUser(ctx, fmt.Sprintf("user-%07d", i%pool))
			if err == nil && len(infos) != 2 {
				err = fmt.Errorf("listed %d sessions, want 2", len(infos))
			}
			return err
		}},
		{"session", "DeleteByUser", create(2 * k), func(ctx context.Context, i int) error {
			n, err := plain.DeleteByUser(ctx, fmt.Sprintf("user-%07d", i))
			if err == nil && n != 2 {
				err = fmt.Errorf("deleted %d sessions, want 2", n)
			}
			return err
		}},
	}
	return m.measureAll(ctx, ops)
}

// cacheOps measures every Cache operation on values of Params.OpValue bytes.
func (m *meter) cacheOps(ctx context.Context) ([]OpRow, error) {
	c, err := m.newCache()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.Preload(ctx); err != nil {
		return nil, err
	}
	val := m.value(m.p.OpValue)
	k := m.p.Ops
	pool := min(k, 1000)
	load := func(context.Context) ([]byte, error) { return val, nil }
	noLoad := func(context.Context) ([]byte, error) { return nil, errors.New("loader called on a hit") }
	fill := func(n int, name string) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			return m.parallel(ctx, n, func(ctx context.Context, i int) error {
				return c.Set(ctx, fmt.Sprintf("%s:%d", name, i), val, time.Hour)
			})
		}
	}
	hit := func(p []byte, ok bool, err error) error {
		if err == nil && !ok {
			err = errors.New("miss on a key that was set")
		}
		return err
	}
	ops := []op{
		{"cache", "Get (hit)", fill(pool, "k"), func(ctx context.Context, i int) error {
			return hit(c.Get(ctx, fmt.Sprintf("k:%d", i%pool)))
		}},
		{"cache", "Get (miss)", nil, func(ctx context.Context, i int) error {
			_, ok, err := c.Get(ctx, fmt.Sprintf("absent:%d", i))
			if err == nil && ok {
				err = errors.New("hit on an absent key")
			}
			return err
		}},
		{"cache", "Set", nil, func(ctx context.Context, i int) error {
			return c.Set(ctx, fmt.Sprintf("k:%d", i), val, time.Hour)
		}},
		{"cache", fmt.Sprintf("MGet (%d keys)", m.p.MGetKeys), fill(pool, "k"), func(ctx context.Context, i int) error {
			keys := make([]string, m.p.MGetKeys)
			for j := range keys {
				keys[j] = fmt.Sprintf("k:%d", (i*m.p.MGetKeys+j)%pool)
			}
			got, err := c.MGet(ctx, keys)
			if err == nil && len(got) != len(keys) {
				err = fmt.Errorf("MGet found %d of %d keys", len(got), len(keys))
			}
			return err
		}},
		{"cache", "Incr", nil, func(ctx context.Context, i int) error {
			_, err := c.Incr(ctx, fmt.Sprintf("ctr:%d", i%pool), 1, time.Hour)
			return err
		}},
		{"cache", "GetOrSet (hit)", func(ctx context.Context) error {
			return m.parallel(ctx, pool, func(ctx context.Context, i int) error {
				_, err := c.GetOrSet(ctx, fmt.Sprintf("g:%d", i), time.Hour, load)
				return err
			})
		}, func(ctx context.Context, i int) error {
			_, err := c.GetOrSet(ctx, fmt.Sprintf("g:%d", i%pool), time.Hour, noLoad)
			return err
		}},
		{"cache", "GetOrSet (miss)", nil, func(ctx context.Context, i int) error {
			_, err := c.GetOrSet(ctx, fmt.Sprintf("g:%d", i), time.Hour, load)
			return err
		}},
		{"cache", "Delete", fill(k, "k"), func(ctx context.Context, i int) error {
			return c.Delete(ctx, fmt.Sprintf("k:%d", i))
		}},
	}
	return m.measureAll(ctx, ops)
}

func (m *meter) measureAll(ctx context.Context, ops []op) ([]OpRow, error) {
	rows := make([]OpRow, 0, len(ops))
	for _, o := range ops {
		row, err := m.measure(ctx, o)
		if err != nil {
			return nil, err
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// sentString formats the commands sent per operation: "evalsha 1, hgetall 1".
func sentString(sent map[string]float64) string {
	names := make([]string, 0, len(sent))
	for n := range sent {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = strings.ToUpper(n) + " " + strconv.FormatFloat(math.Round(sent[n]*100)/100, 'f', -1, 64)
	}
	return strings.Join(parts, ", ")
}
