package unique

import (
	"strings"
	"testing"
)

// TestUnique: values of one Source differ, two Sources differ by prefix,
// and no value exceeds MaxLen.
func TestUnique(t *testing.T) {
	a, b := New(), New()
	seen := map[string]bool{}
	for range 1000 {
		v := a.Next()
		if seen[v] || len(v) > MaxLen {
			t.Fatalf("value %q repeated or longer than %d", v, MaxLen)
		}
		seen[v] = true
	}
	pa, _, _ := strings.Cut(a.Next(), ":")
	pb, _, _ := strings.Cut(b.Next(), ":")
	if pa == pb || len(pa) != 32 {
		t.Fatalf("prefixes %q and %q", pa, pb)
	}
	a.seq.Store(^uint64(0) - 1)
	if v := a.Next(); len(v) > MaxLen {
		t.Fatalf("%q longer than %d", v, MaxLen)
	}
}
