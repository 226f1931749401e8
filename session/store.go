package session

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/retry"
)

// Store keeps sessions in Redis. It is safe for concurrent use. Each method
// on one session (Create, Get, Update, Delete, Extend, Rotate) is one round
// trip: a script, or for Get a plain read plus, once per TouchInterval, the
// touch script; ListByUser, DeleteByUser and RevokeHandle are one
// script on the user's slot; Stats and Cleanup visit every master.
type Store struct {
	rdb  redis.UniversalClient
	exec executor // rdb, or the client's shared AutoPipeliner
	opts Options
	// fastReads: Get reads with HGETALL and runs a script only to touch.
	// Off when every Get touches (TouchInterval 0) and when a cluster
	// client may send reads to replicas, which could still hold a session
	// its master already deleted.
	fastReads bool
	skew      atomic.Int64     // Redis TIME minus local time, ms (see observe)
	wall      func() time.Time // the local clock: time.Now (tests skew it)

	closeOnce sync.Once
	closed    chan struct{}
}

// executor is what the per-session calls go through: the client, or its
// AutoPipeliner.
type executor interface {
	redis.Cmdable
	retry.Processor
}

// New returns a Store over rdb. It makes no Redis call; call Preload to load
// the scripts on every node ahead of the first request. New panics if rdb is
// nil and returns an error naming the field of an invalid Options.
//
// rdb must be a plain client (*redis.Client, *redis.ClusterClient,
// *redis.Ring or a failover client), not an AutoPipeliner: Stats and Cleanup
// need to reach every master. Set Options.AutoPipeline instead.
func New(rdb redis.UniversalClient, opts Options) (*Store, error) {
	if rdb == nil {
		panic("session: New with nil client")
	}
	if _, ok := rdb.(*redis.AutoPipeliner); ok {
		return nil, errors.New("session: New needs the underlying client, not an AutoPipeliner: set Options.AutoPipeline")
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if _, ring := rdb.(*redis.Ring); ring && o.DurableReplicas > 0 {
		return nil, errors.New("session: Options.DurableReplicas needs a standalone, failover or cluster client: a Ring's shards have no replicas")
	}
	s := &Store{rdb: rdb, exec: rdb, opts: o, closed: make(chan struct{}), wall: time.Now}
	s.fastReads = o.TouchInterval > 0
	if c, ok := rdb.(*redis.ClusterClient); ok && c.Options().ReadOnly {
		s.fastReads = false
	}
	if o.AutoPipeline {
		ap, err := rdb.AutoPipeline()
		if err != nil {
			return nil, fmt.Errorf("session: Options.AutoPipeline: %w", err)
		}
		s.exec = ap
	}
	return s, nil
}

// Close makes later calls fail with ErrClosed. It closes nothing it was
// given: the client, and the AutoPipeliner that go-redis shares among every
// user of the client (Options.AutoPipeline), belong to whoever made the
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

// now is the ARGV[1] of every script: 0 lets the script read Redis TIME.
func (s *Store) now() int64 {
	if s.opts.Clock == nil {
		return 0
	}
	return s.opts.Clock().UnixMilli()
}

func (s *Store) base(tag string) string { return s.opts.Prefix + "{" + tag + "}:s:" }

func (s *Store) indexKey(tag string) string { return s.opts.Prefix + "{" + tag + "}:u" }

// Info is a session's metadata, kept apart from its values: building a
// "your sessions" page never decodes a payload.
type Info struct {
	// Handle names the session without being a credential: the base64url
	// SHA-256 of its ID. It is safe to show and log, and RevokeHandle takes it.
	Handle string
	// UserID is the user the session belongs to, "" for an anonymous one.
	UserID string
	// IP and UserAgent are what CreateOptions recorded.
	IP, UserAgent string
	// CreatedAt is when Create ran; LastSeen when the session was last
	// touched (within Options.TouchInterval).
	CreatedAt, LastSeen time.Time
	// ExpiresAt is when the session ends unless used again: the earlier of
	// LastSeen+IdleTimeout and Deadline.
	ExpiresAt time.Time
	// Deadline is the absolute deadline.
	Deadline time.Time
	// IdleTimeout is this session's sliding timeout.
	IdleTimeout time.Duration
	// Persist says whether the client asked to be remembered.
	Persist bool
}

// Session is a loaded session: its ID, metadata, version and encoded
// values. Values are decoded on demand with Decode. A Session is a snapshot;
// change the stored session with Store.Update.
type Session struct {
	id      string
	info    Info
	version int64
	// fields is the session hash as read: "d:<key>" holds a value (envelope
	// byte, then codec bytes; every envelope checked on load). Get keeps
	// the map go-redis made, so a value is copied only when decoded.
	fields map[string]string
	codec  Codec
}

// ID returns the session ID: the secret the client presents. Never log it.
func (s *Session) ID() string { return s.id }

// Info returns the session's metadata.
func (s *Session) Info() Info { return s.info }

// Version returns the stored version; every Update increments it. Pass it
// as Changes.IfVersion for an optimistic update.
func (s *Session) Version() int64 { return s.version }

// Keys returns the names of the session's values, sorted.
func (s *Session) Keys() []string {
	keys := make([]string, 0, len(s.fields))
	for k := range s.fields {
		if strings.HasPrefix(k, "d:") {
			keys = append(keys, k[2:])
		}
	}
	sort.Strings(keys)
	return keys
}

// value returns the codec bytes under key, without envelope.
func (s *Session) value(key string) (string, bool) {
	v, ok := s.fields["d:"+key]
	if !ok {
		return "", false
	}
	return v[1:], true
}

// Has reports whether the session holds a value under key.
func (s *Session) Has(key string) bool { _, ok := s.value(key); return ok }

// Raw returns the codec bytes of the value under key (without envelope).
func (s *Session) Raw(key string) ([]byte, bool) { b, ok := s.value(key); return []byte(b), ok }

// Decode decodes the value under key into dst. It returns ErrNoValue when
// there is none and an error wrapping ErrCorrupt when the codec cannot
// decode it.
func (s *Session) Decode(key string, dst any) error {
	b, ok := s.value(key)
	if !ok {
		return ErrNoValue
	}
	if err := s.codec.Unmarshal([]byte(b), dst); err != nil {
		return fmt.Errorf("%w: value %q: %v", ErrCorrupt, key, err)
	}
	return nil
}

// len counts the session's values.
func (s *Session) len() int {
	n := 0
	for k := range s.fields {
		if strings.HasPrefix(k, "d:") {
			n++
		}
	}
	return n
}

// String describes the session without its ID. Its receiver is a value,
// so formatting a Session value hides the ID as well as a *Session.
func (s Session) String() string {
	return fmt.Sprintf("session.Session{handle:%s user:%q version:%d values:%d}",
		s.info.Handle, s.info.UserID, s.version, s.len())
}

// GoString is String: %#v must not print the ID either.
func (s Session) GoString() string { return s.String() }

// CreateOptions are the per-session settings of Create.
type CreateOptions struct {
	// IP and UserAgent are device metadata shown by ListByUser. At most 512
	// bytes each.
	IP, UserAgent string
	// IdleTimeout and AbsoluteTimeout override the store's for this
	// session, shorter or longer: Get slides the session's own idle expiry
	// (see Options.TouchInterval) and its own deadline ends it
	// (TestPerSessionTimeouts).
	IdleTimeout, AbsoluteTimeout time.Duration
	// Persist records that the client asked to be remembered.
	Persist bool
}

// Create stores a new session for userID ("" makes an anonymous session)
// with the given values, and returns it with a fresh ID. With
// Options.MaxPerUser set, the user's oldest sessions are revoked first, or
// Create fails with ErrLimit (Options.OnLimit).
//
// Create is never sent twice: a retry after the session was deleted would
// bring it back. When its reply is lost, the error matches
// retry.ErrAmbiguous and the returned Session is not nil: it holds the ID
// the session has if it was stored, and Get on that ID settles it.
func (s *Store) Create(ctx context.Context, userID string, data map[string]any, opts CreateOptions) (*Session, error) {
	enc := make(map[string][]byte, len(data))
	for k, v := range data {
		b, err := s.encode(k, v)
		if err != nil {
			return nil, fmt.Errorf("session: create: %w", err)
		}
		enc[k] = b
	}
	return s.createRaw(ctx, userID, enc, opts)
}

func (s *Store) encode(key string, v any) ([]byte, error) {
	if len(key) > maxKeyBytes {
		return nil, fmt.Errorf("%w: key of %d bytes (max %d)", ErrTooLarge, len(key), maxKeyBytes)
	}
	b, err := seal(s.opts.Codec, v)
	if err != nil {
		return nil, fmt.Errorf("encoding value %q: %w", key, err)
	}
	if len(b) > s.opts.MaxValueBytes {
		return nil, fmt.Errorf("%w: value %q of %d bytes (max %d)", ErrTooLarge, key, len(b), s.opts.MaxValueBytes)
	}
	return b, nil
}

// createRaw takes sealed values.
func (s *Store) createRaw(ctx context.Context, userID string, enc map[string][]byte, opts CreateOptions) (*Session, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	if len(opts.IP) > maxMetaBytes || len(opts.UserAgent) > maxMetaBytes || len(userID) > maxMetaBytes {
		return nil, fmt.Errorf("session: create: %w: user ID, IP or user agent over %d bytes", ErrTooLarge, maxMetaBytes)
	}
	idle, abs := opts.IdleTimeout, opts.AbsoluteTimeout
	if idle <= 0 {
		idle = s.opts.IdleTimeout
	}
	if abs <= 0 {
		abs = s.opts.AbsoluteTimeout
	}
	var tag []byte
	if userID != "" {
		tag = s.userTag(userID)
	} else {
		t, err := anonTag()
		if err != nil {
			return nil, err
		}
		tag = t
	}
	tok, p, err := newToken(s.opts.Prefix, tag)
	if err != nil {
		return nil, err
	}
	refuse := "0"
	if s.opts.OnLimit == RefuseNew {
		refuse = "1"
	}
	args := make([]any, 0, 11+2*len(enc))
	args = append(args, s.now(), p.handle, idle.Milliseconds(), abs.Milliseconds(), userID,
		packDevice(opts.IP, opts.UserAgent), "", boolArg(opts.Persist), s.opts.MaxPerUser, refuse, s.base(p.tag))
	fields := make(map[string]string, len(enc))
	for k, v := range enc {
		args = append(args, "d:"+k, v)
		fields["d:"+k] = string(v)
	}
	res, err := s.write(ctx, scriptCreate, once, []string{p.key, s.indexKey(p.tag)}, args...).Slice()
	if err != nil {
		err = wrapWrite("create", err)
		if errors.Is(err, retry.ErrAmbiguous) {
			// The caller learns the ID the session has if it was stored:
			// Get(ID) settles it.
			now := time.UnixMilli(s.localNow())
			return &Session{
				id: tok, version: 1, fields: fields, codec: s.opts.Codec,
				info: Info{
					Handle: p.handle, UserID: userID, IP: opts.IP, UserAgent: opts.UserAgent,
					CreatedAt: now, LastSeen: now, ExpiresAt: now.Add(min(idle, abs)), Deadline: now.Add(abs),
					IdleTimeout: idle, Persist: opts.Persist,
				},
			}, err
		}
		return nil, err
	}
	if len(res) < 3 {
		return nil, fmt.Errorf("session: create: %w: unexpected reply", ErrCorrupt)
	}
	s.observe(res[0])
	now, exp, dl := msArg(res[0]), msArg(res[1]), msArg(res[2])
	return &Session{
		id: tok, version: 1, fields: fields, codec: s.opts.Codec,
		info: Info{
			Handle: p.handle, UserID: userID, IP: opts.IP, UserAgent: opts.UserAgent,
			CreatedAt: now, LastSeen: now, ExpiresAt: exp, Deadline: dl,
			IdleTimeout: idle, Persist: opts.Persist,
		},
	}, nil
}

// Get loads a session and records the access: last-seen moves to now and
// the idle expiry slides, at most once per Options.TouchInterval. It
// returns ErrNotFound for a missing, deleted or timed-out session (a
// timed-out one is deleted on the spot), ErrMalformedToken without calling
// Redis, and ErrCorrupt for data it cannot read, which it leaves untouched.
//
// A Get within the touch interval is one HGETALL: the key's TTL already
// ends the session at its idle or absolute timeout, so Redis answers for
// a dead session with nothing. A Get that finds the touch due (or the
// session past a timeout by the store's clock) runs the touch script
// after it: two round trips, once per TouchInterval per session. See
// "Reads and touches" in the package documentation.
func (s *Store) Get(ctx context.Context, id string) (*Session, error) {
	p, err := parseToken(s.opts.Prefix, id)
	if err != nil {
		return nil, fmt.Errorf("session: get: %w", err)
	}
	if s.isClosed() {
		return nil, ErrClosed
	}
	if s.fastReads {
		fields, err := s.exec.HGetAll(ctx, p.key).Result()
		if err != nil {
			return nil, wrapRedis("get", err)
		}
		if len(fields) == 0 {
			return nil, fmt.Errorf("session: get: %w", ErrNotFound)
		}
		sess, err := s.load(id, p.handle, fields)
		if err != nil {
			return nil, fmt.Errorf("session: get: %w", err)
		}
		if !s.touchDue(&sess.info) {
			return sess, nil
		}
	}
	res, err := scriptGet.RunRepeatable(ctx, s.exec, []string{p.key, s.indexKey(p.tag)},
		s.now(), p.handle, s.opts.TouchInterval.Milliseconds(), s.opts.IdleTimeout.Milliseconds()).Slice()
	if err != nil {
		return nil, wrapRedis("get", err)
	}
	if len(res)%2 != 1 {
		return nil, fmt.Errorf("session: get: %w: unexpected reply", ErrCorrupt)
	}
	s.observe(res[len(res)-1])
	sess, err := s.decodeHash(id, p.handle, res[:len(res)-1])
	if err != nil {
		return nil, fmt.Errorf("session: get: %w", err)
	}
	return sess, nil
}

// touchDue reports whether a session read without a script needs the
// touch script: its last-seen is TouchInterval old, or it is past a
// timeout by the store's clock. That clock only decides when the script
// runs; the script reads the time again (Redis TIME, or Options.Clock) and
// alone decides whether the session is dead. A last-seen more than
// TouchInterval in the future means the store's clock is behind Redis's
// (and has not learnt the offset yet): the script runs, and its reply
// teaches the offset, so such a clock cannot hold touches back until
// sessions idle out in use.
func (s *Store) touchDue(info *Info) bool {
	now := s.localNow()
	age, every := now-info.LastSeen.UnixMilli(), s.touchEvery(info.IdleTimeout)
	return age >= every || age < -every || now >= info.ExpiresAt.UnixMilli()
}

// touchEvery is the touch interval of a session with the given idle
// timeout, in ms: Options.TouchInterval scaled by the session's idle timeout
// over the store's, so a session with its own idle timeout
// (CreateOptions.IdleTimeout) slides as often, relative to that timeout, as
// the store's sessions do. The Get script computes the same.
func (s *Store) touchEvery(idle time.Duration) int64 {
	return int64(float64(s.opts.TouchInterval.Milliseconds()) * float64(idle.Milliseconds()) /
		float64(s.opts.IdleTimeout.Milliseconds()))
}

// localNow is the store's estimate of the scripts' clock, in ms: Options.
// Clock, or the local clock corrected by the offset to Redis TIME last
// seen in a script reply.
func (s *Store) localNow() int64 {
	if s.opts.Clock != nil {
		return s.opts.Clock().UnixMilli()
	}
	return s.wall().UnixMilli() + s.skew.Load()
}

// observe records the offset of Redis TIME (a script reply's "now") to
// the local clock, so a local clock that drifts cannot delay touches until
// sessions idle out in use.
func (s *Store) observe(v any) {
	if s.opts.Clock != nil {
		return
	}
	str, _ := v.(string)
	if ms, err := strconv.ParseInt(str, 10, 64); err == nil && ms > 0 {
		s.skew.Store(ms - s.wall().UnixMilli())
	}
}

// decodeHash loads the hash the Get script returned (field, value, ...).
func (s *Store) decodeHash(id, handle string, res []any) (*Session, error) {
	fields := make(map[string]string, len(res)/2)
	for i := 0; i+1 < len(res); i += 2 {
		k, _ := res[i].(string)
		v, _ := res[i+1].(string)
		fields[k] = v
	}
	return s.load(id, handle, fields)
}

// load checks a session hash and reads its metadata. Values stay as
// stored; only their envelopes are checked, so a value that was not written
// by this package is ErrCorrupt at once, not when decoded.
func (s *Store) load(id, handle string, fields map[string]string) (*Session, error) {
	sess := &Session{id: id, codec: s.opts.Codec, fields: fields}
	sess.info.Handle = handle
	m, ok := fields["m"]
	if !ok {
		return nil, fmt.Errorf("%w: no metadata", ErrCorrupt)
	}
	var err error
	if sess.version, err = parseMeta(m, &sess.info); err != nil {
		return nil, err
	}
	if sess.info.UserID, ok = fields["u"]; !ok {
		return nil, fmt.Errorf("%w: no user field", ErrCorrupt)
	}
	if x, ok := fields["x"]; ok {
		if sess.info.IP, sess.info.UserAgent, err = unpackDevice(x); err != nil {
			return nil, err
		}
	}
	for k, v := range fields {
		if strings.HasPrefix(k, "d:") {
			if _, err := open(v); err != nil {
				return nil, fmt.Errorf("value %q: %w", k[2:], err)
			}
		}
	}
	return sess, nil
}

// parseMeta reads the packed metadata field "created,last-seen,idle,
// deadline,version,persist" into info and returns the version.
func parseMeta(m string, info *Info) (int64, error) {
	var n [5]int64
	rest := m
	for i := range n {
		j := strings.IndexByte(rest, ',')
		if j < 0 {
			return 0, fmt.Errorf("%w: metadata", ErrCorrupt)
		}
		v, err := strconv.ParseInt(rest[:j], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%w: metadata", ErrCorrupt)
		}
		n[i], rest = v, rest[j+1:]
	}
	if rest != "0" && rest != "1" {
		return 0, fmt.Errorf("%w: metadata", ErrCorrupt)
	}
	info.CreatedAt = time.UnixMilli(n[0])
	info.LastSeen = time.UnixMilli(n[1])
	info.IdleTimeout = time.Duration(n[2]) * time.Millisecond
	info.Deadline = time.UnixMilli(n[3])
	info.ExpiresAt = info.LastSeen.Add(info.IdleTimeout)
	if info.Deadline.Before(info.ExpiresAt) {
		info.ExpiresAt = info.Deadline
	}
	info.Persist = rest == "1"
	return n[4], nil
}

// packDevice stores IP and user agent in one field: len(ip) ":" ip ua.
func packDevice(ip, ua string) string { return strconv.Itoa(len(ip)) + ":" + ip + ua }

func unpackDevice(x string) (ip, ua string, err error) {
	j := strings.IndexByte(x, ':')
	if j < 0 {
		return "", "", fmt.Errorf("%w: device info", ErrCorrupt)
	}
	n, perr := strconv.Atoi(x[:j])
	if perr != nil || n < 0 || n > len(x)-j-1 {
		return "", "", fmt.Errorf("%w: device info", ErrCorrupt)
	}
	return x[j+1 : j+1+n], x[j+1+n:], nil
}

// Changes is a partial update: only the named keys are written, so
// concurrent updates of different keys all survive. Writers of the same key
// are ordered by Redis and the last one wins, unless IfVersion is set.
type Changes struct {
	// Set maps keys to new values (encoded with the store's codec).
	Set map[string]any
	// Delete lists keys to remove.
	Delete []string
	// Persist, when not nil, records whether the client asked to be
	// remembered.
	Persist *bool
	// IfVersion, when not 0, makes the update apply only if the stored
	// version is still this one; otherwise Update fails with ErrConflict.
	IfVersion int64
}

// Update applies changes to a live session, keeping its expiry: an Update
// is not use, and neither last-seen nor the idle expiry moves
// (TestPerSessionTimeouts). A Manager request is use because it starts with
// Get. Update never brings back a session that is gone: it returns
// ErrNotFound and writes nothing. It returns the new version.
//
// Update is never sent twice (a second run would bump the version again,
// or fail IfVersion after the first succeeded): when its reply is lost the
// error matches retry.ErrAmbiguous.
func (s *Store) Update(ctx context.Context, id string, ch Changes) (int64, error) {
	enc := make(map[string][]byte, len(ch.Set))
	for k, v := range ch.Set {
		b, err := s.encode(k, v)
		if err != nil {
			return 0, fmt.Errorf("session: update: %w", err)
		}
		enc[k] = b
	}
	return s.updateRaw(ctx, id, enc, ch.Delete, ch.Persist, ch.IfVersion)
}

func (s *Store) updateRaw(ctx context.Context, id string, enc map[string][]byte, del []string, persist *bool, ifVersion int64) (int64, error) {
	p, err := parseToken(s.opts.Prefix, id)
	if err != nil {
		return 0, fmt.Errorf("session: update: %w", err)
	}
	if s.isClosed() {
		return 0, ErrClosed
	}
	pa := ""
	if persist != nil {
		pa = boolArg(*persist)
	}
	args := make([]any, 0, 5+2*len(enc)+len(del))
	args = append(args, s.now(), p.handle, ifVersion, pa, len(enc))
	for k, v := range enc {
		args = append(args, "d:"+k, v)
	}
	for _, k := range del {
		if _, set := enc[k]; !set {
			args = append(args, "d:"+k)
		}
	}
	res, err := s.write(ctx, scriptUpdate, once, []string{p.key, s.indexKey(p.tag)}, args...).Slice()
	if err != nil {
		return 0, wrapWrite("update", err)
	}
	if len(res) != 3 {
		return 0, fmt.Errorf("session: update: %w: unexpected reply", ErrCorrupt)
	}
	v, _ := res[2].(int64)
	return v, nil
}

// Delete removes a session and its index entry. Deleting a missing session
// is not an error; the result says whether one existed.
func (s *Store) Delete(ctx context.Context, id string) (bool, error) {
	p, err := parseToken(s.opts.Prefix, id)
	if err != nil {
		return false, fmt.Errorf("session: delete: %w", err)
	}
	if s.isClosed() {
		return false, ErrClosed
	}
	n, err := s.write(ctx, scriptDelete, repeatable, []string{p.key, s.indexKey(p.tag)}, s.now(), p.handle).Int64()
	if err != nil {
		return false, wrapWrite("delete", err)
	}
	return n == 1, nil
}

// Extend moves a live session's absolute deadline to now+d if that is later
// (it never shortens it) and records an access. It returns the new expiry
// and deadline, or ErrNotFound.
func (s *Store) Extend(ctx context.Context, id string, d time.Duration) (expiresAt, deadline time.Time, err error) {
	p, err := parseToken(s.opts.Prefix, id)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("session: extend: %w", err)
	}
	if d <= 0 {
		return time.Time{}, time.Time{}, fmt.Errorf("session: extend: duration %v must be positive", d)
	}
	if s.isClosed() {
		return time.Time{}, time.Time{}, ErrClosed
	}
	res, err := s.write(ctx, scriptExtend, repeatable, []string{p.key, s.indexKey(p.tag)},
		s.now(), p.handle, d.Milliseconds()).Slice()
	if err != nil {
		return time.Time{}, time.Time{}, wrapWrite("extend", err)
	}
	if len(res) != 3 {
		return time.Time{}, time.Time{}, fmt.Errorf("session: extend: %w: unexpected reply", ErrCorrupt)
	}
	return msArg(res[1]), msArg(res[2]), nil
}

// Rotate gives a live session a new ID, keeping its values, metadata and
// deadline, and kills the old ID in the same script: call it on login and
// privilege change. It returns the new ID, or ErrNotFound. Rotate is safe
// to send twice (the script recognises its own earlier run), so a client's
// retries may re-send it; when the outcome is still unknown the error
// matches retry.ErrAmbiguous and the returned ID is not empty: it is the
// session's ID if the rotation ran, and Get on it settles which ID is live.
func (s *Store) Rotate(ctx context.Context, id string) (string, error) {
	p, err := parseToken(s.opts.Prefix, id)
	if err != nil {
		return "", fmt.Errorf("session: rotate: %w", err)
	}
	if s.isClosed() {
		return "", ErrClosed
	}
	raw, _ := b64.DecodeString(p.tag)
	tok, np, err := newToken(s.opts.Prefix, raw)
	if err != nil {
		return "", err
	}
	err = s.write(ctx, scriptRotate, repeatable,
		[]string{p.key, np.key, s.indexKey(p.tag)},
		s.now(), p.handle, np.handle).Err()
	if err != nil {
		err = wrapWrite("rotate", err)
		if errors.Is(err, retry.ErrAmbiguous) {
			return tok, err // the session's ID if the rotation ran: Get settles it
		}
		return "", err
	}
	return tok, nil
}

// ListByUser returns the metadata of the user's live sessions, oldest
// first, without decoding any value. Expired entries found on the way are
// pruned. A user without sessions gets an empty list.
func (s *Store) ListByUser(ctx context.Context, userID string) ([]Info, error) {
	if userID == "" {
		return nil, errors.New("session: list by user: empty user ID")
	}
	if s.isClosed() {
		return nil, ErrClosed
	}
	tag := b64.EncodeToString(s.userTag(userID))
	res, err := scriptList.RunRepeatable(ctx, s.rdb, []string{s.indexKey(tag)}, s.now(), s.base(tag), userID).Slice()
	if err != nil {
		return nil, wrapRedis("list by user", err)
	}
	out := make([]Info, 0, len(res))
	for _, r := range res {
		f, ok := r.([]any)
		if !ok || len(f) != 3 {
			return nil, fmt.Errorf("session: list by user: %w: unexpected reply", ErrCorrupt)
		}
		handle, _ := f[0].(string)
		m, _ := f[1].(string)
		x, _ := f[2].(string)
		info := Info{Handle: handle, UserID: userID}
		if _, err := parseMeta(m, &info); err != nil {
			continue // the script lists only parseable metadata
		}
		info.IP, info.UserAgent, _ = unpackDevice(x)
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, nil
}

// DeleteByUser deletes every session of the user ("log out everywhere") in
// one script and returns how many there were.
func (s *Store) DeleteByUser(ctx context.Context, userID string) (int, error) {
	return s.deleteUser(ctx, "delete by user", userID, "")
}

// RevokeHandle deletes the user's session with the given Info.Handle (from
// ListByUser). It reports whether it existed; a handle of another user's
// session is never deleted.
func (s *Store) RevokeHandle(ctx context.Context, userID, handle string) (bool, error) {
	if len(handle) != 43 {
		return false, fmt.Errorf("session: revoke handle: %w", ErrMalformedToken)
	}
	if _, err := b64.DecodeString(handle); err != nil {
		return false, fmt.Errorf("session: revoke handle: %w", ErrMalformedToken)
	}
	n, err := s.deleteUser(ctx, "revoke handle", userID, handle)
	return n == 1, err
}

func (s *Store) deleteUser(ctx context.Context, op, userID, handle string) (int, error) {
	if userID == "" {
		return 0, fmt.Errorf("session: %s: empty user ID", op)
	}
	if s.isClosed() {
		return 0, ErrClosed
	}
	tag := b64.EncodeToString(s.userTag(userID))
	n, err := s.write(ctx, scriptDeleteUser, repeatable, []string{s.indexKey(tag)}, s.now(), s.base(tag), userID, handle).Int64()
	if err != nil {
		return 0, wrapWrite(op, err)
	}
	return int(n), nil
}

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
		err := scanAll(ctx, c, pre+"{*}:s:*", "hash", func(keys []string) error {
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
		return scanAll(ctx, c, pre+"{*}:u", "zset", func(keys []string) error {
			cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, k := range keys {
					base := strings.TrimSuffix(k, ":u") + ":s:"
					scriptCleanup.EvalSha(ctx, p, []string{k}, s.now(), base)
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

func boolArg(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func msArg(v any) time.Time {
	s, _ := v.(string)
	ms, _ := strconv.ParseInt(s, 10, 64)
	return time.UnixMilli(ms)
}
