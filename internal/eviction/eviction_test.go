package eviction_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit"
	"github.com/rediskit/rediskit/cache"
	"github.com/rediskit/rediskit/internal/redistest"
	"github.com/rediskit/rediskit/session"
)

func TestMain(m *testing.M) { redistest.Main(m) }

const (
	sessions  = 100
	valueSize = 16 << 10
	// headroom is the memory above the empty server's use that maxmemory
	// allows; fill writes four times as much cache data.
	headroom = 1 << 20
	cacheTTL = time.Hour
	// Sessions expire before cache values: volatile-ttl evicts them first.
	idle = 10 * time.Minute
)

// outcome is what sharing one instance did to sessions and cache writes.
type outcome struct {
	lost       int   // sessions created before the fill that Get no longer finds
	cacheOK    int   // cache writes acknowledged
	cacheErrs  int   // cache writes refused
	oomErrs    int   // of them, errors matching rediskit.ErrOutOfMemory
	createErr  error // a session created after the fill
	getErrs    int   // session reads that failed (not "not found")
	evicted    int64 // INFO evicted_keys
	firstError string
}

// Sessions and cache share one instance whose maxmemory is 1 MiB above
// its empty use, and the cache writes 4 MiB. Under noeviction no session
// is lost and the cache writes that do not fit fail with
// rediskit.ErrOutOfMemory (which also matches redis.IsOOMError);
// under every other policy the writes succeed and sessions are evicted:
// users are logged out without any error.
func TestEvictionPolicies(t *testing.T) {
	policies := []string{"noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random",
		"volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"}
	for _, policy := range policies {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			srv := start(t, policy)
			c := open(t, srv, 0)
			o := share(t, c, c, srv)
			t.Logf("%s: %d of %d sessions lost; cache writes %d ok, %d refused (%d ErrOutOfMemory); evicted_keys %d; create after the fill: %v; first error: %s",
				policy, o.lost, sessions, o.cacheOK, o.cacheErrs, o.oomErrs, o.evicted, o.createErr, o.firstError)
			if o.getErrs != 0 {
				t.Errorf("%d session reads failed", o.getErrs)
			}
			if policy == "noeviction" {
				if o.lost != 0 || o.evicted != 0 {
					t.Errorf("noeviction lost %d sessions, evicted %d keys", o.lost, o.evicted)
				}
				if o.cacheErrs == 0 || o.oomErrs != o.cacheErrs {
					t.Errorf("noeviction: %d cache writes refused, %d of them ErrOutOfMemory; want > 0, all", o.cacheErrs, o.oomErrs)
				}
				// Redis checks memory before each command, and a full
				// instance hovers at its limit (a refused request counts
				// while it is read): a small session create may still
				// succeed, as it did in every run so far. If it fails, the
				// error is typed.
				if o.createErr != nil && (!errors.Is(o.createErr, rediskit.ErrOutOfMemory) || !redis.IsOOMError(o.createErr)) {
					t.Errorf("session create on a full noeviction instance: %v; want success or ErrOutOfMemory", o.createErr)
				}
				return
			}
			if o.cacheErrs != 0 {
				t.Errorf("%s refused %d cache writes: %s", policy, o.cacheErrs, o.firstError)
			}
			if o.evicted == 0 || o.lost == 0 {
				t.Errorf("%s evicted %d keys and lost %d sessions; want both > 0 (the data written is 4× maxmemory)", policy, o.evicted, o.lost)
			}
			if o.createErr != nil {
				t.Errorf("session create after the fill: %v", o.createErr)
			}
		})
	}
}

// Logical databases share the instance's memory and policy: sessions in
// database 1 are evicted for cache writes in database 0.
func TestEvictionSeparateDatabasesShareMemory(t *testing.T) {
	t.Parallel()
	srv := start(t, "allkeys-lru")
	o := share(t, open(t, srv, 1), open(t, srv, 0), srv)
	t.Logf("sessions in db 1, cache in db 0: %d of %d sessions lost, evicted_keys %d", o.lost, sessions, o.evicted)
	if o.lost == 0 || o.cacheErrs != 0 {
		t.Errorf("%d sessions lost, %d cache writes refused; want sessions lost and no refusal", o.lost, o.cacheErrs)
	}
}

// The safe layout: sessions on an instance with noeviction, the cache on
// its own instance with allkeys-lfu. The cache evicts its own entries and
// never refuses a write; no session is lost.
func TestEvictionSeparateInstances(t *testing.T) {
	t.Parallel()
	sessSrv, cacheSrv := start(t, "noeviction"), start(t, "allkeys-lfu")
	o := share(t, open(t, sessSrv, 0), open(t, cacheSrv, 0), cacheSrv)
	t.Logf("separate instances: %d sessions lost, cache writes %d ok, %d refused, cache evicted_keys %d", o.lost, o.cacheOK, o.cacheErrs, o.evicted)
	if o.lost != 0 || o.cacheErrs != 0 || o.createErr != nil || o.evicted == 0 {
		t.Errorf("lost %d sessions, %d cache writes refused, create %v, %d evicted; want 0, 0, nil, > 0",
			o.lost, o.cacheErrs, o.createErr, o.evicted)
	}
}

// start starts a server with the policy and maxmemory = its use now +
// headroom.
func start(t *testing.T, policy string) *redistest.Server {
	srv := redistest.Start(t, redistest.WithArgs("--maxmemory-policy", policy))
	ctx := context.Background()
	info, err := srv.Do(ctx, "INFO", "memory")
	if err != nil {
		t.Fatal(err)
	}
	used, err := strconv.ParseInt(field(fmt.Sprint(info), "used_memory"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Do(ctx, "CONFIG", "SET", "maxmemory", strconv.FormatInt(used+headroom, 10)); err != nil {
		t.Fatal(err)
	}
	return srv
}

func open(t *testing.T, srv *redistest.Server, db int) *rediskit.Client {
	c, err := rediskit.Open(context.Background(), rediskit.Config{Addr: srv.Addr, DB: db})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// share creates the sessions through sc, fills the cache through cc, then
// reads every session back and creates one more. srv is where the cache
// lives, for evicted_keys.
func share(t *testing.T, sc, cc *rediskit.Client, srv *redistest.Server) outcome {
	ctx := context.Background()
	st, err := session.New(sc.Redis(), session.Options{Prefix: "ev:s:", IdleTimeout: idle, UserKey: []byte("eviction test key")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ch, err := cache.New(cc.Redis(), cache.Options{Prefix: "ev:c"})
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()

	ids := make([]string, sessions)
	for i := range ids {
		s, err := st.Create(ctx, "user"+strconv.Itoa(i), map[string]any{"cart": strings.Repeat("x", 200)}, session.CreateOptions{})
		if err != nil {
			t.Fatalf("create session %d before the fill: %v", i, err)
		}
		ids[i] = s.ID()
	}

	var o outcome
	// Random bytes: the cache compresses what it can.
	rng := rand.New(rand.NewPCG(1, 2))
	value := make([]byte, valueSize)
	for i := 0; i < 4*headroom/valueSize; i++ {
		for j := range value {
			value[j] = byte(rng.Uint32())
		}
		err := ch.Set(ctx, "k"+strconv.Itoa(i), value, cacheTTL)
		if err == nil {
			o.cacheOK++
			continue
		}
		o.cacheErrs++
		if errors.Is(err, rediskit.ErrOutOfMemory) {
			o.oomErrs++
		}
		if o.firstError == "" {
			o.firstError = err.Error()
		}
	}
	// A 16 KiB write can be refused while a small one still fits (the
	// request itself counts against maxmemory while it is read): where
	// writes are refused, top up with small values until one is too.
	if o.cacheErrs > 0 {
		small := make([]byte, 256)
		for i := 0; i < 20000; i++ {
			for j := range small {
				small[j] = byte(rng.Uint32())
			}
			if err := ch.Set(ctx, "s"+strconv.Itoa(i), small, cacheTTL); err != nil {
				break
			}
		}
	}
	for _, id := range ids {
		_, err := st.Get(ctx, id)
		switch {
		case errors.Is(err, session.ErrNotFound):
			o.lost++
		case err != nil:
			o.getErrs++
			if o.firstError == "" {
				o.firstError = "session get: " + err.Error()
			}
		}
	}
	_, o.createErr = st.Create(ctx, "late user", nil, session.CreateOptions{})
	info, err := srv.Do(ctx, "INFO", "stats")
	if err != nil {
		t.Fatal(err)
	}
	o.evicted, _ = strconv.ParseInt(field(fmt.Sprint(info), "evicted_keys"), 10, 64)
	return o
}

func field(info, key string) string {
	for line := range strings.Lines(info) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && k == key {
			return v
		}
	}
	return ""
}
