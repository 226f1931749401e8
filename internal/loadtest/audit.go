package loadtest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/cache"
	"github.com/rediskit/rediskit/internal/cachefmt"
	"github.com/rediskit/rediskit/session"
)

// SessionAudit compares the ledger with the sessions Redis holds.
type SessionAudit struct {
	// Deleted is the number of deleted or rotated-away IDs checked;
	// Resurrected those of them a Get still finds.
	Deleted, Resurrected int
	// Live is the number of ledger sessions checked; Missing those a Get
	// no longer finds, Stale those whose value is older than the last
	// acknowledged update.
	Live, Missing, Stale int
	// SessionKeys, Indexes and IndexEntries count what a SCAN found.
	SessionKeys, Indexes, IndexEntries int
	// Leaked counts index entries whose expiry is in the future but whose
	// session key is gone; Unindexed counts user sessions missing from
	// their user's index. IndexNoTTL counts indexes without an expiry
	// (an index must expire with its last session).
	Leaked, Unindexed, IndexNoTTL int
}

// String summarises the audit for a report.
func (a SessionAudit) String() string {
	return fmt.Sprintf("deleted IDs checked %d, resurrected %d; live checked %d, missing %d, stale %d; "+
		"keys: %d sessions, %d indexes (%d without TTL), %d entries, %d leaked entries, %d unindexed sessions",
		a.Deleted, a.Resurrected, a.Live, a.Missing, a.Stale, a.SessionKeys, a.Indexes, a.IndexNoTTL, a.IndexEntries, a.Leaked, a.Unindexed)
}

// AuditSessions checks, through st (a store with the workload's Options over
// rdb, a client without rediskit's breaker), that every ID the ledger saw
// deleted stays gone and that every live session holds its last
// acknowledged value; then it scans prefix on every master and checks that
// each index entry with a future expiry names an existing session and each
// user session is in its index. prefix is the store's Options.Prefix; it
// must hold no glob characters.
func AuditSessions(ctx context.Context, rdb redis.UniversalClient, st *session.Store, prefix string, d *Driver) (SessionAudit, error) {
	var a SessionAudit
	for _, id := range d.Deleted() {
		a.Deleted++
		_, err := st.Get(ctx, id)
		switch {
		case errors.Is(err, session.ErrNotFound):
		case err != nil:
			return a, fmt.Errorf("audit: get deleted session: %w", err)
		default:
			a.Resurrected++
		}
	}
	for _, ls := range d.Live() {
		a.Live++
		s, err := st.Get(ctx, ls.ID)
		if errors.Is(err, session.ErrNotFound) {
			a.Missing++
			continue
		}
		if err != nil {
			return a, fmt.Errorf("audit: get live session: %w", err)
		}
		var n int64
		if err := s.Decode("n", &n); err != nil {
			return a, fmt.Errorf("audit: decode: %w", err)
		}
		if n != ls.N && !(ls.Ambiguous && n == ls.N+1) {
			a.Stale++
		}
	}
	// The users of the live sessions, by handle: what the index check
	// needs, read through the store rather than from its storage format.
	users := map[string]string{}
	if err := st.Iterate(ctx, func(info session.Info) error {
		users[info.Handle] = info.UserID
		return nil
	}); err != nil {
		return a, fmt.Errorf("audit: iterate: %w", err)
	}
	return a, auditIndexes(ctx, rdb, prefix, users, &a)
}

func auditIndexes(ctx context.Context, rdb redis.UniversalClient, prefix string, users map[string]string, a *SessionAudit) error {
	keys, err := ScanKeys(ctx, rdb, prefix+"*")
	if err != nil {
		return err
	}
	now, err := rdb.Time(ctx).Result()
	if err != nil {
		return fmt.Errorf("audit: TIME: %w", err)
	}
	nowMs := float64(now.UnixMilli())
	for _, k := range keys {
		switch {
		case strings.HasSuffix(k, "}:u"):
			a.Indexes++
			if ttl, err := rdb.PTTL(ctx, k).Result(); err == nil && ttl == -1 {
				a.IndexNoTTL++
			}
			entries, err := rdb.ZRangeWithScores(ctx, k, 0, -1).Result()
			if err != nil {
				return fmt.Errorf("audit: index: %w", err)
			}
			base := strings.TrimSuffix(k, "u") + "s:"
			for _, z := range entries {
				a.IndexEntries++
				if z.Score <= nowMs {
					continue // expired: pruned by the next write or Cleanup
				}
				n, err := rdb.Exists(ctx, base+z.Member.(string)).Result()
				if err != nil {
					return fmt.Errorf("audit: exists: %w", err)
				}
				if n == 0 {
					a.Leaked++
				}
			}
		case strings.Contains(k, "}:s:"):
			a.SessionKeys++
			i := strings.LastIndex(k, "}:s:")
			if users[k[i+len("}:s:"):]] == "" {
				continue // anonymous, or not live when the audit iterated
			}
			_, err = rdb.ZScore(ctx, k[:i]+"}:u", k[i+len("}:s:"):]).Result()
			if errors.Is(err, redis.Nil) {
				if ex, _ := rdb.Exists(ctx, k).Result(); ex == 1 {
					a.Unindexed++
				}
				continue
			}
			if err != nil {
				return fmt.Errorf("audit: index entry: %w", err)
			}
		}
	}
	return nil
}

// LeaseAudit counts the stampede leases left in a cache namespace.
type LeaseAudit struct {
	// Keys is the number of keys scanned; Markers the values that are lease
	// markers (cachefmt.Header.Lease); LeaseKeys the separate "#lease{" keys of
	// refreshes; NoTTL those of either kind without an expiry.
	Keys, Markers, LeaseKeys, NoTTL int
}

// Left returns the number of leases found.
func (a LeaseAudit) Left() int { return a.Markers + a.LeaseKeys }

// AuditLeases scans the namespace ns (cache.Cache.Namespace, such as
// "app:v0:") on every master for lease markers and lease keys. ns must hold
// no glob characters.
func AuditLeases(ctx context.Context, rdb redis.UniversalClient, ns string) (LeaseAudit, error) {
	var a LeaseAudit
	// The lease keys are "<prefix>:v<version>#lease{...", the values
	// "<prefix>:v<version>:<key>": one pattern without the last ':' finds both.
	keys, err := ScanKeys(ctx, rdb, strings.TrimSuffix(ns, ":")+"*")
	if err != nil {
		return a, err
	}
	for _, k := range keys {
		a.Keys++
		lease := strings.Contains(k, "#lease{")
		if lease {
			a.LeaseKeys++
		} else {
			v, err := rdb.Get(ctx, k).Result()
			if errors.Is(err, redis.Nil) {
				continue
			}
			if err != nil {
				return a, fmt.Errorf("audit: get: %w", err)
			}
			h, _, err := cachefmt.Decode([]byte(v))
			if err != nil || !h.Lease {
				continue // a counter, or a value
			}
			a.Markers++
		}
		ttl, err := rdb.PTTL(ctx, k).Result()
		if err != nil {
			return a, fmt.Errorf("audit: pttl: %w", err)
		}
		if ttl == -1 {
			a.NoTTL++
		}
	}
	return a, nil
}

// CounterAudit compares the counters with the ledger.
type CounterAudit struct {
	// Acked and Ambiguous sum the ledger over the counters; Applied sums
	// the counters' values (Decr counters negated).
	Acked, Ambiguous, Applied int64
	// Doubled counts counters above acknowledged + ambiguous calls: an
	// increment applied twice. Lost counts counters below the acknowledged
	// calls: an acknowledged increment that is gone.
	Doubled, Lost int
	// LostCalls sums, over the counters below their acknowledged calls,
	// how far below they are: the acknowledged increments that are gone.
	LostCalls int64
}

// String summarises the audit for a report.
func (a CounterAudit) String() string {
	return fmt.Sprintf("applied %d, acknowledged %d, ambiguous %d; counters doubled %d, lost %d (%d acknowledged calls gone)",
		a.Applied, a.Acked, a.Ambiguous, a.Doubled, a.Lost, a.LostCalls)
}

// AuditCounters reads every counter through c (a cache with the workload's
// Options over a client without rediskit's breaker) and checks
// acknowledged ≤ applied ≤ acknowledged + ambiguous for each.
func AuditCounters(ctx context.Context, c *cache.Cache, d *Driver) (CounterAudit, error) {
	var a CounterAudit
	for _, cl := range d.Counters() {
		v, _, err := c.Counter(ctx, cl.Key)
		if err != nil {
			return a, fmt.Errorf("audit: counter %s: %w", cl.Key, err)
		}
		applied := v * cl.Sign
		a.Acked += cl.Acked
		a.Ambiguous += cl.Ambiguous
		a.Applied += applied
		if applied > cl.Acked+cl.Ambiguous {
			a.Doubled++
		}
		if applied < cl.Acked {
			a.Lost++
			a.LostCalls += cl.Acked - applied
		}
	}
	return a, nil
}

// ScanKeys returns the keys matching pattern on every master of rdb (a
// *redis.Client or *redis.ClusterClient), with SCAN.
func ScanKeys(ctx context.Context, rdb redis.UniversalClient, pattern string) ([]string, error) {
	var (
		mu  sync.Mutex
		all []string
	)
	scan := func(ctx context.Context, c *redis.Client) error {
		it := c.Scan(ctx, 0, pattern, 1000).Iterator()
		var keys []string
		for it.Next(ctx) {
			keys = append(keys, it.Val())
		}
		if err := it.Err(); err != nil {
			return fmt.Errorf("audit: scan %s: %w", c.Options().Addr, err)
		}
		mu.Lock()
		all = append(all, keys...)
		mu.Unlock()
		return nil
	}
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		return all, c.ForEachMaster(ctx, scan)
	case *redis.Client:
		return all, scan(ctx, c)
	}
	return nil, fmt.Errorf("audit: unsupported client %T", rdb)
}
