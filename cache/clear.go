package cache

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/retry"
)

// Pattern is a Redis glob over the keys of one namespace, built from literal
// text (escaped: it matches only itself) and explicit wildcards. User input
// goes through Literal or Pattern.Lit, so it can never widen a pattern; Glob
// is for patterns written by the programmer.
type Pattern struct{ glob string }

// Literal returns a pattern matching exactly the key s.
func Literal(s string) Pattern { return Pattern{escapeGlob(s)} }

// Prefix returns a pattern matching every key that starts with s.
func Prefix(s string) Pattern { return Pattern{escapeGlob(s) + "*"} }

// Glob returns the Redis glob g as is ('*', '?', '[...]' and '\' keep their
// meaning). g must not contain user input: use Literal, Prefix or Lit for
// that.
func Glob(g string) Pattern { return Pattern{g} }

// Lit returns p followed by the literal text s.
func (p Pattern) Lit(s string) Pattern { return Pattern{p.glob + escapeGlob(s)} }

// Any returns p followed by '*' (any run of characters).
func (p Pattern) Any() Pattern { return Pattern{p.glob + "*"} }

// String returns the glob, relative to the namespace.
func (p Pattern) String() string { return p.glob }

// escapeGlob escapes the characters Redis glob matching treats specially.
func escapeGlob(s string) string {
	if !strings.ContainsAny(s, `*?[]\`) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ClearOptions tunes one Clear call; zero fields take the Cache's options,
// so ClearOptions{} is the plain call.
type ClearOptions struct {
	// Count is the SCAN COUNT hint. Default Options.ScanCount.
	Count int64
	// Batch is the most keys unlinked per round trip. Default
	// Options.UnlinkBatch.
	Batch int
	// Progress, if set, is called after every unlinked batch with the number
	// of keys removed so far, from one goroutine at a time.
	Progress func(removed int64)
	// DryRun counts the matching keys and deletes nothing; Clear then
	// returns the count (a key SCAN returns twice while the keyspace is
	// rehashed is counted twice).
	DryRun bool
}

// Clear removes every key of the namespace matching p: SCAN (with MATCH
// "<namespace><p>") on every master, concurrently on Cluster, and UNLINK in
// batches of at most o.Batch keys — on Cluster one UNLINK per slot in a
// pipeline to the node, so no command is cross-slot. It never uses KEYS or
// FLUSHDB and cannot reach outside the namespace. Keys added while it runs
// may survive. It returns the number removed, also on error.
//
// SCAN and UNLINK are idempotent and may be re-sent by the retries of the
// master's client; a re-sent UNLINK does not count the keys its lost first
// run removed, so the count may then be low. An error after which some keys
// may or may not be removed matches retry.ErrAmbiguous; Clear may simply be
// called again. (On a ClusterClient or a Ring the masters' clients are
// go-redis's node or shard clients, which do not retry by default.) See
// "Writes and lost replies" in the package doc.
func (c *Cache) Clear(ctx context.Context, p Pattern, o ClearOptions) (n int64, err error) {
	ctx, sp := c.trace(ctx, opClear)
	defer func() { sp.SetInt(AttrRemoved, int(n)); sp.Done(err) }()
	if o.Count <= 0 {
		o.Count = c.opt.ScanCount
	}
	if o.Batch <= 0 {
		o.Batch = c.opt.UnlinkBatch
	}
	match := escapeGlob(c.ns) + p.glob
	if !o.DryRun {
		defer c.near.flush() // read-your-writes here; others hear from Redis
	}
	_, cluster := c.rdb.(*redis.ClusterClient)
	var removed atomic.Int64
	var progressMu sync.Mutex
	report := func(n int64) {
		total := removed.Add(n)
		if o.Progress != nil && n > 0 {
			progressMu.Lock()
			o.Progress(total)
			progressMu.Unlock()
		}
	}
	err = c.forEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		var cursor uint64
		batch := make([]string, 0, o.Batch)
		flush := func() error {
			if o.DryRun {
				report(int64(len(batch)))
				batch = batch[:0]
				return nil
			}
			n, err := unlink(ctx, node, batch, cluster)
			report(n)
			batch = batch[:0]
			return retry.AmbiguousVia(node, "unlink", err)
		}
		for {
			keys, next, err := node.Scan(ctx, cursor, match, o.Count).Result()
			if err != nil {
				return err
			}
			for _, k := range keys {
				batch = append(batch, k)
				if len(batch) == o.Batch {
					if err := flush(); err != nil {
						return err
					}
				}
			}
			if cursor = next; cursor == 0 {
				break
			}
		}
		if len(batch) > 0 {
			return flush()
		}
		return nil
	})
	if err != nil {
		return removed.Load(), fmt.Errorf("cache: clear %q: %w", p.glob, err)
	}
	return removed.Load(), nil
}

// unlink removes keys from one node in one round trip.
func unlink(ctx context.Context, node *redis.Client, keys []string, cluster bool) (int64, error) {
	if !cluster {
		return node.Unlink(ctx, keys...).Result()
	}
	bySlot := make(map[int][]string)
	for _, k := range keys {
		s := keySlot(k)
		bySlot[s] = append(bySlot[s], k)
	}
	cmds, err := node.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, ks := range bySlot {
			p.Unlink(ctx, ks...)
		}
		return nil
	})
	var n int64
	for _, cmd := range cmds {
		v, _ := cmd.(*redis.IntCmd).Result()
		n += v
	}
	return n, err
}
