package loadtest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rediskit/rediskit/cache"
)

// Invalidator runs the cache-aside write path beside the Driver's load, to
// show that no cached value is written back over a Delete. The source of
// truth is a version per key, in memory. A writer bumps a key's version and
// then calls Cache.Delete, as an application invalidates after updating its
// database; readers call GetOrSet with a loader that returns the version it
// reads at load time. A load that read version v and is stored after the
// acknowledged Delete that followed the bump to v+1 is a write-back over a
// Delete: AuditInvalidations finds it as a cached version older than the
// one the last acknowledged Delete was for.
type Invalidator struct {
	c     *cache.Cache
	ttl   time.Duration
	keys  []invKey
	reads atomic.Int64
	// Operations that failed, by side.
	readFails, deleteFails, deletes atomic.Int64
}

type invKey struct {
	name  string
	mu    sync.Mutex   // one writer at a time per key
	ver   atomic.Int64 // the truth
	acked atomic.Int64 // the version the last acknowledged Delete followed
}

// NewInvalidator returns an Invalidator over n keys named "inv<i>" in c.
func NewInvalidator(c *cache.Cache, n int, ttl time.Duration) *Invalidator {
	v := &Invalidator{c: c, ttl: ttl, keys: make([]invKey, n)}
	for i := range v.keys {
		v.keys[i].name = "inv" + strconv.Itoa(i)
	}
	return v
}

// Run reads and invalidates until ctx ends: readers GetOrSet a key every
// 5 ms each, one writer bumps and deletes a key every 10 ms. It
// returns when every goroutine it started has ended.
func (v *Invalidator) Run(ctx context.Context, readers int) {
	var wg sync.WaitGroup
	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := r; Sleep(ctx, 5*time.Millisecond); i++ {
				k := &v.keys[i%len(v.keys)]
				octx, cancel := context.WithTimeout(ctx, 2*time.Second)
				_, err := v.c.GetOrSet(octx, k.name, v.ttl, func(context.Context) ([]byte, error) {
					return []byte(strconv.FormatInt(k.ver.Load(), 10)), nil
				})
				cancel()
				v.reads.Add(1)
				if err != nil && ctx.Err() == nil {
					v.readFails.Add(1)
				}
			}
		}()
	}
	for i := 0; Sleep(ctx, 10*time.Millisecond); i++ {
		k := &v.keys[(i*7)%len(v.keys)]
		k.mu.Lock()
		nv := k.ver.Add(1)
		octx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := v.c.Delete(octx, k.name)
		cancel()
		v.deletes.Add(1)
		if err == nil {
			k.acked.Store(nv)
		} else {
			v.deleteFails.Add(1)
		}
		k.mu.Unlock()
	}
	wg.Wait()
}

// Sleep waits for d or until ctx ends; it reports whether d passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// InvalidationAudit is what AuditInvalidations found.
type InvalidationAudit struct {
	// Reads and Deletes count the calls Run made; ReadFails and
	// DeleteFails those that returned an error.
	Reads, ReadFails, Deletes, DeleteFails int64
	// Keys is the number of keys checked; Cached those holding a value.
	Keys, Cached int
	// WrittenBack counts keys whose cached version is older than the
	// version their last acknowledged Delete followed; Examples names a few.
	WrittenBack int
	Examples    []string
}

// String summarises the audit for a report.
func (a InvalidationAudit) String() string {
	return fmt.Sprintf("%d reads (%d failed), %d deletes (%d failed); %d keys, %d cached, %d written back over a Delete",
		a.Reads, a.ReadFails, a.Deletes, a.DeleteFails, a.Keys, a.Cached, a.WrittenBack)
}

// AuditInvalidations reads every key through c (a cache with the same
// Options over a client without rediskit's breaker), after Run returned.
func (v *Invalidator) AuditInvalidations(ctx context.Context, c *cache.Cache) (InvalidationAudit, error) {
	a := InvalidationAudit{Reads: v.reads.Load(), ReadFails: v.readFails.Load(),
		Deletes: v.deletes.Load(), DeleteFails: v.deleteFails.Load()}
	for i := range v.keys {
		k := &v.keys[i]
		a.Keys++
		b, ok, err := c.Get(ctx, k.name)
		if err != nil {
			return a, fmt.Errorf("audit: get %s: %w", k.name, err)
		}
		if !ok {
			continue
		}
		a.Cached++
		got, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return a, errors.New("audit: cached value " + strconv.Quote(string(b)) + " is not a version")
		}
		if got < k.acked.Load() {
			a.WrittenBack++
			if len(a.Examples) < 5 {
				a.Examples = append(a.Examples, fmt.Sprintf("%s holds version %d, deleted after version %d", k.name, got, k.acked.Load()))
			}
		}
	}
	return a, nil
}
