package retry

import (
	"errors"
	"net"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Which clients may send a command again after its reply was lost, from
// their options and from whether a Hook governs them.
func TestResendsAfterLostReply(t *testing.T) {
	t.Parallel()
	addr := "127.0.0.1:1" // nothing is sent
	hookedCluster := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{addr}, MaxRetries: -1})
	NewHook(Policy{}).Install(hookedCluster)
	for _, c := range []struct {
		name string
		rdb  redis.UniversalClient
		want bool
	}{
		{"client, default options", redis.NewClient(&redis.Options{Addr: addr}), true},
		{"client, MaxRetries 1", redis.NewClient(&redis.Options{Addr: addr, MaxRetries: 1}), true},
		{"client, MaxRetries -1", redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1}), false},
		{"failover client, default options", redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "m", SentinelAddrs: []string{addr}}), true},
		{"ring, default options", redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": addr}}), true},
		{"ring, MaxRetries -1", redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": addr}, MaxRetries: -1}), false},
		{"cluster, MaxRetries -1", redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{addr}, MaxRetries: -1}), true},
		{"cluster with a Hook", hookedCluster, false},
	} {
		t.Cleanup(func() { _ = c.rdb.Close() })
		if got := ResendsAfterLostReply(c.rdb); got != c.want {
			t.Errorf("%s: ResendsAfterLostReply = %v, want %v", c.name, got, c.want)
		}
	}
}

// A refused dial proves only that the last attempt did not run: through a
// client that re-sends, the write's outcome is unknown; through one that
// does not, it was not applied.
func TestAmbiguousVia(t *testing.T) {
	t.Parallel()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	ringDown := errors.New("redis: all ring shards are down")
	resends := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	once := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	t.Cleanup(func() { _, _ = resends.Close(), once.Close() })
	for _, c := range []struct {
		name          string
		rdb           redis.UniversalClient
		err           error
		wantAmbiguous bool
	}{
		{"refused dial, client re-sends", resends, refused, true},
		{"refused dial, client does not", once, refused, false},
		{"ring shards down, client re-sends", resends, ringDown, true},
		{"reset after the request left", once, reset, true},
		{"an error reply", resends, redis.Nil, false},
	} {
		err := AmbiguousVia(c.rdb, "set", c.err)
		if got := errors.Is(err, ErrAmbiguous); got != c.wantAmbiguous {
			t.Errorf("%s: AmbiguousVia = %v, ambiguous %v, want %v", c.name, err, got, c.wantAmbiguous)
		}
		if !errors.Is(err, c.err) {
			t.Errorf("%s: AmbiguousVia = %v lost its cause", c.name, err)
		}
	}
	if AmbiguousVia(resends, "set", nil) != nil {
		t.Error("AmbiguousVia(nil) is not nil")
	}
	if !NotApplied(ringDown) || !IsUnavailable(ringDown) {
		t.Error("a Ring with every shard down sent nothing: want NotApplied and IsUnavailable")
	}
}
