package cache

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// counters are the hot-path statistics: one atomic add each.
type counters struct {
	hits, misses, loads, dedupLoads, loaderErrors atomic.Uint64
	staleServed, leaseWaits, decodeFailures       atomic.Uint64
	loadNanos                                     atomic.Int64

	// win samples the hit ratio for GetOrSet's read-first choice.
	win struct {
		n            atomic.Uint32
		hits, misses atomic.Uint64 // hits and misses when the window began
		readFirst    atomic.Bool
	}
}

// hitWindow is how many GetOrSets a hit-ratio sample spans.
const hitWindow = 256

// sample counts one GetOrSet; every hitWindow of them it sets readFirst
// when at least 7 reads in 8 hit since the last sample (Get's count too).
// Two callers closing one window at once only make one sample shorter.
func (s *counters) sample() {
	if s.win.n.Add(1)%hitWindow != 0 {
		return
	}
	h, m := s.hits.Load(), s.misses.Load()
	dh, dm := h-s.win.hits.Swap(h), m-s.win.misses.Swap(m)
	s.win.readFirst.Store(dh > 0 && dh >= 7*dm)
}

// Stats is a snapshot of a Cache's statistics. The counters are this
// process's, since New; the memory figures are read from Redis by Stats.
type Stats struct {
	// Hits counts reads (Get, MGet keys, GetOrSet) answered from Redis,
	// stale values served included.
	Hits uint64
	// Misses counts reads that found nothing usable.
	Misses uint64
	// HitRatio is Hits / (Hits + Misses), 0 before any read.
	HitRatio float64
	// Loads counts loader calls in this process.
	Loads uint64
	// DedupLoads counts GetOrSet misses that shared a load already running
	// in this process instead of starting one.
	DedupLoads uint64
	// LoaderErrors counts loader calls that failed or panicked (ErrNotFound
	// is not a failure).
	LoaderErrors uint64
	// LoaderTime is the total time spent in loaders; LoaderTime / Loads is
	// the mean loader latency.
	LoaderTime time.Duration
	// StaleServed counts stale values returned (stale-while-revalidate and
	// stale-if-error).
	StaleServed uint64
	// LeaseWaits counts loads that waited for another process's lease.
	LeaseWaits uint64
	// DecodeFailures counts stored values that could not be decoded
	// (another format version or codec, corrupt) and were deleted.
	DecodeFailures uint64

	// UsedMemory is INFO memory used_memory summed over every master, in
	// bytes (0 from LocalStats).
	UsedMemory int64
	// SampledKeys is how many keys of the namespace were sampled with
	// MEMORY USAGE (up to Options.MemorySample per master).
	SampledKeys int
	// SampledBytes is the MEMORY USAGE of the sampled keys, summed;
	// SampledBytes / SampledKeys estimates the size of one entry.
	SampledBytes int64
}

// LocalStats returns the statistics kept in this process (hits, misses,
// loads, ...; no Redis figures) without any I/O.
func (c *Cache) LocalStats() Stats {
	s := Stats{
		Hits:           c.st.hits.Load(),
		Misses:         c.st.misses.Load(),
		Loads:          c.st.loads.Load(),
		DedupLoads:     c.st.dedupLoads.Load(),
		LoaderErrors:   c.st.loaderErrors.Load(),
		LoaderTime:     time.Duration(c.st.loadNanos.Load()),
		StaleServed:    c.st.staleServed.Load(),
		LeaseWaits:     c.st.leaseWaits.Load(),
		DecodeFailures: c.st.decodeFailures.Load(),
	}
	if n := s.Hits + s.Misses; n > 0 {
		s.HitRatio = float64(s.Hits) / float64(n)
	}
	return s
}

// Stats returns the counters plus Redis memory: used_memory summed over the
// masters and a MEMORY USAGE sample of the namespace's keys (one SCAN and one
// pipeline per master). On error the counters are still returned.
func (c *Cache) Stats(ctx context.Context) (Stats, error) {
	s := c.LocalStats()
	var mu sync.Mutex
	err := c.forEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		info, err := node.Info(ctx, "memory").Result()
		if err != nil {
			return err
		}
		used, err := parseUsedMemory(info)
		if err != nil {
			return err
		}
		var keys []string
		if c.opt.MemorySample > 0 {
			keys, _, err = node.Scan(ctx, 0, escapeGlob(c.ns)+"*", max(c.opt.ScanCount, int64(c.opt.MemorySample))).Result()
			if err != nil {
				return err
			}
			keys = keys[:min(len(keys), c.opt.MemorySample)]
		}
		var bytes int64
		if len(keys) > 0 {
			cmds, err := node.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, k := range keys {
					p.MemoryUsage(ctx, k)
				}
				return nil
			})
			if err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
			for _, cmd := range cmds {
				n, _ := cmd.(*redis.IntCmd).Result() // a key gone since the SCAN reads as 0
				bytes += n
			}
		}
		mu.Lock()
		s.UsedMemory += used
		s.SampledKeys += len(keys)
		s.SampledBytes += bytes
		mu.Unlock()
		return nil
	})
	if err != nil {
		return s, fmt.Errorf("cache: stats: %w", err)
	}
	return s, nil
}

func parseUsedMemory(info string) (int64, error) {
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, errors.New("no used_memory in INFO memory")
}

// forEachMaster runs fn on every master, concurrently on Cluster.
func (c *Cache) forEachMaster(ctx context.Context, fn func(context.Context, *redis.Client) error) error {
	switch r := c.rdb.(type) {
	case *redis.Client:
		return fn(ctx, r)
	case *redis.ClusterClient:
		return r.ForEachMaster(ctx, fn)
	case *redis.Ring:
		return r.ForEachShard(ctx, fn)
	}
	return fmt.Errorf("%w: %T", ErrUnsupportedClient, c.rdb)
}
