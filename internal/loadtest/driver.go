package loadtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rediskit/rediskit"
	"github.com/rediskit/rediskit/cache"
	"github.com/rediskit/rediskit/retry"
	"github.com/rediskit/rediskit/session"
)

// Kind is one kind of operation of the workload.
type Kind int

// The operation kinds. Reads are SessionGet and CacheGet.
const (
	SessionCreate Kind = iota
	SessionGet
	SessionUpdate
	SessionRotate
	SessionDelete
	CacheGet
	CacheGetOrSet
	CacheMSet
	CacheIncr // Incr on even counters, Decr on odd ones
	NumKinds
)

var kindNames = [NumKinds]string{
	"session.create", "session.get", "session.update", "session.rotate", "session.delete",
	"cache.get", "cache.getorset", "cache.mset", "cache.incr",
}

// String returns the kind's name, such as "session.get".
func (k Kind) String() string {
	if k < 0 || k >= NumKinds {
		return "kind(" + strconv.Itoa(int(k)) + ")"
	}
	return kindNames[k]
}

// IsRead reports whether k only reads: SessionGet (which may also slide the
// idle expiry) and CacheGet.
func (k Kind) IsRead() bool { return k == SessionGet || k == CacheGet }

// DefaultMix is the relative weight of each kind when Config.Mix is zero:
// reads dominate, as in a web application.
var DefaultMix = [NumKinds]int{
	SessionCreate: 10, SessionGet: 30, SessionUpdate: 10, SessionRotate: 4, SessionDelete: 4,
	CacheGet: 20, CacheGetOrSet: 12, CacheMSet: 4, CacheIncr: 6,
}

// Outcome is how one operation ended.
type Outcome int

// The outcomes. Every operation ends in exactly one.
const (
	// OK is a success (a cache miss is a success too).
	OK Outcome = iota
	// NotFound is session.ErrNotFound for a session the ledger holds as
	// live: its data is gone (a restart without persistence, a failover
	// that lost writes).
	NotFound
	// Stale is a session read that returned an older value than the last
	// acknowledged update: an acknowledged write was lost.
	Stale
	// Breaker is rediskit.ErrCircuitOpen: refused without contacting Redis.
	Breaker
	// Unavailable is another retry.ErrUnavailable (a closed client).
	Unavailable
	// Ambiguous is retry.ErrAmbiguous: a write that may or may not have
	// been applied.
	Ambiguous
	// Transient is a network or server failure (retry.ClassTransient) on a
	// command that was not applied or was safe to repeat.
	Transient
	// Deadline is the operation's own context ending first.
	Deadline
	// Other is anything else: a wrong value, ErrCorrupt, an error reply.
	Other
	NumOutcomes
)

var outcomeNames = [NumOutcomes]string{
	"ok", "not_found", "stale", "breaker_open", "unavailable", "ambiguous", "transient", "deadline", "other",
}

// String returns the outcome's name, such as "breaker_open".
func (o Outcome) String() string {
	if o < 0 || o >= NumOutcomes {
		return "outcome(" + strconv.Itoa(int(o)) + ")"
	}
	return outcomeNames[o]
}

// Classify maps an error returned by rediskit, session or cache to an
// Outcome. session.ErrNotFound maps to NotFound.
func Classify(err error) Outcome {
	switch {
	case err == nil:
		return OK
	case errors.Is(err, session.ErrNotFound):
		return NotFound
	case errors.Is(err, retry.ErrAmbiguous):
		// Before the breaker: an ambiguous write may wrap the breaker's
		// refusal of its re-send, after an attempt that may have run.
		return Ambiguous
	case errors.Is(err, rediskit.ErrCircuitOpen):
		return Breaker
	}
	switch retry.Classify(err) {
	case retry.ClassUnavailable:
		return Unavailable
	case retry.ClassAmbiguous:
		return Ambiguous
	case retry.ClassTransient:
		return Transient
	case retry.ClassCaller:
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return Deadline
		}
	}
	return Other
}

// Config configures a Driver. Client, Store and Cache are required; every
// other zero field means its default.
type Config struct {
	// Client is the connection the workload goes through; the driver reads
	// its breaker state. Store and Cache must use Client.Redis().
	Client *rediskit.Client
	Store  *session.Store
	Cache  *cache.Cache

	// Rate is the number of operations started per second. Default 500.
	Rate int
	// Duration is how long Run sends operations. Default 5 s.
	Duration time.Duration
	// Workers is the number of goroutines running operations; an operation
	// due while every worker is busy is shed (counted, not run). Default 64.
	Workers int
	// OpTimeout bounds one operation (its context). Default 3 s.
	OpTimeout time.Duration

	// Users is the number of distinct user IDs sessions are created for.
	// Default 50.
	Users int
	// MaxLive caps the sessions the ledger keeps live; at the cap a create
	// becomes a delete. Default 1000.
	MaxLive int
	// CacheKeys is the size of the cache key space. Default 1000.
	CacheKeys int
	// Counters is the number of counters Incr and Decr spread over.
	// Default 8.
	Counters int
	// CacheTTL is the TTL of cache values (counters have none). Default 1 min.
	CacheTTL time.Duration
	// Mix weighs the operation kinds. Default DefaultMix.
	Mix [NumKinds]int
	// Seed makes the sequence of operations repeatable. Default 1.
	Seed uint64
}

func (c Config) withDefaults() (Config, error) {
	if c.Client == nil || c.Store == nil || c.Cache == nil {
		return c, errors.New("loadtest: Config.Client, Store and Cache are required")
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.Rate, 500)
	def(&c.Workers, 64)
	def(&c.Users, 50)
	def(&c.MaxLive, 1000)
	def(&c.CacheKeys, 1000)
	def(&c.Counters, 8)
	if c.Duration <= 0 {
		c.Duration = 5 * time.Second
	}
	if c.OpTimeout <= 0 {
		c.OpTimeout = 3 * time.Second
	}
	if c.CacheTTL <= 0 {
		c.CacheTTL = time.Minute
	}
	if c.Mix == [NumKinds]int{} {
		c.Mix = DefaultMix
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	return c, nil
}

// Driver runs the workload. Create it with New, announce faults with Fault
// while Run is running, then read the ledger with the audit functions.
type Driver struct {
	cfg      Config
	total    int // sum of Mix
	slow     time.Duration
	ledger   ledger
	counters []counter

	offered, shed atomic.Int64
	kinds         [NumKinds]kindStats

	// Calls started while the breaker was open, and the longest of them
	// (kindStats.openSlow counts those that took the read timeout).
	openStarted, openMaxNs atomic.Int64

	panics     atomic.Int64
	mu         sync.Mutex // guards the fields below
	panicStack string
	others     []string
	samples    [NumOutcomes]string // the first error of each outcome
	faults     []*fault
	ran        bool
}

type kindStats struct {
	attempted atomic.Int64
	outcomes  [NumOutcomes]atomic.Int64
	maxNs     atomic.Int64
	openSlow  atomic.Int64 // started while the breaker was open, took ≥ ReadTimeout
}

type counter struct {
	key          string
	sign         int64 // +1 for Incr, -1 for Decr
	acked, ambig atomic.Int64
	failed       atomic.Int64
}

type fault struct {
	name        string
	start, end  time.Time
	firstOK     time.Time
	firstOKKind [NumKinds]time.Time
	lastFail    time.Time
}

// New checks cfg and returns a Driver.
func New(cfg Config) (*Driver, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	d := &Driver{cfg: cfg, slow: cfg.Client.Config().ReadTimeout}
	for _, w := range cfg.Mix {
		d.total += max(w, 0)
	}
	if d.total == 0 {
		return nil, errors.New("loadtest: Config.Mix has no positive weight")
	}
	d.ledger.maxLive = cfg.MaxLive
	d.counters = make([]counter, cfg.Counters)
	for i := range d.counters {
		d.counters[i].key = "ctr" + strconv.Itoa(i)
		d.counters[i].sign = 1
		if i%2 == 1 {
			d.counters[i].sign = -1
		}
	}
	return d, nil
}

// Fault records that a fault begins now and returns the function that
// records its end. Recovery is measured from the end: the first operation
// that succeeds after it. For an instant fault (a kill that is never undone,
// such as a failover) call end at once: recovery then runs from the kill.
// Calling end more than once keeps the first time.
func (d *Driver) Fault(name string) (end func()) {
	f := &fault{name: name, start: time.Now()}
	d.mu.Lock()
	d.faults = append(d.faults, f)
	d.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			d.mu.Lock()
			f.end = time.Now()
			d.mu.Unlock()
		})
	}
}

// Run sends operations at Config.Rate for Config.Duration, or until ctx
// ends, waits for the operations in flight and returns the figures. Every
// goroutine it starts has ended when it returns. Run may be called once.
func (d *Driver) Run(ctx context.Context) *Result {
	d.mu.Lock()
	if d.ran {
		d.mu.Unlock()
		panic("loadtest: Driver.Run called twice")
	}
	d.ran = true
	d.mu.Unlock()

	jobs := make(chan Kind) // unbuffered: a send succeeds only on an idle worker
	var wg sync.WaitGroup
	for i := range d.cfg.Workers {
		wg.Add(1)
		go func(id uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(d.cfg.Seed, id+1))
			for k := range jobs {
				d.do(ctx, k, rng)
			}
		}(uint64(i))
	}

	rng := rand.New(rand.NewPCG(d.cfg.Seed, 0))
	start := time.Now()
	deadline := start.Add(d.cfg.Duration)
	tick := time.NewTicker(5 * time.Millisecond)
	var issued int64
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case now := <-tick.C:
			deadline := d.stopAt(deadline)
			if now.After(deadline) {
				now = deadline
			}
			due := int64(now.Sub(start).Seconds() * float64(d.cfg.Rate))
			for ; issued < due; issued++ {
				d.offered.Add(1)
				select {
				case jobs <- d.pick(rng):
				default:
					d.shed.Add(1)
				}
			}
			if !now.Before(deadline) {
				break loop
			}
		}
	}
	tick.Stop()
	close(jobs)
	wg.Wait()
	return d.result(time.Since(start))
}

// recoveryTail is how long the load goes on after the last fault ended, so
// that every fault is followed by operations that show whether it
// recovered; maxOverrun bounds how far that pushes a run past its Duration.
const (
	recoveryTail = time.Second
	maxOverrun   = time.Minute
)

// stopAt returns when the load may stop: the run's deadline, or later while
// a fault announced with Fault is still on or ended less than recoveryTail
// ago. A fault that ends just before the deadline (a reshard slowed by a
// loaded machine) would otherwise leave no operation after it, and look as
// if it never recovered.
func (d *Driver) stopAt(deadline time.Time) time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	at := deadline
	for _, f := range d.faults {
		if f.end.IsZero() {
			return deadline.Add(maxOverrun)
		}
		if t := f.end.Add(recoveryTail); t.After(at) {
			at = t
		}
	}
	if limit := deadline.Add(maxOverrun); at.After(limit) {
		return limit
	}
	return at
}

func (d *Driver) pick(rng *rand.Rand) Kind {
	n := rng.IntN(d.total)
	for k, w := range d.cfg.Mix {
		if w <= 0 {
			continue
		}
		if n < w {
			return Kind(k)
		}
		n -= w
	}
	return SessionGet
}

// do runs one operation and records it. A panic is recovered and counted:
// the scenarios assert there are none.
func (d *Driver) do(ctx context.Context, k Kind, rng *rand.Rand) {
	defer func() {
		if r := recover(); r != nil {
			d.panics.Add(1)
			d.mu.Lock()
			if d.panicStack == "" {
				d.panicStack = fmt.Sprintf("%v\n%s", r, debug.Stack())
			}
			d.mu.Unlock()
		}
	}()
	open := d.cfg.Client.BreakerState() == rediskit.BreakerOpen
	start := time.Now()
	octx, cancel := context.WithTimeout(ctx, d.cfg.OpTimeout)
	k, out, err := d.op(octx, k, rng)
	cancel()
	done := time.Now()
	lat := done.Sub(start)

	ks := &d.kinds[k]
	ks.attempted.Add(1)
	ks.outcomes[out].Add(1)
	storeMax(&ks.maxNs, int64(lat))
	if open {
		d.openStarted.Add(1)
		storeMax(&d.openMaxNs, int64(lat))
		if d.slow > 0 && lat >= d.slow {
			ks.openSlow.Add(1)
		}
	}
	if out == Other {
		d.noteOther(k, err)
	} else if err != nil {
		d.mu.Lock()
		if d.samples[out] == "" {
			d.samples[out] = k.String() + ": " + err.Error()
		}
		d.mu.Unlock()
	}
	d.observe(k, out, done)
}

// Count returns how many operations of kind k have ended with outcome out
// so far; it may be called while Run runs (the Sentinel scenario counts the
// writes acknowledged around each kill).
func (d *Driver) Count(k Kind, out Outcome) int64 {
	if k < 0 || k >= NumKinds || out < 0 || out >= NumOutcomes {
		return 0
	}
	return d.kinds[k].outcomes[out].Load()
}

func storeMax(v *atomic.Int64, x int64) {
	for {
		cur := v.Load()
		if x <= cur || v.CompareAndSwap(cur, x) {
			return
		}
	}
}

func (d *Driver) noteOther(k Kind, err error) {
	msg := k.String() + ": "
	if err != nil {
		msg += err.Error()
	} else {
		msg += "unexpected value"
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, m := range d.others {
		if m == msg {
			return
		}
	}
	if len(d.others) < 8 {
		d.others = append(d.others, msg)
	}
}

// observe feeds one completed operation to the recovery figures of every
// fault: an answer from Redis (OK or NotFound) after a fault's end is a
// recovery; a failure after the start of the latest fault extends its
// error window.
func (d *Driver) observe(k Kind, out Outcome, at time.Time) {
	answered := out == OK || out == NotFound
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, f := range d.faults {
		if answered {
			if !f.end.IsZero() && !at.Before(f.end) {
				if f.firstOK.IsZero() {
					f.firstOK = at
				}
				if f.firstOKKind[k].IsZero() {
					f.firstOKKind[k] = at
				}
			}
		} else if i == len(d.faults)-1 && !at.Before(f.start) {
			f.lastFail = at
		}
	}
}

// op runs one operation of kind k (or a create or delete in its place when
// the ledger is empty or full) and returns the kind it ran.
func (d *Driver) op(ctx context.Context, k Kind, rng *rand.Rand) (Kind, Outcome, error) {
	switch k {
	case CacheGet, CacheGetOrSet, CacheMSet, CacheIncr:
		return d.cacheOp(ctx, k, rng)
	case SessionCreate:
		if d.ledger.full() {
			k = SessionDelete
		} else {
			out, err := d.create(ctx, rng)
			return SessionCreate, out, err
		}
	}
	e := d.ledger.take(rng)
	if e == nil {
		out, err := d.create(ctx, rng)
		return SessionCreate, out, err
	}
	st := d.cfg.Store
	switch k {
	case SessionGet:
		s, err := st.Get(ctx, e.id)
		if err != nil {
			return k, d.settle(e, err), err
		}
		var n int64
		if err := s.Decode("n", &n); err != nil {
			d.ledger.put(e)
			return k, Other, err
		}
		switch {
		case n == e.n:
		case e.amb && n == e.n+1:
			e.n++
		default:
			d.ledger.put(e)
			return k, Stale, fmt.Errorf("session n = %d, acknowledged %d", n, e.n)
		}
		e.amb = false
		d.ledger.put(e)
		return k, OK, nil
	case SessionUpdate:
		_, err := st.Update(ctx, e.id, session.Changes{Set: map[string]any{"n": e.n + 1}})
		if err == nil {
			e.n++
			e.amb = false
			d.ledger.put(e)
			return k, OK, nil
		}
		out := Classify(err)
		if out != Ambiguous {
			return k, d.settle(e, err), err
		}
		// The stored n is e.n or e.n+1; the next acknowledged update
		// writes e.n+1 again, which settles it either way.
		e.amb = true
		d.ledger.put(e)
		return k, out, err
	case SessionRotate:
		nid, err := st.Rotate(ctx, e.id)
		if err == nil {
			d.ledger.deleted(e.id)
			e.id = nid
			d.ledger.put(e)
			return k, OK, nil
		}
		return k, d.settle(e, err), err
	default: // SessionDelete
		existed, err := st.Delete(ctx, e.id)
		if err == nil {
			d.ledger.deleted(e.id)
			d.ledger.drop()
			if !existed {
				return k, NotFound, nil
			}
			return k, OK, nil
		}
		return k, d.settle(e, err), err
	}
}

// settle returns e to the ledger after a failed call, or drops it when the
// session is gone (NotFound) or its state is unknown: an ambiguous rotate or
// delete may have killed the ID.
func (d *Driver) settle(e *entry, err error) Outcome {
	out := Classify(err)
	switch out {
	case NotFound:
		d.ledger.drop()
	case Ambiguous:
		d.ledger.uncertain.Add(1)
		d.ledger.drop()
	default:
		d.ledger.put(e)
	}
	return out
}

func (d *Driver) create(ctx context.Context, rng *rand.Rand) (Outcome, error) {
	user := "user" + strconv.Itoa(rng.IntN(d.cfg.Users))
	s, err := d.cfg.Store.Create(ctx, user, map[string]any{"n": 0}, session.CreateOptions{IP: "127.0.0.1", UserAgent: "loadtest"})
	if err != nil {
		out := Classify(err)
		if out == Ambiguous {
			d.ledger.uncertain.Add(1)
		}
		return out, err
	}
	d.ledger.add(&entry{id: s.ID()})
	return OK, nil
}

func cacheValue(key string) []byte { return []byte("v:" + key) }

func (d *Driver) cacheOp(ctx context.Context, k Kind, rng *rand.Rand) (Kind, Outcome, error) {
	c := d.cfg.Cache
	key := func() string { return "k" + strconv.Itoa(rng.IntN(d.cfg.CacheKeys)) }
	switch k {
	case CacheGet:
		key := key()
		v, ok, err := c.Get(ctx, key)
		if err != nil {
			return k, Classify(err), err
		}
		if ok && string(v) != string(cacheValue(key)) {
			return k, Other, fmt.Errorf("cache get %s: wrong value", key)
		}
		return k, OK, nil
	case CacheGetOrSet:
		key := key()
		v, err := c.GetOrSet(ctx, key, d.cfg.CacheTTL, func(context.Context) ([]byte, error) {
			return cacheValue(key), nil
		})
		if err != nil {
			return k, Classify(err), err
		}
		if string(v) != string(cacheValue(key)) {
			return k, Other, fmt.Errorf("cache getorset %s: wrong value", key)
		}
		return k, OK, nil
	case CacheMSet:
		items := make(map[string][]byte, 4)
		for range 4 {
			key := key()
			items[key] = cacheValue(key)
		}
		err := c.MSet(ctx, items, d.cfg.CacheTTL)
		return k, Classify(err), err
	default: // CacheIncr
		ctr := &d.counters[rng.IntN(len(d.counters))]
		var err error
		if ctr.sign > 0 {
			_, err = c.Incr(ctx, ctr.key, 1, 0)
		} else {
			_, err = c.Decr(ctx, ctr.key, 1, 0)
		}
		out := Classify(err)
		switch out {
		case OK:
			ctr.acked.Add(1)
		case Ambiguous:
			ctr.ambig.Add(1)
		default:
			ctr.failed.Add(1)
		}
		return k, out, err
	}
}
