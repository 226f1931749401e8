package rediskit

import (
	"testing"
	"time"
)

func TestHistogramBuckets(t *testing.T) {
	t.Parallel()
	var h histogram
	for _, d := range []time.Duration{30 * time.Microsecond, 80 * time.Microsecond, 700 * time.Microsecond, 3 * time.Millisecond, 20 * time.Second} {
		h.observe(d)
	}
	s := h.snapshot()
	if s.Sum != 30*time.Microsecond+80*time.Microsecond+700*time.Microsecond+3*time.Millisecond+20*time.Second {
		t.Fatalf("Sum = %v", s.Sum)
	}
	want := map[time.Duration]uint64{
		50 * time.Microsecond: 1, 100 * time.Microsecond: 2, 500 * time.Microsecond: 2,
		time.Millisecond: 3, 5 * time.Millisecond: 4, 10 * time.Second: 4,
	}
	if len(s.Buckets) != len(latencyBuckets) {
		t.Fatalf("%d buckets, want %d", len(s.Buckets), len(latencyBuckets))
	}
	var prev uint64
	for _, b := range s.Buckets {
		if b.Count < prev {
			t.Fatalf("bucket %v count %d below the previous %d: not cumulative", b.UpperBound, b.Count, prev)
		}
		prev = b.Count
		if w, ok := want[b.UpperBound]; ok && b.Count != w {
			t.Errorf("bucket le=%v: %d, want %d", b.UpperBound, b.Count, w)
		}
	}
	if s.Count != 5 {
		t.Fatalf("Count = %d, want 5 (the 20 s call is above every bound but counted)", s.Count)
	}
}
