package cache

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/internal/redistest"
)

// A plain go-redis failover client whose dials reach a replica while the
// sentinel names the master (as after a demotion the sentinel has not seen
// yet): the tracker must not arm tracking there, where the writes made on
// the master would never be reported. It retries, and the near tier keeps
// not serving. Without the role check it arms on the replica at once.
func TestNearRefusesTrackingANonMaster(t *testing.T) {
	s := redistest.StartSentinel(t)
	var replicaDials atomic.Int64
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName: s.MasterName, SentinelAddrs: s.SentinelAddrs(),
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr == s.Master.Addr {
				addr = s.Replica.Addr
				replicaDials.Add(1)
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	})
	t.Cleanup(func() { _ = rdb.Close() })
	c, err := New(rdb, Options{Prefix: "role", Near: &NearOptions{}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The tracker dials, is refused, and dials again: by the third dial it
	// has had two chances to arm. Without the check it arms on the first.
	waitFor(t, "the tracker armed, or three tracker dials to the replica", func() bool {
		return c.NearStats().Serving || replicaDials.Load() >= 3
	})
	if st := c.NearStats(); st.Serving {
		t.Fatalf("near tier serving with its tracking connection on a replica: %+v", st)
	}
	list, err := s.Replica.Do(context.Background(), "CLIENT", "LIST")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(list.(string), "\n") {
		if !strings.Contains(line, "name=rediskit-near") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if flags, ok := strings.CutPrefix(f, "flags="); ok && strings.Contains(flags, "t") {
				t.Fatalf("a tracking connection on the replica: %s", line)
			}
		}
	}
}
