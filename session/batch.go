package session

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// GetMany loads the sessions named by ids in one pipeline: one round trip
// per node that holds any of them (go-redis splits a Cluster pipeline by
// node and sends the parts at once). The result is aligned with ids: nil
// where there is no live session (missing, deleted, timed out, or a
// malformed ID). GetMany is a read for tools and dashboards, not use: no
// idle expiry slides. A corrupt session is nil too, and the error then
// wraps ErrCorrupt; the others are still returned.
func (s *Store) GetMany(ctx context.Context, ids []string) ([]*Session, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	out := make([]*Session, len(ids))
	type pending struct {
		i      int
		handle string
		get    func() string
	}
	var reads []pending
	pipe := s.rdb.Pipeline()
	// A replica can still hold a session its master deleted: on a client
	// that may read from replicas, read with EVAL, which go-redis sends to
	// the master.
	master := mayReadReplica(s.rdb)
	for i, id := range ids {
		p, err := parseToken(s.opts.Prefix, id)
		if err != nil {
			continue
		}
		var get func() string
		if master {
			cmd := pipe.Eval(ctx, "return redis.call('GET', KEYS[1])", []string{p.key})
			get = func() string { v, _ := cmd.Val().(string); return v }
		} else {
			get = pipe.Get(ctx, p.key).Val
		}
		reads = append(reads, pending{i, p.handle, get})
	}
	if len(reads) == 0 {
		return out, nil
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, wrapRedis("get many", err)
	}
	now := s.localNow()
	var corrupt error
	for _, r := range reads {
		raw := r.get()
		if raw == "" {
			continue
		}
		sess, err := s.load(ids[r.i], r.handle, raw)
		if err != nil {
			corrupt = fmt.Errorf("session: get many: session %d: %w", r.i, err)
			continue
		}
		if now >= sess.md.expires {
			continue // Redis has not expired it yet; the next write will
		}
		out[r.i] = sess
	}
	return out, corrupt
}

// DeleteMany deletes the sessions named by ids (and their index entries)
// in one pipeline of the Delete script: one round trip per node. It
// returns how many existed. Malformed IDs are skipped. Like Delete it is
// safe to repeat; each deletion leaves Delete's tombstone, under one nonce
// for the call. That its count survives a re-sent pipeline is not tested:
// TestLostReplyMatrix covers Delete, DeleteByUser and RevokeHandle only.
func (s *Store) DeleteMany(ctx context.Context, ids []string) (int, error) {
	if s.isClosed() {
		return 0, ErrClosed
	}
	type del struct{ tag, key, handle string }
	var dels []del
	for _, id := range ids {
		p, err := parseToken(s.opts.Prefix, id)
		if err != nil {
			continue
		}
		dels = append(dels, del{p.tag, p.key, p.handle})
	}
	if len(dels) == 0 {
		return 0, nil
	}
	nonce := s.nonce() // one per call: a re-sent pipeline counts what it deleted
	// run sends the deletes of which in one pipeline; each command carries
	// its own error.
	run := func(sha bool, which []int) []*redis.Cmd {
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.Cmd, len(which))
		for j, i := range which {
			d := dels[i]
			cmds[j] = scriptDelete.Cmd(ctx, sha, s.deleteKeys(d.tag, d.key, d.handle), []any{s.now(), d.handle, nonce})
			_ = pipe.Process(ctx, repeatable.mark(cmds[j]))
		}
		_, _ = pipe.Exec(ctx)
		return cmds
	}
	all := make([]int, len(dels))
	for i := range all {
		all[i] = i
	}
	cmds := run(true, all)
	n := 0
	var again []int // NOSCRIPT: this node had not loaded the script
	for j, c := range cmds {
		switch v, err := c.Int64(); {
		case err == nil:
			n += int(v)
		case redis.HasErrorPrefix(err, "NOSCRIPT"):
			again = append(again, all[j])
		default:
			return n, s.wrapRepeated("delete many", err)
		}
	}
	if len(again) > 0 {
		cmds = run(false, again)
		for _, c := range cmds {
			v, err := c.Int64()
			if err != nil {
				return n, s.wrapRepeated("delete many", err)
			}
			n += int(v)
		}
	}
	return n, nil
}

// Iterate calls fn with the metadata of every live session of the store,
// anonymous ones included, visiting every master with SCAN (never KEYS)
// and reading each page's metadata in one pipeline (no value is decoded).
// Sessions created or deleted during the walk may or may not be seen; a
// session is seen at most once unless a rehash makes SCAN return its key
// twice. An error from fn stops the walk and is returned.
func (s *Store) Iterate(ctx context.Context, fn func(Info) error) error {
	if s.isClosed() {
		return ErrClosed
	}
	pre := escapeGlob(s.opts.Prefix)
	now := s.localNow()
	err := s.forEachMasterInOrder(ctx, func(ctx context.Context, c *redis.Client) error {
		return scanAll(ctx, c, pre+"{*}:s:*", "string", func(keys []string) error {
			cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, k := range keys {
					p.Get(ctx, k)
				}
				return nil
			})
			if err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
			for i, cmd := range cmds {
				var md metadata
				_, _, err := parseRecord(cmd.(*redis.StringCmd).Val(), keys[i][strings.LastIndexByte(keys[i], ':')+1:], nil, &md)
				if err != nil || now >= md.expires { // deleted meanwhile, or not ours
					continue
				}
				if err := fn(md.info()); err != nil {
					return errStop{err}
				}
			}
			return nil
		})
	})
	var stop errStop
	if errors.As(err, &stop) {
		return stop.err
	}
	if err != nil {
		return wrapRedis("iterate", err)
	}
	return nil
}

// errStop carries fn's error out of the walk unchanged.
type errStop struct{ err error }

func (e errStop) Error() string { return e.err.Error() }

// forEachMasterInOrder is forEachNode over masters, one master at a time,
// so that Iterate's fn is never called concurrently.
func (s *Store) forEachMasterInOrder(ctx context.Context, fn func(context.Context, *redis.Client) error) error {
	var mu sync.Mutex
	var nodes []*redis.Client
	err := s.forEachNode(ctx, false, func(_ context.Context, n *redis.Client) error {
		mu.Lock()
		nodes = append(nodes, n)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return err
	}
	for _, n := range nodes {
		if err := fn(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// DeleteAll deletes every session of the store, anonymous ones included,
// with their index entries, on every master, and returns how many it
// deleted: SCAN of each master (the prefix escaped, so it matches this
// store's keys only), then per page one pipeline of the delete script.
// Sessions created while it runs may be left. Revoking everyone's sessions
// is an operator's act ("rediskit sessions revoke --all"), not a request's.
func (s *Store) DeleteAll(ctx context.Context) (int, error) {
	if s.isClosed() {
		return 0, ErrClosed
	}
	pre := escapeGlob(s.opts.Prefix)
	total := 0
	err := s.forEachMasterInOrder(ctx, func(ctx context.Context, c *redis.Client) error {
		if err := scriptDelete.Load(ctx, c).Err(); err != nil {
			return err
		}
		del := func(keys []string) error {
			cmds := make([]*redis.Cmd, 0, len(keys))
			_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, k := range keys {
					i := strings.LastIndex(k, "}:s:")
					if i < 0 {
						continue
					}
					// With events on, the script gets the stream of the
					// session's slot, so each deletion is a revoked event.
					h := k[i+len("}:s:"):]
					cmd := scriptDelete.Cmd(ctx, true, s.deleteKeys(tagOfIndex(k[:i+1]), k, h), []any{s.now(), h, ""})
					cmds = append(cmds, cmd)
					_ = p.Process(ctx, repeatable.mark(cmd))
				}
				return nil
			})
			if err != nil {
				return err
			}
			for _, cmd := range cmds {
				n, _ := cmd.Int64()
				total += int(n)
			}
			return nil
		}
		// "hash": sessions of the first version that nothing has converted.
		for _, typ := range []string{"string", "hash"} {
			if err := scanAll(ctx, c, pre+"{*}:s:*", typ, del); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return total, s.wrapRepeated("delete all", err)
	}
	return total, nil
}
