package retry

import (
	"sync"
	"weak"

	"github.com/redis/go-redis/v9"
)

// AmbiguousVia is Ambiguous for a write that is safe to repeat (sent with
// Repeatable, or idempotent) and was sent through rdb. When rdb's own loops
// may have sent it again after its reply was lost (ResendsAfterLostReply),
// the last attempt's error says nothing about the earlier ones: a refused
// dial or a LOADING reply proves only that the last attempt did not run.
// Such an error is then an *AmbiguousError too, never one that reads as
// "nothing happened" (TestLostReplyThenRefused, internal/contract).
func AmbiguousVia(rdb redis.UniversalClient, name string, err error) error {
	if err != nil && Classify(err) == ClassTransient && ResendsAfterLostReply(rdb) {
		return &AmbiguousError{Cmd: name, Cause: err}
	}
	return Ambiguous(name, err)
}

// ResendsAfterLostReply reports whether go-redis's own loops on rdb may send
// a command again after its reply was lost: a Client (standalone or
// failover) or a Ring with retries (Options.MaxRetries, 3 by default), and a
// ClusterClient, whose redirect loop re-sends after a network error whatever
// MaxRetries says, unless a Hook was installed on it (its node hook stops
// that loop at a lost reply). A command marked Once is never re-sent either
// way. A client of any other type is assumed to re-send.
func ResendsAfterLostReply(rdb redis.UniversalClient) bool {
	switch c := rdb.(type) {
	case *redis.Client:
		return c.Options().MaxRetries > 0
	case *redis.Ring:
		return c.Options().MaxRetries > 0
	case *redis.ClusterClient:
		return !hooked.has(c)
	}
	return true
}

// hooked holds the ClusterClients a Hook was installed on. It holds them
// weakly: a client that is no longer used is not kept alive by it.
var hooked clusterSet

type clusterSet struct {
	mu sync.Mutex
	m  map[weak.Pointer[redis.ClusterClient]]struct{}
}

func (s *clusterSet) add(c *redis.ClusterClient) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[weak.Pointer[redis.ClusterClient]]struct{})
	}
	for p := range s.m {
		if p.Value() == nil {
			delete(s.m, p)
		}
	}
	s.m[weak.Make(c)] = struct{}{}
}

func (s *clusterSet) has(c *redis.ClusterClient) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.m[weak.Make(c)]
	return ok
}
