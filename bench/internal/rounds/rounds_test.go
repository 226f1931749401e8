package rounds

import (
	"slices"
	"testing"
)

// TestInOrder: round 0 keeps the order, every round runs each row once,
// and any two rows run in each order in half the rounds.
func TestInOrder(t *testing.T) {
	rows := []string{"a", "b", "c", "d"}
	if got := InOrder(rows, 0); !slices.Equal(got, rows) {
		t.Errorf("round 0 = %v, want %v", got, rows)
	}
	if got, want := InOrder(rows, 1), []string{"d", "c", "b", "a"}; !slices.Equal(got, want) {
		t.Errorf("round 1 = %v, want %v", got, want)
	}
	const n = 6
	before := map[[2]string]int{} // rounds in which [0] ran before [1]
	for r := range n {
		got := InOrder(rows, r)
		if !slices.Equal(slices.Sorted(slices.Values(got)), rows) {
			t.Fatalf("round %d = %v: not each row once", r, got)
		}
		for i := range got {
			for j := i + 1; j < len(got); j++ {
				before[[2]string{got[i], got[j]}]++
			}
		}
	}
	for i, a := range rows {
		for _, b := range rows[i+1:] {
			if x, y := before[[2]string{a, b}], before[[2]string{b, a}]; x != n/2 || y != n/2 {
				t.Errorf("%s before %s in %d rounds, after it in %d, want %d each", a, b, x, y, n/2)
			}
		}
	}
	if !slices.Equal(rows, []string{"a", "b", "c", "d"}) {
		t.Error("InOrder changed its argument")
	}
	if got := InOrder([]string(nil), 3); len(got) != 0 {
		t.Errorf("no rows = %v", got)
	}
}

func TestN(t *testing.T) {
	for v, want := range map[string]int{"": 1, "0": 1, "-2": 1, "x": 1, "7": 7} {
		t.Setenv("BENCH_ROUNDS", v)
		if got := N(); got != want {
			t.Errorf("BENCH_ROUNDS=%q: N() = %d, want %d", v, got, want)
		}
	}
}
