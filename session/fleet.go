package session

import (
	"context"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Stats counts what the store holds, scanning every master.
type Stats struct {
	// Sessions is the number of session keys (anonymous ones included).
	Sessions int64
	// Users is the number of per-user indexes: users with a live session.
	Users int64
	// Indexed is the number of entries over all indexes; it exceeds the
	// number of user sessions by the stale entries Cleanup would prune.
	Indexed int64
}

// Stats scans every master (SCAN with the store's prefix, never KEYS) and
// counts sessions, users and index entries. It costs O(keys) on the server:
// call it from a dashboard, not per request.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	if s.isClosed() {
		return Stats{}, ErrClosed
	}
	var mu sync.Mutex
	var st Stats
	pre := escapeGlob(s.opts.Prefix)
	err := s.forEachNode(ctx, false, func(ctx context.Context, c *redis.Client) error {
		var local Stats
		err := scanAll(ctx, c, pre+"{*}:s:*", "string", func(keys []string) error {
			local.Sessions += int64(len(keys))
			return nil
		})
		if err != nil {
			return err
		}
		err = scanAll(ctx, c, pre+"{*}:u", "zset", func(keys []string) error {
			local.Users += int64(len(keys))
			cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, k := range keys {
					p.ZCard(ctx, k)
				}
				return nil
			})
			if err != nil {
				return err
			}
			for _, cmd := range cmds {
				local.Indexed += cmd.(*redis.IntCmd).Val()
			}
			return nil
		})
		mu.Lock()
		st.Sessions += local.Sessions
		st.Users += local.Users
		st.Indexed += local.Indexed
		mu.Unlock()
		return err
	})
	if err != nil {
		return Stats{}, wrapRedis("stats", err)
	}
	return st, nil
}

// Cleanup prunes what Redis TTLs cannot: index entries of sessions that
// expired or vanished while their index lives on. It visits every master,
// runs one script per index (pipelined per SCAN page) and returns how many
// entries it removed. Correctness never depends on it: every write trims
// its user's index, and an index expires with its last session.
func (s *Store) Cleanup(ctx context.Context) (int, error) {
	if s.isClosed() {
		return 0, ErrClosed
	}
	var mu sync.Mutex
	total := 0
	pre := escapeGlob(s.opts.Prefix)
	err := s.forEachNode(ctx, false, func(ctx context.Context, c *redis.Client) error {
		// Make sure the script is cached on this node, so the pipeline of
		// EVALSHAs below cannot meet NOSCRIPT.
		if err := scriptCleanup.Load(ctx, c).Err(); err != nil {
			return err
		}
		// ":u": a user's index; ":a": an anonymous session's, with events on.
		return scanAll(ctx, c, pre+"{*}:[ua]", "zset", func(keys []string) error {
			cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, k := range keys {
					base := k[:len(k)-len(":u")] + ":s:"
					scriptCleanup.EvalSha(ctx, p, s.keys(tagOfIndex(k), k), s.now(), base)
				}
				return nil
			})
			if err != nil {
				return err
			}
			n := 0
			for _, cmd := range cmds {
				v, _ := cmd.(*redis.Cmd).Int64()
				n += int(v)
			}
			mu.Lock()
			total += n
			mu.Unlock()
			return nil
		})
	})
	if err != nil {
		return total, wrapRedis("cleanup", err)
	}
	return total, nil
}

func scanAll(ctx context.Context, c *redis.Client, match, typ string, fn func([]string) error) error {
	var cursor uint64
	for {
		keys, next, err := c.ScanType(ctx, cursor, match, 1000, typ).Result()
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			if err := fn(keys); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// escapeGlob makes s match itself literally in a SCAN MATCH pattern.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
