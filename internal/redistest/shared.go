package redistest

import (
	"fmt"
	"os"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rediskit/rediskit/internal/redisproc"
)

// Main runs the tests of a package and then stops the shared fixtures. Call
// it from TestMain:
//
//	func TestMain(m *testing.M) { redistest.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	stopShared()
	os.Exit(code)
}

// shared holds one lazily started fixture: started on first use by any test
// of the binary, stopped by Main.
type shared[T any] struct {
	once sync.Once
	val  T
	err  error
}

func (s *shared[T]) get(t testing.TB, start func(dir string) (T, error)) T {
	t.Helper()
	return s.getBin(t, "redis-server", start)
}

// getBin is get for a fixture of the server binary bin.
func (s *shared[T]) getBin(t testing.TB, bin string, start func(dir string) (T, error)) T {
	t.Helper()
	s.once.Do(func() {
		dir, err := newDir()
		if err != nil {
			s.err = err
			return
		}
		sharedDirs.Add(dir)
		s.val, s.err = start(dir)
	})
	if s.err != nil {
		if _, lookErr := redisproc.Binary(bin); lookErr != nil {
			missing(t, lookErr)
		}
		t.Fatalf("redistest: shared fixture: %v", s.err)
	}
	return s.val
}

type dirSet struct {
	mu   sync.Mutex
	dirs []string
}

func (d *dirSet) Add(dir string) {
	d.mu.Lock()
	d.dirs = append(d.dirs, dir)
	d.mu.Unlock()
}

var (
	sharedServer   shared[*Server]
	sharedValkey   shared[*Server]
	sharedCluster  shared[*Cluster]
	sharedSentinel shared[*Sentinel]
	sharedDirs     dirSet
)

func stopShared() {
	redisproc.KillAll()
	sharedDirs.mu.Lock()
	defer sharedDirs.mu.Unlock()
	for _, d := range sharedDirs.dirs {
		_ = os.RemoveAll(d)
	}
}

// Shared returns a standalone server shared by every test of the binary.
// Tests keep apart by key prefix (see Prefix); none may flush it.
func Shared(t testing.TB) *Server {
	t.Helper()
	return sharedStandalone(t, &sharedServer, "redis-server")
}

// SharedValkey returns a standalone valkey-server shared by every test of
// the binary, as Shared. Without valkey-server on PATH the test skips
// loudly, or fails under CI=true (see ValkeyBinary).
func SharedValkey(t testing.TB) *Server {
	t.Helper()
	return sharedStandalone(t, &sharedValkey, "valkey-server")
}

// sharedStandalone returns the standalone server of s, started from the
// binary name by its first caller.
func sharedStandalone(t testing.TB, s *shared[*Server], name string) *Server {
	t.Helper()
	return s.getBin(t, name, func(dir string) (*Server, error) {
		bin, err := redisproc.Binary(name)
		if err != nil {
			return nil, err
		}
		p, err := redisproc.Start(redisproc.Config{Bin: bin, Dir: dir})
		if err != nil {
			return nil, err
		}
		return &Server{p}, nil
	})
}

// SharedCluster returns a 3-master cluster shared by every test of the
// binary. Tests keep apart by key prefix; none may kill its nodes.
func SharedCluster(t testing.TB) *Cluster {
	t.Helper()
	return sharedCluster.get(t, func(dir string) (*Cluster, error) {
		return startCluster(dir, clusterConfig{masters: 3})
	})
}

// SharedSentinel returns a sentinel setup shared by every test of the
// binary. Tests that fail over must use StartSentinel instead.
func SharedSentinel(t testing.TB) *Sentinel {
	t.Helper()
	return sharedSentinel.get(t, func(dir string) (*Sentinel, error) { return startSentinel(dir, sentinelConfig{}) })
}

var (
	prefixSeq   atomic.Int64
	unsafeInKey = regexp.MustCompile(`[^A-Za-z0-9_/.-]+`)
)

// Prefix returns a key prefix that no other test of the run uses, such as
// "t7:TestCache/cluster:". It has no glob or hash-tag characters.
func Prefix(t testing.TB) string {
	return fmt.Sprintf("t%d:%s:", prefixSeq.Add(1), unsafeInKey.ReplaceAllString(t.Name(), "_"))
}
