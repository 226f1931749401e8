package cache

import (
	"sync"
	"time"

	"github.com/rediskit/rediskit/retry"
)

// Group commit. On Redis 7.0 a commit is a Lua call (scriptCommit), and the
// call itself costs the server more than the GET and SET it runs: about
// 3 µs of the 4.1 µs a commit takes, while one call committing 8 keys takes
// 23 µs, 2.9 µs a key (INFO commandstats, bench/CACHE.md). Up to
// commitWires commit calls may be on the wire at once; while they all are,
// the commits that come meanwhile wait together and then go as one
// scriptCommitGroup call, each waiting at most for the round trip of a
// call ahead of it (TestCommitGroup, TestCommitWires). A lone miss commits
// alone at once; while commands overlap, a commit that finds a wire free
// first yields once, so that the commits arriving with it share its call
// (gather, TestCommitGroupGathers).
//
// The wire is the client's pooled connections, never the AutoPipeliner:
// go-redis's blocking AutoPipeliner holds a batch until every caller its
// last batch woke has sent its next command, and the callers waiting here
// would send theirs only after the commit held in that batch returned (a
// stall the length of the pipeliner's silence gap, measured at 16
// goroutines).
//
// A group needs its keys on one server and one trace per command, so it is
// used only on a *redis.Client (standalone or Sentinel), without a Tracer,
// and not with PipelineAlways, which sends every command through the
// AutoPipeliner. Where it is used, GetOrSetMany's batch commits go as the
// same call too (groupCommits).

// KEYS: value keys holding marker leases. ARGV: channel, event prefix, then
// for each key its proof, value and ttl ms (0 none). scriptCommit for each
// key, in one call; as safe to re-send.
var scriptCommitGroup = retry.NewScript(`
for i = 1, #KEYS do
  local a = i * 3
  local p = ARGV[a]
  local cur = redis.call('GET', KEYS[i])
  if cur == p or cur == p .. '+' then
    if ARGV[a+2] == '0' then
      redis.call('SET', KEYS[i], ARGV[a+1])
    else
      redis.call('SET', KEYS[i], ARGV[a+1], 'PX', ARGV[a+2])
    end
    if cur ~= p then redis.call('PUBLISH', ARGV[1], ARGV[2] .. KEYS[i]) end
  end
end
return 0`)

// A group call carries at most maxGroup keys and maxGroupBytes of values.
// A commit that would overfill the group accepting commits closes it, to
// wait for a wire in turn, and opens the next; one whose value alone is
// larger goes alone. Before, such a commit went alone at once, a round
// trip of its own on a pooled connection: at 128 goroutines those commits
// took 28 % of the client's CPU (bench/CACHE.md, "Full groups queue").
const (
	maxGroup      = 64
	maxGroupBytes = 1 << 20
)

// commitWires is how many commit calls may be on the wire at once. With
// one, a commit that found it taken waited for the whole round trip of the
// call ahead, and at 16 goroutines a miss ran at 0.76× go-redis/cache's
// Once auto-pipelined; with four, 0.94× in the same interleaved rounds,
// the server's CPU a miss unchanged (bench/CACHE.md, "Four commits on the
// wire"). TestCommitWires.
const commitWires = 4

// commitGroup holds the commit calls on the wire and the groups waiting
// for one.
type commitGroup struct {
	mu      sync.Mutex
	sending int             // commit calls (alone or groups) on the wire
	wires   int             // how many may be on it at once
	full    []*pendingGroup // closed groups waiting for a wire, oldest first
	next    *pendingGroup   // the group accepting commits; nil: none
	// yield is what a commit that takes a free wire under load does
	// before it sends: runtime.Gosched, which tests replace.
	yield func()
}

// groupCall is the keys and arguments of one scriptCommitGroup call.
type groupCall struct {
	keys  []string
	args  []any
	bytes int // of the values
}

func (c *Cache) newGroupCall() groupCall {
	return groupCall{args: []any{c.channelArg, evArg(evStored)}}
}

// fits reports whether a commit of a value of n bytes may join g: an empty
// call takes any value no larger than maxGroupBytes.
func (g *groupCall) fits(n int) bool {
	return len(g.keys) < maxGroup && g.bytes+n <= maxGroupBytes
}

// cmd is the call that commits g's keys: scriptCommitGroup, or for a
// single key its scriptCommit, which costs the server less.
func (g *groupCall) cmd() settleCmd {
	if len(g.keys) == 1 { // args: channel, event prefix, proof, value, ttl
		proof, _ := g.args[2].([]byte)
		value, _ := g.args[3].([]byte)
		ms, _ := g.args[4].(int64)
		return markerCommitCmd(g.keys, proof, value, ms, g.args[0], g.args[1])
	}
	return settleCmd{scriptCommitGroup, g.keys, g.args}
}

// add adds the commit of value for ms (0 none) under the marker proof in key.
func (g *groupCall) add(key string, proof, value []byte, ms int64) {
	g.keys = append(g.keys, key)
	g.args = append(g.args, proof, value, ms)
	g.bytes += len(value)
}

// pendingGroup is commits waiting for a wire. The first to join leads it:
// it sends the group when a wire is handed to it, and tells the rest.
type pendingGroup struct {
	groupCall
	wire   chan struct{} // closed when a wire is this group's
	done   chan struct{} // closed when the group's call returned
	onWire bool          // a wire is this group's (under commitGroup.mu)
}

// groupCommit commits the marker lease l (scriptCommit's work): alone when
// a wire is free and commands do not overlap, otherwise with the commits
// gathering on a wire or waiting for one.
func (c *Cache) groupCommit(l lease, value []byte, ttl time.Duration) {
	g := &c.group
	g.mu.Lock()
	pg := g.next
	large := len(value) > maxGroupBytes
	if pg != nil && !large && !pg.fits(len(value)) {
		if !pg.onWire { // one holding a wire is about to leave
			g.full = append(g.full, pg)
		}
		g.next, pg = nil, nil
	}
	wire := g.sending < g.wires
	switch {
	case wire && (large || pg == nil && !c.reader.Overlapping()):
		g.sending++
		g.mu.Unlock()
		c.commitAlone(l, value, ttl)
		c.passWire()
		return
	case large:
		g.mu.Unlock()
		c.commitAlone(l, value, ttl)
		return
	case wire && pg == nil:
		c.gather(l, value, ttl) // unlocks g.mu
		return
	}
	lead := pg == nil
	if lead {
		pg = &pendingGroup{groupCall: c.newGroupCall(), wire: make(chan struct{}), done: make(chan struct{})}
		g.next = pg
	}
	pg.add(l.keys[0], l.proof, value, ttl.Milliseconds())
	g.mu.Unlock()
	if !lead {
		<-pg.done
		return
	}
	<-pg.wire
	c.sendGroup(pg)
}

// gather commits l, with g.mu held and a wire free while commands
// overlap: it takes the wire, opens a group that commits arriving
// meanwhile join, and yields the processor once before it sends. Under
// load the flights woken by one batch of lease replies reach their commits
// together; without the yield the first would go alone and the rest as a
// second call (at 16 goroutines a call carried 6 keys, with the yield 8.6:
// bench/CACHE.md, "Gathering the first commit"). TestCommitGroupGathers.
func (c *Cache) gather(l lease, value []byte, ttl time.Duration) {
	g := &c.group
	g.sending++
	pg := &pendingGroup{groupCall: c.newGroupCall(), done: make(chan struct{}), onWire: true}
	pg.add(l.keys[0], l.proof, value, ttl.Milliseconds())
	g.next = pg
	g.mu.Unlock()
	g.yield()
	c.sendGroup(pg)
}

// sendGroup closes pg, which holds the wire, sends it and hands the wire on.
func (c *Cache) sendGroup(pg *pendingGroup) {
	g := &c.group
	g.mu.Lock()
	if g.next == pg {
		g.next = nil // the group is closed: later commits form the next one
	}
	g.mu.Unlock()
	_ = pg.cmd().run(c.life.settle, c.rdb)
	close(pg.done)
	c.passWire()
}

// commitAlone runs scriptCommit for l on the pooled connections.
func (c *Cache) commitAlone(l lease, value []byte, ttl time.Duration) {
	_ = c.commitCmd(l, value, ttl).run(c.life.settle, c.rdb)
}

// passWire hands the wire the caller holds to the oldest group waiting
// for one, or frees it; never to a group gathering on another wire
// (TestCommitWiresPassOverGathering).
func (c *Cache) passWire() {
	g := &c.group
	g.mu.Lock()
	pg := g.next
	if pg != nil && pg.onWire { // gathering on another wire
		pg = nil
	}
	if len(g.full) > 0 {
		pg = g.full[0]
		g.full[0] = nil
		g.full = g.full[1:]
	}
	if pg == nil {
		g.sending--
	} else {
		pg.onWire = true
	}
	g.mu.Unlock()
	if pg != nil {
		close(pg.wire)
	}
}
