package scsstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/scs/goredisstore"
	"github.com/alexedwards/scs/v2"
	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit"
	"github.com/rediskit/rediskit/internal/redistest"
	"github.com/rediskit/rediskit/scsstore"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// counter counts the round trips of the operations under test: one per
// command sent alone, one per pipeline, per node. Connection setup and
// the cluster client's topology reads are not the store's and not counted.
type counter struct {
	mu    sync.Mutex
	trips int
	names []string
}

func (c *counter) reset() (trips int, names []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	trips, names = c.trips, c.names
	c.trips, c.names = 0, nil
	return trips, names
}

func (c *counter) add(cmds []redis.Cmder) {
	for _, cmd := range cmds {
		switch cmd.Name() {
		case "hello", "client", "auth", "select", "cluster", "readonly", "ping":
			return
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.trips++
	for _, cmd := range cmds {
		c.names = append(c.names, cmd.Name())
	}
}

func (c *counter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *counter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.add([]redis.Cmder{cmd})
		return next(ctx, cmd)
	}
}

func (c *counter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.add(cmds)
		return next(ctx, cmds)
	}
}

// topo is one deployment under test: a client with a counting hook on every
// node, and a way to visit every master's keys.
type topo struct {
	rdb     redis.UniversalClient
	cnt     *counter
	masters func(ctx context.Context, fn func(context.Context, *redis.Client) error) error
}

func forEachTopology(t *testing.T, f func(t *testing.T, tp topo)) {
	t.Run("standalone", func(t *testing.T) {
		cnt := &counter{}
		rdb := redistest.Shared(t).Client(t)
		rdb.AddHook(cnt)
		f(t, topo{rdb: rdb, cnt: cnt, masters: func(ctx context.Context, fn func(context.Context, *redis.Client) error) error {
			return fn(ctx, rdb)
		}})
	})
	t.Run("cluster", func(t *testing.T) {
		cnt := &counter{}
		rdb := redistest.SharedCluster(t).Client(t)
		rdb.OnNewNode(func(n *redis.Client) { n.AddHook(cnt) })
		f(t, topo{rdb: rdb, cnt: cnt, masters: rdb.ForEachMaster})
	})
}

func newStore(t *testing.T, rdb redis.UniversalClient) *scsstore.Store {
	t.Helper()
	s, err := scsstore.New(rdb, scsstore.Options{Prefix: redistest.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// app is a web application on scs's SessionManager over the store.
type app struct {
	sm  *scs.SessionManager
	srv *httptest.Server
}

func newApp(t *testing.T, store scs.Store) *app {
	sm := scs.New()
	sm.Store = store
	sm.Lifetime = time.Hour
	mux := http.NewServeMux()
	mux.HandleFunc("/put", func(w http.ResponseWriter, r *http.Request) {
		sm.Put(r.Context(), "v", r.URL.Query().Get("v"))
	})
	mux.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, sm.GetString(r.Context(), "v"))
	})
	mux.HandleFunc("/renew", func(w http.ResponseWriter, r *http.Request) {
		if err := sm.RenewToken(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("/destroy", func(w http.ResponseWriter, r *http.Request) {
		if err := sm.Destroy(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	srv := httptest.NewServer(sm.LoadAndSave(mux))
	t.Cleanup(srv.Close)
	return &app{sm: sm, srv: srv}
}

// browser is one user agent with its own cookie jar.
type browser struct {
	t    *testing.T
	app  *app
	http *http.Client
}

func (a *app) browser(t *testing.T) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, app: a, http: &http.Client{Jar: jar}}
}

func (b *browser) get(path string) string {
	b.t.Helper()
	resp, err := b.http.Get(b.app.srv.URL + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b.t.Fatalf("GET %s: %s: %s", path, resp.Status, body)
	}
	return string(body)
}

// token is the session cookie the browser holds, "" when none.
func (b *browser) token() string {
	u, err := url.Parse(b.app.srv.URL)
	if err != nil {
		b.t.Fatal(err)
	}
	for _, c := range b.http.Jar.Cookies(u) {
		if c.Name == b.app.sm.Cookie.Name {
			return c.Value
		}
	}
	return ""
}

// TestSessionManager runs scs's own SessionManager over the store on a real
// standalone server and a real cluster: LoadAndSave, Put, Get, RenewToken,
// Destroy and Iterate, with the round trips of each request counted.
func TestSessionManager(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := context.Background()
		store := newStore(t, tp.rdb)
		a := newApp(t, store)
		alice := a.browser(t)
		// Warm the cluster client's slot map outside the counted requests.
		if _, _, err := store.Find("warm-up"); err != nil {
			t.Fatal(err)
		}
		tp.cnt.reset()

		trips := func(step string, want int, wantNames ...string) {
			t.Helper()
			got, names := tp.cnt.reset()
			if got != want || !slices.Equal(names, wantNames) {
				t.Fatalf("%s: %d round trips %v, want %d %v", step, got, names, want, wantNames)
			}
		}

		alice.get("/put?v=apple")
		trips("first request (new session, Put)", 1, "set")
		t1 := alice.token()
		if t1 == "" {
			t.Fatal("no session cookie")
		}
		if got := alice.get("/get"); got != "apple" {
			t.Fatalf("Get = %q, want apple", got)
		}
		trips("read-only request", 1, "get")

		alice.get("/renew")
		trips("RenewToken", 3, "get", "del", "set")
		t2 := alice.token()
		if t2 == "" || t2 == t1 {
			t.Fatalf("RenewToken left the token as it was")
		}
		if got := alice.get("/get"); got != "apple" {
			t.Fatalf("after RenewToken: Get = %q, want apple", got)
		}
		if _, found, err := store.Find(t1); err != nil || found {
			t.Fatalf("old token after RenewToken: found=%v err=%v", found, err)
		}
		if _, found, err := store.Find(t2); err != nil || !found {
			t.Fatalf("new token after RenewToken: found=%v err=%v", found, err)
		}
		tp.cnt.reset()

		alice.get("/destroy")
		trips("Destroy", 2, "get", "del")
		if _, found, err := store.Find(t2); err != nil || found {
			t.Fatalf("after Destroy: found=%v err=%v", found, err)
		}
		if got := alice.get("/get"); got != "" {
			t.Fatalf("after Destroy: Get = %q, want nothing", got)
		}

		// Iterate: visit every session, change some, destroy one.
		var users []*browser
		for i := range 5 {
			b := a.browser(t)
			b.get(fmt.Sprintf("/put?v=user%d", i))
			users = append(users, b)
		}
		tokens := map[string]bool{}
		for _, b := range users {
			tokens[b.token()] = true
		}
		seen := map[string]bool{}
		err := a.sm.Iterate(ctx, func(ctx context.Context) error {
			v := a.sm.GetString(ctx, "v")
			seen[v] = true
			if tokens[a.sm.Token(ctx)] {
				t.Errorf("Iterate handed out a session token: tokens are stored nowhere")
			}
			switch v {
			case "user0":
				return a.sm.Destroy(ctx)
			case "user1", "user2":
				a.sm.Put(ctx, "v", v+"-renamed")
				_, _, err := a.sm.Commit(ctx)
				return err
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]bool{"user0": true, "user1": true, "user2": true, "user3": true, "user4": true}
		if len(seen) != len(want) {
			t.Fatalf("Iterate saw %v, want %v", seen, want)
		}
		for v := range want {
			if !seen[v] {
				t.Fatalf("Iterate saw %v, want %v", seen, want)
			}
		}
		for i, want := range []string{"", "user1-renamed", "user2-renamed", "user3", "user4"} {
			if got := users[i].get("/get"); got != want {
				t.Errorf("user %d after Iterate: %q, want %q", i, got, want)
			}
		}
	})
}

// TestNoTokenAtRest scans the whole keyspace of every master after
// sessions were made through the SessionManager and committed directly, and
// finds no token in any key or value: each session's key is the SHA-256 of
// its token in the hash tag.
func TestNoTokenAtRest(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := context.Background()
		prefix := redistest.Prefix(t)
		store, err := scsstore.New(tp.rdb, scsstore.Options{Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		a := newApp(t, store)
		var tokens []string
		for i := range 10 {
			b := a.browser(t)
			b.get(fmt.Sprintf("/put?v=%d", i))
			tokens = append(tokens, b.token())
		}
		for i := range 20 {
			tok := fmt.Sprintf("fixed-token-%02d", i)
			if err := store.Commit(tok, []byte("data of "+tok[:5]), time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			tokens = append(tokens, tok)
		}
		handles, err := store.All()
		if err != nil {
			t.Fatal(err)
		}
		if len(handles) != len(tokens) {
			t.Fatalf("All: %d sessions, want %d", len(handles), len(tokens))
		}

		var mu sync.Mutex
		keys := map[string][]byte{}
		perMaster := 0
		err = tp.masters(ctx, func(ctx context.Context, node *redis.Client) error {
			var cursor uint64
			n := 0
			for {
				page, next, err := node.Scan(ctx, cursor, "*", 1000).Result()
				if err != nil {
					return err
				}
				for _, k := range page {
					v, err := node.Get(ctx, k).Bytes()
					if err != nil && !errors.Is(err, redis.Nil) && !strings.Contains(err.Error(), "WRONGTYPE") {
						return err
					}
					mu.Lock()
					keys[k] = v
					mu.Unlock()
					if strings.HasPrefix(k, prefix) {
						n++
					}
				}
				if cursor = next; cursor == 0 {
					break
				}
			}
			mu.Lock()
			if n > 0 {
				perMaster++
			}
			mu.Unlock()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range keys {
			for _, tok := range tokens {
				if strings.Contains(k, tok) || bytes.Contains(v, []byte(tok)) {
					t.Fatalf("a raw token is stored in key %q or its value", k)
				}
			}
			for h := range handles {
				if strings.Contains(k, h) || bytes.Contains(v, []byte(h)) {
					t.Fatalf("an iteration handle is stored in key %q or its value", k)
				}
			}
		}
		for _, tok := range tokens {
			sum := sha256.Sum256([]byte(tok))
			want := prefix + "{" + base64.RawURLEncoding.EncodeToString(sum[:]) + "}"
			if _, ok := keys[want]; !ok {
				t.Fatalf("no key %s for a committed session", want)
			}
		}
		if _, cluster := tp.rdb.(*redis.ClusterClient); cluster && perMaster < 2 {
			t.Fatalf("sessions on %d master(s): the hash tag should spread them", perMaster)
		}
	})
}

// TestRoundTrips: Find, Commit and Delete are one round trip each; an empty
// token or a foreign handle costs none.
func TestRoundTrips(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := context.Background()
		store := newStore(t, tp.rdb)
		if _, _, err := store.FindCtx(ctx, "warm-up"); err != nil {
			t.Fatal(err)
		}
		tp.cnt.reset()
		check := func(step string, want int, wantNames ...string) {
			t.Helper()
			got, names := tp.cnt.reset()
			if got != want || !slices.Equal(names, wantNames) {
				t.Fatalf("%s: %d round trips %v, want %d %v", step, got, names, want, wantNames)
			}
		}
		exp := time.Now().Add(time.Hour)
		if _, found, err := store.FindCtx(ctx, "tok"); err != nil || found {
			t.Fatalf("Find before Commit: found=%v err=%v", found, err)
		}
		check("Find (miss)", 1, "get")
		if err := store.CommitCtx(ctx, "tok", []byte("one"), exp); err != nil {
			t.Fatal(err)
		}
		check("Commit", 1, "set")
		if b, found, err := store.FindCtx(ctx, "tok"); err != nil || !found || string(b) != "one" {
			t.Fatalf("Find after Commit: %q found=%v err=%v", b, found, err)
		}
		check("Find (hit)", 1, "get")
		if err := store.CommitCtx(ctx, "tok", []byte("gone"), time.Now().Add(-time.Second)); err != nil {
			t.Fatal(err)
		}
		check("Commit with a past expiry", 1, "del")
		if err := store.DeleteCtx(ctx, "tok"); err != nil {
			t.Fatal(err)
		}
		check("Delete", 1, "del")

		if err := store.DeleteCtx(ctx, ""); err != nil {
			t.Fatal(err)
		}
		if _, found, err := store.FindCtx(ctx, ""); err != nil || found {
			t.Fatalf("Find(\"\"): found=%v err=%v", found, err)
		}
		if err := store.CommitCtx(ctx, "", []byte("x"), exp); !errors.Is(err, scsstore.ErrEmptyToken) {
			t.Fatalf("Commit(\"\"): %v, want ErrEmptyToken", err)
		}
		check("empty token", 0)
	})
}

// TestCommitExpiry: Commit sets the TTL scs asks for, rounded up to the
// millisecond, replaces data and expiry, and deletes the session when the
// expiry has passed; Redis then expires the key by itself.
func TestCommitExpiry(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := context.Background()
		prefix := redistest.Prefix(t)
		store, err := scsstore.New(tp.rdb, scsstore.Options{Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		key := func(tok string) string {
			sum := sha256.Sum256([]byte(tok))
			return prefix + "{" + base64.RawURLEncoding.EncodeToString(sum[:]) + "}"
		}
		before := time.Now()
		if err := store.Commit("a", []byte("first"), before.Add(90*time.Second)); err != nil {
			t.Fatal(err)
		}
		ttl, err := tp.rdb.PTTL(ctx, key("a")).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl <= 0 || ttl > 90*time.Second {
			t.Fatalf("PTTL after Commit(+90s) = %v, want in (0, 90s]", ttl)
		}
		// Overwrite: new data, new expiry (shorter, as scs's idle timeout does).
		if err := store.Commit("a", []byte("second"), time.Now().Add(30*time.Second)); err != nil {
			t.Fatal(err)
		}
		if ttl, err = tp.rdb.PTTL(ctx, key("a")).Result(); err != nil || ttl <= 0 || ttl > 30*time.Second {
			t.Fatalf("PTTL after the second Commit(+30s) = %v (%v), want in (0, 30s]", ttl, err)
		}
		if b, found, err := store.Find("a"); err != nil || !found || string(b) != "second" {
			t.Fatalf("Find after overwrite: %q found=%v err=%v", b, found, err)
		}
		// An expiry in the past deletes instead of storing without a TTL.
		for _, past := range []time.Time{time.Now().Add(-time.Hour), {}} {
			if err := store.Commit("a", []byte("third"), past); err != nil {
				t.Fatal(err)
			}
			if n, err := tp.rdb.Exists(ctx, key("a")).Result(); err != nil || n != 0 {
				t.Fatalf("key after Commit with expiry %v: exists=%d err=%v", past, n, err)
			}
			if _, found, err := store.Find("a"); err != nil || found {
				t.Fatalf("Find after Commit with a past expiry: found=%v err=%v", found, err)
			}
		}
		// Redis expires the session on its own: poll, with a bound.
		if err := store.Commit("b", []byte("short"), time.Now().Add(20*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, found, err := store.Find("b")
			if err != nil {
				t.Fatal(err)
			}
			if !found {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("a session committed to expire in 20ms is still there after 10s")
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// TestHandles: All keys sessions by handles that this Store accepts in
// place of the token; another Store, a tampered handle or a handle-shaped
// string find nothing and cannot write.
func TestHandles(t *testing.T) {
	rdb := redistest.Shared(t).Client(t)
	prefix := redistest.Prefix(t)
	a, err := scsstore.New(rdb, scsstore.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	b, err := scsstore.New(rdb, scsstore.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour)
	if err := a.Commit("the-token", []byte("data"), exp); err != nil {
		t.Fatal(err)
	}
	all, err := a.All()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 {
		t.Fatalf("All: %d sessions, want 1", len(all))
	}
	var h string
	for h = range all {
	}
	if strings.Contains(h, "the-token") || string(all[h]) != "data" {
		t.Fatalf("All: handle %q data %q", h, all[h])
	}
	if got, found, err := a.Find(h); err != nil || !found || string(got) != "data" {
		t.Fatalf("Find(handle): %q found=%v err=%v", got, found, err)
	}
	if err := a.Commit(h, []byte("via handle"), exp); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := a.Find("the-token"); string(got) != "via handle" {
		t.Fatalf("Commit(handle) did not reach the token's session: %q", got)
	}

	// Flip one character of the MAC, then of the hash, then the last
	// character's unused bits (strict base64 refuses them).
	flip := func(i int, to byte) string {
		c := []byte(h)
		if c[i] == to {
			to++
		}
		c[i] = to
		return string(c)
	}
	for _, bad := range []struct {
		store *scsstore.Store
		h     string
	}{
		{b, h},
		{a, flip(len(h)-5, 'A')},
		{a, flip(len("rediskit-scs.")+3, 'A')},
		{a, h[:len(h)-1] + string(h[len(h)-1]^1)},
		{a, h[:len(h)-2]},
		{a, "rediskit-scs." + strings.Repeat(".", 66)},
	} {
		if _, found, err := bad.store.Find(bad.h); err != nil || found {
			t.Errorf("Find(%q): found=%v err=%v", bad.h, found, err)
		}
		if err := bad.store.Commit(bad.h, []byte("x"), exp); !errors.Is(err, scsstore.ErrForeignHandle) {
			t.Errorf("Commit(%q): %v, want ErrForeignHandle", bad.h, err)
		}
		if err := bad.store.Delete(bad.h); err != nil {
			t.Errorf("Delete(%q): %v", bad.h, err)
		}
	}
	if _, found, err := a.Find("the-token"); err != nil || !found {
		t.Fatalf("a foreign handle's Delete removed the session: found=%v err=%v", found, err)
	}

	if err := b.Delete(h); err != nil {
		t.Fatal(err)
	}
	if err := a.Delete(h); err != nil {
		t.Fatal(err)
	}
	if all, err := a.All(); err != nil || len(all) != 0 || all == nil {
		t.Fatalf("All after Delete(handle): %v %v, want an empty map", all, err)
	}
}

// TestNewAndClients: New refuses a prefix with braces; All names the client
// types it cannot enumerate.
func TestNewAndClients(t *testing.T) {
	rdb := redistest.Shared(t).Client(t)
	for _, p := range []string{"a{b", "x}", "{tag}:"} {
		if _, err := scsstore.New(rdb, scsstore.Options{Prefix: p}); !errors.Is(err, scsstore.ErrBadPrefix) {
			t.Errorf("New(prefix %q): %v, want ErrBadPrefix", p, err)
		}
	}
	type wrapped struct{ *redis.Client }
	s, err := scsstore.New(wrapped{rdb}, scsstore.Options{Prefix: redistest.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.All(); !errors.Is(err, scsstore.ErrUnsupportedClient) {
		t.Fatalf("All on a wrapped client: %v, want ErrUnsupportedClient", err)
	}
	// A prefix with glob characters matches only itself in All's SCAN.
	g, err := scsstore.New(rdb, scsstore.Options{Prefix: redistest.Prefix(t) + "*?[x]"})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Commit("t", []byte("v"), time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if all, err := g.All(); err != nil || len(all) != 1 {
		t.Fatalf("All with a glob prefix: %d sessions, %v", len(all), err)
	}
}

// TestGoredisstorePastExpiry shows what scsstore's Commit avoids: scs's
// goredisstore passes a negative duration to SET for an expiry in the past,
// and go-redis then sends SET without a TTL, so the expired session is
// stored for ever and found again.
func TestGoredisstorePastExpiry(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Shared(t).Client(t)
	prefix := redistest.Prefix(t)
	peer := goredisstore.NewWithPrefix(rdb, prefix)
	if err := peer.CommitCtx(ctx, "tok", []byte("expired"), time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if ttl, err := rdb.TTL(ctx, prefix+"tok").Result(); err != nil || ttl != -1 {
		t.Fatalf("goredisstore after a past expiry: TTL %v (%v); want -1, no TTL", ttl, err)
	}
	if _, found, err := peer.FindCtx(ctx, "tok"); err != nil || !found {
		t.Fatalf("goredisstore: found=%v err=%v; want the expired session found", found, err)
	}
}

// TestLegacyMigration: with LegacyPrefix, sessions that scs's goredisstore
// (or redisstore) wrote under the token in clear survive the switch: the
// first request reads the legacy key and moves the session under its hashed
// key with the TTL it had left; the legacy key is gone, the next request is
// one GET, and an expired legacy session stored without a TTL is deleted.
func TestLegacyMigration(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := context.Background()
		prefix, legacy := redistest.Prefix(t), redistest.Prefix(t)
		store, err := scsstore.New(tp.rdb, scsstore.Options{Prefix: prefix, LegacyPrefix: legacy})
		if err != nil {
			t.Fatal(err)
		}
		a := newApp(t, store)
		encode := func(v string) []byte {
			b, err := scs.GobCodec{}.Encode(time.Now().Add(time.Hour), map[string]any{"v": v})
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		// What goredisstore and redisstore write: SET prefix+token data PX ttl.
		const live, expired = "legacyLiveToken0123456789abcdefghijklmnopqr", "legacyExpiredToken0123456789abcdefghijklm"
		if err := tp.rdb.Set(ctx, legacy+live, encode("from scs"), 50*time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		if err := tp.rdb.Set(ctx, legacy+expired, encode("expired"), 0).Err(); err != nil { // goredisstore's past expiry
			t.Fatal(err)
		}
		if _, _, err := store.Find("warm-up"); err != nil {
			t.Fatal(err)
		}
		tp.cnt.reset()

		b := a.browser(t)
		u, err := url.Parse(a.srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		b.http.Jar.SetCookies(u, []*http.Cookie{{Name: a.sm.Cookie.Name, Value: live}})
		if got := b.get("/get"); got != "from scs" {
			t.Fatalf("legacy session: Get = %q, want %q", got, "from scs")
		}
		trips, names := tp.cnt.reset()
		slices.Sort(names)
		if want := []string{"del", "get", "get", "pttl", "set"}; !slices.Equal(names, want) {
			t.Fatalf("first request on a legacy session: commands %v, want %v", names, want)
		}
		if _, cluster := tp.rdb.(*redis.ClusterClient); !cluster && trips != 3 {
			t.Fatalf("first request on a legacy session: %d round trips, want 3", trips)
		}
		if n, err := tp.rdb.Exists(ctx, legacy+live).Result(); err != nil || n != 0 {
			t.Fatalf("legacy key after the move: exists=%d err=%v", n, err)
		}
		sum := sha256.Sum256([]byte(live))
		ttl, err := tp.rdb.PTTL(ctx, prefix+"{"+base64.RawURLEncoding.EncodeToString(sum[:])+"}").Result()
		if err != nil || ttl <= 0 || ttl > 50*time.Minute {
			t.Fatalf("moved session: PTTL %v (%v), want the legacy TTL left, in (0, 50m]", ttl, err)
		}
		tp.cnt.reset()
		if got := b.get("/get"); got != "from scs" {
			t.Fatalf("moved session: Get = %q", got)
		}
		if trips, names := tp.cnt.reset(); trips != 1 || !slices.Equal(names, []string{"get"}) {
			t.Fatalf("request on a moved session: %d round trips %v, want one GET", trips, names)
		}

		if _, found, err := store.Find(expired); err != nil || found {
			t.Fatalf("legacy session without a TTL: found=%v err=%v, want not found", found, err)
		}
		if n, err := tp.rdb.Exists(ctx, legacy+expired).Result(); err != nil || n != 0 {
			t.Fatalf("legacy session without a TTL: exists=%d err=%v, want deleted", n, err)
		}

		// Delete reaches a legacy key not yet moved.
		if err := tp.rdb.Set(ctx, legacy+"other", encode("x"), time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		if err := store.Delete("other"); err != nil {
			t.Fatal(err)
		}
		if n, err := tp.rdb.Exists(ctx, legacy+"other").Result(); err != nil || n != 0 {
			t.Fatalf("legacy key after Delete: exists=%d err=%v", n, err)
		}
	})
}

// TestRediskitClient: the store runs on rediskit's own client (retries,
// breaker), All included.
func TestRediskitClient(t *testing.T) {
	ctx := context.Background()
	cfg, err := rediskit.ParseURL(redistest.Shared(t).URL())
	if err != nil {
		t.Fatal(err)
	}
	client, err := rediskit.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	store, err := scsstore.New(client.Redis(), scsstore.Options{Prefix: redistest.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	a := newApp(t, store)
	b := a.browser(t)
	b.get("/put?v=kit")
	if got := b.get("/get"); got != "kit" {
		t.Fatalf("Get = %q, want kit", got)
	}
	all, err := store.AllCtx(ctx)
	if err != nil || len(all) != 1 {
		t.Fatalf("All: %d sessions, %v; want 1", len(all), err)
	}
}
