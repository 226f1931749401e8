package main

import (
	"strings"
	"testing"
)

func TestMedianTable(t *testing.T) {
	in := `goos: linux
BenchmarkX/g=1/a/pooled-2   10  5 ns/op  100 ops/s  3 allocs/op
BenchmarkX/g=16/a/pooled-2  10  5 ns/op  1600 ops/s  4 allocs/op
BenchmarkX/g=1/a/pooled-2   10  5 ns/op  300 ops/s  3 allocs/op
BenchmarkX/g=16/a/pooled-2  10  5 ns/op  1000 ops/s  6 allocs/op
BenchmarkX/g=1/a/pooled-2   10  5 ns/op  200 ops/s  3 allocs/op
BenchmarkX/g=16/a/pooled-2  10  5 ns/op  1200 ops/s  5 allocs/op
BenchmarkX/g=1/b-2          10  5 ns/op  7 ops/s  1 allocs/op
BenchmarkX/c-2              10  5 ns/op  9 req/s  1 allocs/op
`
	var out strings.Builder
	if err := run(strings.NewReader(in), &out, "ops/s", []string{"allocs/op"}); err != nil {
		t.Fatal(err)
	}
	want := `| row | ops/s g=1 | ops/s g=16 | allocs/op |
|---|---:|---:|---:|
| a/pooled | 200 | 1,200 | 5 |
| b | 7 | n/a | n/a |
`
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}

func TestRatioRounds(t *testing.T) {
	// Two rounds of two rows, alternating as a -count 1 loop prints them.
	in := `BenchmarkX/g=1/a-2  10  5 ns/op  100 ops/s
BenchmarkX/g=1/b-2  10  5 ns/op  200 ops/s
BenchmarkX/g=1/a#01-2  10  5 ns/op  300 ops/s
BenchmarkX/g=1/b-2  10  5 ns/op  200 ops/s
BenchmarkX/g=1/a-2  10  5 ns/op  200 ops/s
BenchmarkX/g=1/b-2  10  5 ns/op  100 ops/s
`
	var out strings.Builder
	if err := run(strings.NewReader(in), &out, "ops/s", nil, [2]string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	want := `| row | ops/s g=1 |
|---|---:|
| a | 200 |
| b | 200 |

| ratio of ops/s | g=1 |
|---|---:|
| a / b | 1.50 (0.50, 1.50, 2.00) |
`
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
	if err := run(strings.NewReader(in), &out, "ops/s", nil, [2]string{"a", "c"}); err == nil {
		t.Error("a ratio to a missing row: no error")
	}
}

// TestCellDigits: a median below 100 keeps the benchmarks' four
// significant digits, also when it is the mean of two rounds.
func TestCellDigits(t *testing.T) {
	for _, tc := range []struct {
		vs   []float64
		want string
	}{
		{[]float64{0.1, 0.2}, "0.15"}, // 0.15000000000000002 in float64
		{[]float64{1.204}, "1.204"},
		{[]float64{2}, "2"},
		{[]float64{1234.6}, "1,235"},
	} {
		if got := cell(tc.vs); got != tc.want {
			t.Errorf("cell(%v) = %q, want %q", tc.vs, got, tc.want)
		}
	}
}
