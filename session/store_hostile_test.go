package session_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/session"
)

// hostileUsers are user IDs crafted to collide with other users' keys,
// tags or index entries, or to break key building.
var hostileUsers = map[string]string{
	"plain":          "alice",
	"close brace":    "alice}",
	"hash tag":       "{alice}",
	"open brace":     "{alice",
	"key fragment":   "a:s:b",
	"index-like":     "alice}:u",
	"globs":          "*?[a-z]\\",
	"NUL inside":     "ali\x00ce",
	"NUL suffix":     "alice\x00",
	"unicode":        "Алиса-👩‍💻",
	"invalid utf-8":  "\xff\xfealice",
	"space":          " alice",
	"max length":     strings.Repeat("u", 512),
	"one over max":   strings.Repeat("u", 513),
	"10 KB":          strings.Repeat("x", 10<<10),
	"10 KB with NUL": strings.Repeat("\x00", 10<<10),
}

// TestHostileUserIDs creates a session for each hostile user ID: every user
// sees exactly its own sessions, "log out everywhere" of one user ends
// nothing of another's, and IDs over 512 bytes are refused with ErrTooLarge.
func TestHostileUserIDs(t *testing.T) {
	forEachTopology(t, session.Options{}, func(t *testing.T, e *env) {
		ctx := context.Background()
		ids := map[string]string{} // user ID -> session ID
		for name, uid := range hostileUsers {
			s, err := e.store.Create(ctx, uid, map[string]any{"owner": []byte(uid)}, session.CreateOptions{})
			if len(uid) > 512 {
				if !errors.Is(err, session.ErrTooLarge) {
					t.Errorf("%s: Create = %v, want ErrTooLarge", name, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s: Create: %v", name, err)
			}
			ids[uid] = s.ID()
		}
		// Another user's key names, tag and handle used as user IDs.
		for _, k := range keysWith(t, e.rdb, e.opts.Prefix) {
			if _, err := e.store.Create(ctx, k, map[string]any{"owner": []byte(k)}, session.CreateOptions{}); err != nil {
				t.Fatalf("Create for user %q: %v", k, err)
			}
			ids[k] = ""
		}
		for uid, sid := range ids {
			list, err := e.store.ListByUser(ctx, uid)
			if err != nil || len(list) != 1 || list[0].UserID != uid {
				t.Fatalf("ListByUser(%.40q) = %d sessions, %v; want its own one", uid, len(list), err)
			}
			if sid == "" {
				continue
			}
			s, err := e.store.Get(ctx, sid)
			if err != nil {
				t.Fatalf("Get for %.40q: %v", uid, err)
			}
			var owner []byte // bytes: JSON would turn invalid UTF-8 into U+FFFD
			if err := s.Decode("owner", &owner); err != nil || string(owner) != uid || s.Info().UserID != uid {
				t.Fatalf("session of %.40q holds owner %.40q, user %.40q, %v", uid, owner, s.Info().UserID, err)
			}
		}
		// Users that have no session (too long, or never created) list
		// nothing and delete nothing.
		for _, uid := range []string{hostileUsers["10 KB"], "alice\x00\x00", "ALICE", "alice "} {
			if list, err := e.store.ListByUser(ctx, uid); err != nil || len(list) != 0 {
				t.Errorf("ListByUser(%.20q) = %d, %v", uid, len(list), err)
			}
			if n, err := e.store.DeleteByUser(ctx, uid); err != nil || n != 0 {
				t.Errorf("DeleteByUser(%.20q) = %d, %v", uid, n, err)
			}
		}
		if n, err := e.store.DeleteByUser(ctx, "alice"); err != nil || n != 1 {
			t.Fatalf("DeleteByUser(alice) = %d, %v", n, err)
		}
		delete(ids, "alice")
		for uid, sid := range ids {
			if sid == "" {
				continue
			}
			if _, err := e.store.Get(ctx, sid); err != nil {
				t.Errorf("DeleteByUser(alice) ended the session of %.40q: %v", uid, err)
			}
		}
		// Revoking by a handle of another user's session does nothing.
		victim, _ := e.store.ListByUser(ctx, "{alice}")
		if ok, err := e.store.RevokeHandle(ctx, "alice}", victim[0].Handle); err != nil || ok {
			t.Errorf("RevokeHandle of another user's handle = %v, %v", ok, err)
		}
		if _, err := e.store.Get(ctx, ids["{alice}"]); err != nil {
			t.Errorf("{alice}'s session after another user revoked its handle: %v", err)
		}
		for _, empty := range []func() error{
			func() error { _, err := e.store.ListByUser(ctx, ""); return err },
			func() error { _, err := e.store.DeleteByUser(ctx, ""); return err },
		} {
			if err := empty(); err == nil || !strings.Contains(err.Error(), "empty user ID") {
				t.Errorf("empty user ID = %v", err)
			}
		}
	})
}

// TestHostileValuesAndKeys: value keys that look like metadata fields,
// globs or binary; values over the limit; and they never clobber the
// session's metadata or lose stored values.
func TestHostileValuesAndKeys(t *testing.T) {
	forEachTopology(t, session.Options{MaxValueBytes: 1024}, func(t *testing.T, e *env) {
		ctx := context.Background()
		data := map[string]any{
			"": "empty key", "m": "not metadata", "u": "mallory", "x": "device", "d:m": "nested",
			"*": "star", "{tag}": "tag", "\x00": "nul", "ключ": "unicode", strings.Repeat("k", 256): "max key",
		}
		s, err := e.store.Create(ctx, "victim", data, session.CreateOptions{IP: "10.0.0.1", UserAgent: strings.Repeat("\x00", 512)})
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.store.Get(ctx, s.ID())
		if err != nil {
			t.Fatal(err)
		}
		if got.Info().UserID != "victim" || got.Version() != 1 || got.Info().IP != "10.0.0.1" {
			t.Fatalf("a value key overwrote metadata: %+v version %d", got.Info(), got.Version())
		}
		for k, v := range data {
			var s string
			if err := got.Decode(k, &s); err != nil || s != v {
				t.Errorf("value %.20q = %q, %v", k, s, err)
			}
		}
		big := strings.Repeat("x", 1100)
		for name, err := range map[string]error{
			"Create with a big value": func() error {
				_, err := e.store.Create(ctx, "victim", map[string]any{"big": big}, session.CreateOptions{})
				return err
			}(),
			"Create with a long key": func() error {
				_, err := e.store.Create(ctx, "victim", map[string]any{strings.Repeat("k", 257): 1}, session.CreateOptions{})
				return err
			}(),
			"Create with a long IP": func() error {
				_, err := e.store.Create(ctx, "victim", nil, session.CreateOptions{IP: strings.Repeat("1", 513)})
				return err
			}(),
			"Update with a big value": func() error {
				_, err := e.store.Update(ctx, s.ID(), session.Changes{Set: map[string]any{"m": big}})
				return err
			}(),
		} {
			if !errors.Is(err, session.ErrTooLarge) {
				t.Errorf("%s = %v, want ErrTooLarge", name, err)
			}
		}
		if list, _ := e.store.ListByUser(ctx, "victim"); len(list) != 1 {
			t.Errorf("refused creates left %d sessions", len(list))
		}
		after, err := e.store.Get(ctx, s.ID())
		if err != nil || after.Version() != 1 {
			t.Fatalf("after refused writes: version %v, %v", after, err)
		}
		var m string
		if err := after.Decode("m", &m); err != nil || m != "not metadata" {
			t.Errorf("value m after a refused update = %q, %v", m, err)
		}
		// A value the codec cannot encode: an error, nothing written.
		if _, err := e.store.Update(ctx, s.ID(), session.Changes{Set: map[string]any{"ch": make(chan int)}}); err == nil {
			t.Error("Update with an unencodable value succeeded")
		}
	})
}

// TestHostileTokensTTLsAndContexts: tokens that are near misses of real
// ones, zero and negative durations, and ended contexts.
func TestHostileTokensTTLsAndContexts(t *testing.T) {
	forEachTopology(t, session.Options{}, func(t *testing.T, e *env) {
		ctx := context.Background()
		s, err := e.store.Create(ctx, "bob", map[string]any{"n": 1}, session.CreateOptions{IdleTimeout: -time.Minute, AbsoluteTimeout: 0})
		if err != nil {
			t.Fatal(err)
		}
		// Zero and negative per-session timeouts mean the store's defaults.
		if idle := s.Info().IdleTimeout; idle != 30*time.Minute {
			t.Errorf("negative IdleTimeout gave %v, want the default 30m", idle)
		}
		if d := time.Until(s.Info().Deadline); d < 23*time.Hour || d > 25*time.Hour {
			t.Errorf("zero AbsoluteTimeout gave a deadline in %v, want the default 24h", d)
		}
		for _, d := range []time.Duration{0, -time.Hour} {
			if _, _, err := e.store.Extend(ctx, s.ID(), d); err == nil || !strings.Contains(err.Error(), "must be positive") {
				t.Errorf("Extend(%v) = %v", d, err)
			}
		}
		id := s.ID()
		handle := s.Info().Handle
		e.count.reset()
		for _, tok := range []string{
			"", id[:63], id + "A", id[:63] + "=", id[:63] + "+", id[:63] + "/", id[:63] + "\x00", strings.ToUpper(id),
			handle, handle + strings.Repeat("A", 21), "{" + id[1:], id[:32] + "*" + id[33:], strings.Repeat("A", 64),
		} {
			if tok == id {
				continue
			}
			if _, err := e.store.Get(ctx, tok); !errors.Is(err, session.ErrNotFound) && !errors.Is(err, session.ErrMalformedToken) {
				t.Errorf("Get(%q) = %v", tok, err)
			}
			if _, err := e.store.Rotate(ctx, tok); err == nil {
				t.Errorf("Rotate(%q) succeeded", tok)
			}
			if ok, err := e.store.Delete(ctx, tok); ok {
				t.Errorf("Delete(%q) deleted something (%v)", tok, err)
			}
		}
		if _, err := e.store.Get(ctx, id); err != nil {
			t.Fatalf("the real session after near-miss tokens: %v", err)
		}
		// Ended contexts: the context's error, and the session unchanged.
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		expired, cancel2 := context.WithDeadline(ctx, time.Now().Add(-time.Second))
		defer cancel2()
		for _, cc := range []context.Context{cancelled, expired} {
			want := cc.Err()
			for name, err := range map[string]error{
				"Get": func() error { _, err := e.store.Get(cc, id); return err }(),
				"Update": func() error {
					_, err := e.store.Update(cc, id, session.Changes{Set: map[string]any{"n": 2}})
					return err
				}(),
				"Rotate":       func() error { _, err := e.store.Rotate(cc, id); return err }(),
				"Delete":       func() error { _, err := e.store.Delete(cc, id); return err }(),
				"DeleteByUser": func() error { _, err := e.store.DeleteByUser(cc, "bob"); return err }(),
				"Create":       func() error { _, err := e.store.Create(cc, "bob", nil, session.CreateOptions{}); return err }(),
				"Stats":        func() error { _, err := e.store.Stats(cc); return err }(),
			} {
				if !errors.Is(err, want) {
					t.Errorf("%s with an ended context = %v, want %v", name, err, want)
				}
			}
		}
		got, err := e.store.Get(ctx, id)
		if err != nil || got.Version() != 1 {
			t.Fatalf("session after calls with ended contexts: %v, %v", got, err)
		}
		if list, _ := e.store.ListByUser(ctx, "bob"); len(list) != 1 {
			t.Fatalf("bob has %d sessions, want 1", len(list))
		}
	})
}

// TestPlantedCorruptSessionData: another client writes junk into stored
// sessions and indexes. Every call gets ErrCorrupt (or, for junk index
// members, ignores them); nothing panics, the junk is not overwritten, and
// the user's other sessions keep working.
func TestPlantedCorruptSessionData(t *testing.T) {
	forEachTopology(t, session.Options{}, func(t *testing.T, e *env) {
		ctx := context.Background()
		good, err := e.store.Create(ctx, "carol", map[string]any{"v": 1}, session.CreateOptions{IP: "1.2.3.4"})
		if err != nil {
			t.Fatal(err)
		}
		bad, err := e.store.Create(ctx, "carol", map[string]any{"v": 2}, session.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var badKey, idxKey string
		for _, k := range keysWith(t, e.rdb, e.opts.Prefix) {
			switch {
			case strings.HasSuffix(k, bad.Info().Handle):
				badKey = k
			case strings.HasSuffix(k, ":u"):
				idxKey = k
			}
		}
		if badKey == "" || idxKey == "" {
			t.Fatal("keys not found")
		}
		orig, err := e.rdb.Get(ctx, badKey).Result()
		if err != nil {
			t.Fatal(err)
		}
		meta, user, device, kv, ok := session.SplitStored(orig)
		if !ok {
			t.Fatalf("stored form not understood: %q", orig)
		}
		// Junk in the device info or the values is the reader's problem: Get
		// fails with ErrCorrupt, while Update and Extend, which do not read
		// them, keep them as they are. Junk in the format or the metadata
		// stops every call.
		for _, tc := range []struct {
			name, raw string
			valueOnly bool
		}{
			{"short metadata", session.JoinStored("1,2,3", user, device, kv...), false},
			{"short device", session.JoinStored(meta, user, "99:short", kv...), true},
			{"empty value", session.JoinStored(meta, user, device, append(kv, "v2", "")...), true},
			{"future envelope", session.JoinStored(meta, user, device, append(kv, "w", "\x02future envelope")...), true},
			{"future format", "\x03" + orig[1:], false},
			{"truncated", orig[:len(orig)-2], true},
			{"length past the end", orig + "99:x", true},
			{"metadata past int64", session.JoinStored("99999999999999999999,1,1,1,1,0", user, device, kv...), false},
			{"negative metadata", session.JoinStored("-1,-1,-1,-1,-1,0", user, device, kv...), false},
			{"bad persist flag", session.JoinStored("1,1,1,1,1,2", user, device, kv...), false},
			{"no metadata", session.JoinStored("", user, device, kv...), false},
		} {
			if err := e.rdb.Set(ctx, badKey, tc.raw, redis.KeepTTL).Err(); err != nil {
				t.Fatal(err)
			}
			if _, err := e.store.Get(ctx, bad.ID()); !errors.Is(err, session.ErrCorrupt) && !errors.Is(err, session.ErrNotFound) {
				t.Errorf("Get with %s = %v, want ErrCorrupt or ErrNotFound", tc.name, err)
			}
			if tc.valueOnly {
				continue
			}
			for name, err := range map[string]error{
				"Update": func() error {
					_, err := e.store.Update(ctx, bad.ID(), session.Changes{Set: map[string]any{"v": 3}})
					return err
				}(),
				"Extend": func() error { _, _, err := e.store.Extend(ctx, bad.ID(), time.Hour); return err }(),
			} {
				if err == nil || !(errors.Is(err, session.ErrCorrupt) || errors.Is(err, session.ErrNotFound)) {
					t.Errorf("%s with %s = %v, want ErrCorrupt or ErrNotFound", name, tc.name, err)
				}
			}
			if got, _ := e.rdb.Get(ctx, badKey).Result(); got != tc.raw && !tc.valueOnly {
				t.Errorf("%s: planted data overwritten with %q", tc.name, got)
			}
		}
		// The other session of the same user still works, and listing skips
		// the corrupt one.
		if _, err := e.store.Get(ctx, good.ID()); err != nil {
			t.Fatalf("the good session: %v", err)
		}
		list, err := e.store.ListByUser(ctx, "carol")
		if err != nil || len(list) == 0 || list[0].Handle != good.Info().Handle {
			t.Fatalf("ListByUser with a corrupt sibling = %+v, %v", list, err)
		}
		// Junk index members: pruned or ignored, never followed out of the
		// user's slot.
		for _, mem := range []string{"*", "../../x", "", strings.Repeat("z", 4096), "\x00"} {
			e.rdb.ZAdd(ctx, idxKey, redisZ(time.Now().Add(time.Hour), mem))
		}
		if list, err := e.store.ListByUser(ctx, "carol"); err != nil || len(list) != 1 {
			t.Fatalf("ListByUser with junk index members = %d, %v", len(list), err)
		}
		if _, err := e.store.Cleanup(ctx); err != nil {
			t.Fatalf("Cleanup with junk: %v", err)
		}
		// The index replaced by a string: a typed error, and the string stays.
		e.rdb.Del(ctx, idxKey)
		e.rdb.Set(ctx, idxKey, "not a zset", 0)
		for name, err := range map[string]error{
			"Create":       func() error { _, err := e.store.Create(ctx, "carol", nil, session.CreateOptions{}); return err }(),
			"ListByUser":   func() error { _, err := e.store.ListByUser(ctx, "carol"); return err }(),
			"DeleteByUser": func() error { _, err := e.store.DeleteByUser(ctx, "carol"); return err }(),
		} {
			if !errors.Is(err, session.ErrCorrupt) {
				t.Errorf("%s with a string index = %v, want ErrCorrupt", name, err)
			}
		}
		if v, _ := e.rdb.Get(ctx, idxKey).Result(); v != "not a zset" {
			t.Errorf("the planted index was overwritten: %q", v)
		}
		if _, err := e.store.Stats(ctx); err != nil {
			t.Errorf("Stats with a string index: %v", err)
		}
		e.rdb.Del(ctx, idxKey, badKey)
	})
}

func redisZ(exp time.Time, member string) redis.Z {
	return redis.Z{Score: float64(exp.UnixMilli()), Member: member}
}
