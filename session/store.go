package session

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rediskit/rediskit/internal/pipeline"
	"github.com/rediskit/rediskit/internal/unique"
)

// Store keeps sessions in Redis. It is safe for concurrent use. Each method
// on one session (Create, Get, Update, Delete, Extend, Rotate) is one round
// trip: a script, or for Get a plain read plus, once per TouchInterval, the
// touch script; ListByUser, DeleteByUser and RevokeHandle are one
// script on the user's slot; Stats and Cleanup visit every master.
type Store struct {
	rdb  redis.UniversalClient
	exec *pipeline.Exec // rdb, or the client's shared AutoPipeliner (Options.Pipelining)
	opts Options
	// fastReads: Get reads with GET and runs a script only to touch.
	// Off when every Get touches (TouchInterval 0) and when a cluster
	// client may send reads to replicas, which could still hold a session
	// its master already deleted.
	fastReads bool
	skew      atomic.Int64 // Redis TIME minus local time, ms (see observe)
	wall      func() int64 // the local clock, Unix ms: monoClock (tests skew it)

	evArg   string // ",maxlen,grace" of ARGV[1] with Options.Events
	cluster bool   // event streams per slot (events.go)

	nonces *unique.Source // per call (nonce)

	closeOnce sync.Once
	closed    chan struct{}
}

// New returns a Store over rdb. It makes no Redis call; call Preload to load
// the scripts on every node ahead of the first request. New panics if rdb is
// nil and returns an error naming the field of an invalid Options.
//
// rdb must be a plain client (*redis.Client, *redis.ClusterClient,
// *redis.Ring or a failover client), not an AutoPipeliner: Stats and Cleanup
// need to reach every master. Options.Pipelining uses the client's own.
func New(rdb redis.UniversalClient, opts Options) (*Store, error) {
	if rdb == nil {
		panic("session: New with nil client")
	}
	if _, ok := rdb.(*redis.AutoPipeliner); ok {
		return nil, badOption("Pipelining", "", "New needs the underlying client, not an AutoPipeliner: see Options.Pipelining")
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if _, ring := rdb.(*redis.Ring); ring && o.DurableReplicas > 0 {
		return nil, errors.New("session: Options.DurableReplicas needs a standalone, failover or cluster client: a Ring's shards have no replicas")
	}
	s := &Store{rdb: rdb, opts: o, closed: make(chan struct{}), wall: monoClock(), nonces: unique.New()}
	s.fastReads = o.TouchInterval > 0
	if o.Events {
		if _, ring := rdb.(*redis.Ring); ring {
			return nil, badOption("Events", true, "needs a standalone, failover or cluster client: a Ring has no fixed place for its event streams")
		}
		_, s.cluster = rdb.(*redis.ClusterClient)
		s.evArg = "," + strconv.FormatInt(o.EventsMaxLen, 10) + "," + strconv.FormatInt(o.EventsGrace.Milliseconds(), 10)
	}
	if mayReadReplica(rdb) {
		s.fastReads = false
	}
	if s.exec, err = pipeline.New(rdb, pipeline.Mode(o.Pipelining)); err != nil {
		return nil, &OptionError{Field: "Pipelining", Value: strconv.Quote(o.Pipelining.String()), Reason: err.Error(), Err: err}
	}
	return s, nil
}

// mayReadReplica reports whether rdb may send a read-only command to a
// replica, which can still hold a session its master already deleted or
// rotated away (for the replication lag). go-redis routes reads to replicas
// only on a *redis.ClusterClient, and sets its Options().ReadOnly whenever
// it does: ReadOnly, RouteByLatency and RouteRandomly (the last two imply
// ReadOnly in ClusterOptions.init), and the failover cluster client
// (NewFailoverClusterClient, which rediskit's Sentinel mode with replica
// reads builds), whose FailoverOptions.ReplicaOnly becomes ReadOnly. A plain
// failover *redis.Client with ReplicaOnly sends writes to the replica too,
// where they fail with READONLY: a Store cannot run on it.
func mayReadReplica(rdb redis.UniversalClient) bool {
	c, ok := rdb.(*redis.ClusterClient)
	return ok && c.Options().ReadOnly
}

// Close makes later calls fail with ErrClosed. It closes nothing it was
// given: the client, and the AutoPipeliner that go-redis shares among every
// user of the client (Options.Pipelining), belong to whoever made the
// client and end when it is closed, so other stores, caches and the
// caller's own commands on the same client keep working. Close is
// idempotent and always returns nil.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	return nil
}

func (s *Store) isClosed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

// Preload loads every script on every node (masters and replicas of a
// cluster), so steady-state calls are a single EVALSHA. Without it the first
// call of each script on each node costs one extra round trip (EVALSHA,
// NOSCRIPT, EVAL).
func (s *Store) Preload(ctx context.Context) error {
	return s.forEachNode(ctx, true, func(ctx context.Context, c *redis.Client) error {
		for _, sc := range allScripts {
			if err := sc.Load(ctx, c).Err(); err != nil {
				return wrapRedis("preload", err)
			}
		}
		return nil
	})
}

// forEachNode runs fn on every master (and replicas if asked) of a cluster
// or ring, or on the client itself.
func (s *Store) forEachNode(ctx context.Context, replicas bool, fn func(context.Context, *redis.Client) error) error {
	switch c := s.rdb.(type) {
	case *redis.ClusterClient:
		if replicas {
			return c.ForEachShard(ctx, fn)
		}
		return c.ForEachMaster(ctx, fn)
	case *redis.Ring:
		return c.ForEachShard(ctx, fn)
	case *redis.Client:
		return fn(ctx, c)
	}
	return fmt.Errorf("session: unsupported client type %T", s.rdb)
}

func (s *Store) base(tag string) string { return s.opts.Prefix + "{" + tag + "}:s:" }

func (s *Store) indexKey(tag string) string { return s.opts.Prefix + "{" + tag + "}:u" }

// deleteKeys returns the keys of the Delete script for the session key of
// handle under tag: session, index, tombstone ("<prefix>{<tag>}:d:<handle>"),
// and the event stream when events are on.
func (s *Store) deleteKeys(tag, key, handle string) []string {
	return s.keys(tag, key, s.indexKey(tag), s.tombKey(tag, handle))
}

// tombKey is a tombstone, "<prefix>{<tag>}:d:<name>": a deleted session's
// handle, or "u:<nonce>" for a DeleteByUser or RevokeHandle call.
func (s *Store) tombKey(tag, name string) string { return s.opts.Prefix + "{" + tag + "}:d:" + name }

// tombstoneMs is how long a deletion's tombstone lives: longer than any
// re-send of the same call (the client's retries back off for well under a
// second), short enough that tombstones cost little.
const tombstoneMs = "10000"

// nonce returns a value unique to one call of this Store across processes:
// a random per-Store prefix and a counter.
func (s *Store) nonce() string { return s.nonces.Next() }

// The seam to Manager. Manager keeps a request's values sealed (record.go)
// from Put to the save, so each is encoded once, and uses the Store through
// its exported methods and these four:
//
//	encode(key, v)                 check and seal one value
//	createSealed / updateSealed    Create / Update with sealed values
//	load (via Get)                 a Session whose record Manager reads
//
// Nothing else of the Store's insides is Manager's business.

// encode seals v with the store's codec, checking the key's and the
// value's size.
func (s *Store) encode(key string, v any) (sealed, error) {
	if len(key) > maxKeyBytes {
		return "", fmt.Errorf("%w: key of %d bytes (max %d)", ErrTooLarge, len(key), maxKeyBytes)
	}
	b, err := seal(s.opts.Codec, v)
	if err != nil {
		return "", fmt.Errorf("encoding value %q: %w", key, err)
	}
	if len(b) > s.opts.MaxValueBytes {
		return "", fmt.Errorf("%w: value %q of %d bytes (max %d)", ErrTooLarge, key, len(b), s.opts.MaxValueBytes)
	}
	return b, nil
}

// encodeAll encodes every value of data.
func (s *Store) encodeAll(data map[string]any) (map[string]sealed, error) {
	values := make(map[string]sealed, len(data))
	for k, v := range data {
		b, err := s.encode(k, v)
		if err != nil {
			return nil, err
		}
		values[k] = b
	}
	return values, nil
}

// load builds the Session named by id from its stored form.
func (s *Store) load(id, handle, raw string) (*Session, error) {
	sess := new(Session)
	if err := s.loadInto(sess, id, handle, raw); err != nil {
		return nil, err
	}
	return sess, nil
}

// loadInto is load into dst, every field of which it sets, one by one: a
// copy of a whole Session would clear and copy its value buffer too. On an
// error dst is half set; its callers clear it.
func (s *Store) loadInto(dst *Session, id, handle, raw string) (err error) {
	dst.id, dst.codec = id, s.opts.Codec
	dst.rec, dst.version, err = parseRecord(raw, handle, dst.buf[:0], &dst.md)
	return err
}

func boolArg(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func msArg(v any) time.Time { return time.UnixMilli(msOf(v)) }

// msOf is msArg in Unix ms, as a Session's metadata keeps times.
func msOf(v any) int64 {
	s, _ := v.(string)
	ms, _ := strconv.ParseInt(s, 10, 64)
	return ms
}
