package redistest

import (
	"os"
	"testing"
)

// newDir makes a directory for one deployment's files: under /dev/shm when
// the machine has a writable one, else in the system's temporary directory.
//
// A server fsyncs nodes.conf on every CLUSTER SETSLOT (a reshard of 1,000
// slots is thousands of them) and its AOF on every write under appendfsync
// always. On a disk shared with a busy test run those fsyncs queue behind
// everything else. On 2026-12-01, a loop writing, fsyncing and renaming a
// small file every 2 ms for a minute, while `go test -race` compiled every
// test binary of the module from a clean cache, running none, saw fsync
// cycles of 1.5 ms at the median and 122 ms at worst on disk, against
// 0.1 ms and 24 ms in /dev/shm. A master that stalls past the cluster's
// 1 s node timeout is failed over, and a reshard under way fails with it.
// What the tests kill is a process, never the machine, so files in memory
// keep everything the crash tests read back.
func newDir() (string, error) {
	if d, err := os.MkdirTemp("/dev/shm", "redistest-"); err == nil {
		return d, nil
	}
	return os.MkdirTemp("", "redistest-")
}

// testDir is newDir, removed when the test ends.
func testDir(t testing.TB) string {
	t.Helper()
	d, err := newDir()
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}
