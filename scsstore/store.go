package scsstore

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/redis/go-redis/v9"
)

// Errors returned by New, Commit and All. None of them carries a token.
var (
	// ErrBadPrefix: Options.Prefix holds '{' or '}', which would move the
	// hash tag out of the token's hash.
	ErrBadPrefix = errors.New("scsstore: prefix must not contain '{' or '}'")
	// ErrEmptyToken: Commit was given no token.
	ErrEmptyToken = errors.New("scsstore: empty session token")
	// ErrForeignHandle: Commit was given an iteration handle that this Store
	// did not issue (another instance's, or a forged one).
	ErrForeignHandle = errors.New("scsstore: iteration handle not issued by this store")
	// ErrUnsupportedClient: All cannot enumerate the masters of this client
	// type.
	ErrUnsupportedClient = errors.New("scsstore: All needs a *redis.Client, *redis.ClusterClient or *redis.Ring")
)

// Options configures a Store. The zero value of every field means "use the
// default" stated in its comment.
type Options struct {
	// Prefix starts every key. It must not contain '{' or '}'. Default
	// "scsstore:".
	Prefix string

	// LegacyPrefix, when set, is the prefix of sessions written by scs's
	// goredisstore or redisstore (theirs is "scs:session:" by default), kept
	// under the token in clear. A Find that misses reads LegacyPrefix+token
	// and, when found, moves the session under its hashed key with the TTL
	// it had left and deletes the legacy key: users keep their sessions
	// across the switch, and each legacy key is gone at its first use. A
	// legacy session with no TTL (goredisstore stores an expired session so)
	// is deleted and not found. The move costs two more round trips, once
	// per session; Delete then also deletes the legacy key (one pipeline).
	// Default "": no legacy reads.
	LegacyPrefix string

	// ScanCount is the COUNT hint of the SCAN that All runs on each master;
	// each page of keys is read back in one pipeline. Default 1000.
	ScanCount int
}

// Store keeps scs sessions in Redis under hashed tokens. It implements
// scs.Store, scs.CtxStore, scs.IterableStore and scs.IterableCtxStore. It is
// safe for concurrent use and holds no goroutine, so it has no Close.
type Store struct {
	rdb       redis.UniversalClient
	prefix    string
	legacy    string
	scanCount int64
	handleKey [32]byte // authenticates iteration handles; never leaves the process
}

// b64 is strict: the unused low bits of the last character must be zero,
// so each hash and handle has exactly one spelling.
var b64 = base64.RawURLEncoding.Strict()

const (
	hashB64Len = (sha256.Size*8 + 5) / 6 // 43
	macLen     = 16
	macB64Len  = (macLen*8 + 5) / 6 // 22
	// handlePrefix starts every iteration handle. scs's tokens are
	// base64url, which has no '.', so no token scs draws is ever read as a
	// handle.
	handlePrefix = "rediskit-scs."
	handleLen    = len(handlePrefix) + hashB64Len + 1 + macB64Len
)

// New returns a Store over rdb. It panics when rdb is nil (a programmer
// error) and returns ErrBadPrefix for a prefix with braces.
func New(rdb redis.UniversalClient, opts Options) (*Store, error) {
	if rdb == nil {
		panic("scsstore: New with a nil client")
	}
	if opts.Prefix == "" {
		opts.Prefix = "scsstore:"
	}
	if strings.ContainsAny(opts.Prefix, "{}") {
		return nil, fmt.Errorf("%w: %q", ErrBadPrefix, opts.Prefix)
	}
	if opts.ScanCount <= 0 {
		opts.ScanCount = 1000
	}
	s := &Store{rdb: rdb, prefix: opts.Prefix, legacy: opts.LegacyPrefix, scanCount: int64(opts.ScanCount)}
	if _, err := rand.Read(s.handleKey[:]); err != nil {
		return nil, fmt.Errorf("scsstore: reading crypto/rand: %w", err)
	}
	return s, nil
}

// keyOf returns the key of the session that token (or a handle of this
// Store) names. ok is false for an empty token and for a handle this Store
// did not issue: no session has that key.
func (s *Store) keyOf(token string) (key string, ok bool) {
	if token == "" {
		return "", false
	}
	var sum [sha256.Size]byte
	if strings.HasPrefix(token, handlePrefix) {
		var valid bool
		if sum, valid = s.openHandle(token); !valid {
			return "", false
		}
	} else {
		sum = sha256.Sum256([]byte(token))
	}
	return s.keyFromSum(sum), true
}

func (s *Store) keyFromSum(sum [sha256.Size]byte) string {
	var h [hashB64Len]byte
	b64.Encode(h[:], sum[:])
	return s.prefix + "{" + string(h[:]) + "}"
}

func (s *Store) mac(sum []byte) []byte {
	m := hmac.New(sha256.New, s.handleKey[:])
	m.Write(sum)
	return m.Sum(nil)[:macLen]
}

// handle returns the iteration handle of the session stored under the
// token hash sum.
func (s *Store) handle(sum []byte) string {
	var b strings.Builder
	b.Grow(handleLen)
	b.WriteString(handlePrefix)
	b.WriteString(b64.EncodeToString(sum))
	b.WriteByte('.')
	b.WriteString(b64.EncodeToString(s.mac(sum)))
	return b.String()
}

// openHandle checks a handle's MAC and returns the token hash it carries.
func (s *Store) openHandle(h string) (sum [sha256.Size]byte, ok bool) {
	if len(h) != handleLen || h[handleLen-macB64Len-1] != '.' {
		return sum, false
	}
	rest := h[len(handlePrefix):]
	n, err := b64.Decode(sum[:], []byte(rest[:hashB64Len]))
	if err != nil || n != sha256.Size {
		return sum, false
	}
	mac, err := b64.DecodeString(rest[hashB64Len+1:])
	if err != nil || !hmac.Equal(mac, s.mac(sum[:])) {
		return sum, false
	}
	return sum, true
}

// Find returns the data of the session that token names. A token with no
// live session (never committed, expired, deleted, malformed, a foreign
// handle) is found false with a nil error. One GET.
func (s *Store) Find(token string) ([]byte, bool, error) {
	return s.FindCtx(context.Background(), token)
}

// FindCtx is Find with a context.
func (s *Store) FindCtx(ctx context.Context, token string) ([]byte, bool, error) {
	key, ok := s.keyOf(token)
	if !ok {
		return nil, false, nil
	}
	b, err := s.rdb.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		if s.legacy != "" && !strings.HasPrefix(token, handlePrefix) {
			return s.findLegacy(ctx, key, token)
		}
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("scsstore: find: %w", err)
	}
	return b, true, nil
}

// findLegacy reads a session a legacy store wrote under the token in clear
// (GET and PTTL in one pipeline) and moves it under key (SET with the TTL
// left, DEL of the legacy key, in one pipeline).
func (s *Store) findLegacy(ctx context.Context, key, token string) ([]byte, bool, error) {
	old := s.legacy + token
	pipe := s.rdb.Pipeline()
	get := pipe.Get(ctx, old)
	pttl := pipe.PTTL(ctx, old)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, false, fmt.Errorf("scsstore: find (legacy key): %w", err)
	}
	b, err := get.Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("scsstore: find (legacy key): %w", err)
	}
	ttl := pttl.Val()
	pipe = s.rdb.Pipeline()
	if ttl > 0 {
		pipe.Set(ctx, key, b, ttl)
	}
	pipe.Del(ctx, old)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, false, fmt.Errorf("scsstore: find (moving the legacy key): %w", err)
	}
	if ttl <= 0 {
		return nil, false, nil // stored without a TTL: an expired session
	}
	return b, true, nil
}

// Commit stores b as the data of the session that token names, replacing
// any data and expiry it had, to live until expiry (by this process's
// clock, rounded up to the millisecond). An expiry that is not in the future
// deletes the session. One SET with PX, or one DEL.
func (s *Store) Commit(token string, b []byte, expiry time.Time) error {
	return s.CommitCtx(context.Background(), token, b, expiry)
}

// CommitCtx is Commit with a context.
func (s *Store) CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) error {
	if token == "" {
		return ErrEmptyToken
	}
	key, ok := s.keyOf(token)
	if !ok {
		return ErrForeignHandle
	}
	ttl := time.Until(expiry)
	if ttl <= 0 {
		if err := s.rdb.Del(ctx, key).Err(); err != nil {
			return fmt.Errorf("scsstore: commit (expired, delete): %w", err)
		}
		return nil
	}
	// Round up: a session never expires before the expiry scs asked for.
	ttl = (ttl + time.Millisecond - 1).Truncate(time.Millisecond)
	if err := s.rdb.Set(ctx, key, b, ttl).Err(); err != nil {
		return fmt.Errorf("scsstore: commit: %w", err)
	}
	return nil
}

// Delete removes the session that token names. Deleting a session that does
// not exist is not an error. One DEL; none for an empty token.
func (s *Store) Delete(token string) error {
	return s.DeleteCtx(context.Background(), token)
}

// DeleteCtx is Delete with a context.
func (s *Store) DeleteCtx(ctx context.Context, token string) error {
	key, ok := s.keyOf(token)
	if !ok {
		return nil
	}
	if s.legacy != "" && !strings.HasPrefix(token, handlePrefix) {
		// Two keys in two slots: one pipeline, one DEL each.
		pipe := s.rdb.Pipeline()
		pipe.Del(ctx, key)
		pipe.Del(ctx, s.legacy+token)
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("scsstore: delete: %w", err)
		}
		return nil
	}
	if err := s.rdb.Del(ctx, key).Err(); err != nil {
		return fmt.Errorf("scsstore: delete: %w", err)
	}
	return nil
}

// All returns the data of every live session, keyed by iteration handle
// (see the package documentation): tokens are not stored, so they cannot
// be returned. The map is empty, not nil, when there is no session. It scans
// every master (SCAN, never KEYS) and reads each page of keys back in one
// pipeline; a session that expires meanwhile is left out.
func (s *Store) All() (map[string][]byte, error) {
	return s.AllCtx(context.Background())
}

// AllCtx is All with a context.
func (s *Store) AllCtx(ctx context.Context) (map[string][]byte, error) {
	out := map[string][]byte{}
	var mu sync.Mutex // ForEachMaster runs its function on every master at once
	// Keys hold no glob characters besides those of the prefix.
	match := globEscape(s.prefix) + "{*}"
	scan := func(ctx context.Context, node *redis.Client) error {
		var cursor uint64
		for {
			keys, next, err := node.Scan(ctx, cursor, match, s.scanCount).Result()
			if err != nil {
				return err
			}
			page, err := s.readPage(ctx, keys)
			if err != nil {
				return err
			}
			mu.Lock()
			maps.Copy(out, page)
			mu.Unlock()
			if cursor = next; cursor == 0 {
				return nil
			}
		}
	}
	var err error
	switch c := s.rdb.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, scan)
	case *redis.Ring:
		err = c.ForEachShard(ctx, scan)
	case *redis.Client:
		err = scan(ctx, c)
	default:
		return nil, fmt.Errorf("%w, not %T", ErrUnsupportedClient, s.rdb)
	}
	if err != nil {
		return nil, fmt.Errorf("scsstore: all: %w", err)
	}
	return out, nil
}

// readPage GETs one page of scanned keys in one pipeline through the
// store's client (on a Cluster it routes each key to its slot's master)
// and returns the live sessions under their handles.
func (s *Store) readPage(ctx context.Context, keys []string) (map[string][]byte, error) {
	type entry struct {
		sum [sha256.Size]byte
		cmd *redis.StringCmd
	}
	entries := make([]entry, 0, len(keys))
	pipe := s.rdb.Pipeline()
	for _, k := range keys {
		sum, ok := s.sumOfKey(k)
		if !ok {
			continue // not a key this package wrote
		}
		entries = append(entries, entry{sum: sum, cmd: pipe.Get(ctx, k)})
	}
	if len(entries) == 0 {
		return nil, nil
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make(map[string][]byte, len(entries))
	for _, e := range entries {
		b, err := e.cmd.Bytes()
		if errors.Is(err, redis.Nil) {
			continue // expired or deleted since the SCAN
		}
		if err != nil {
			return nil, err
		}
		out[s.handle(e.sum[:])] = b
	}
	return out, nil
}

// sumOfKey returns the token hash a key of this store carries.
func (s *Store) sumOfKey(key string) (sum [sha256.Size]byte, ok bool) {
	rest, found := strings.CutPrefix(key, s.prefix)
	if !found || len(rest) != hashB64Len+2 || rest[0] != '{' || rest[len(rest)-1] != '}' {
		return sum, false
	}
	n, err := b64.Decode(sum[:], []byte(rest[1:len(rest)-1]))
	return sum, err == nil && n == sha256.Size
}

// globEscape quotes the characters SCAN MATCH treats specially.
func globEscape(s string) string {
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

// The interfaces of scs v2.9.0 this store satisfies.
var (
	_ scs.Store            = (*Store)(nil)
	_ scs.CtxStore         = (*Store)(nil)
	_ scs.IterableStore    = (*Store)(nil)
	_ scs.IterableCtxStore = (*Store)(nil)
)
