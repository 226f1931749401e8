// Package rounds says how many times a benchmark of bench/ runs its rows
// (BENCH_ROUNDS) and in which order each round runs them.
//
// go test's -count runs one row that many times before it starts the next,
// so the machine's drift between rows lands in their ratios. With rounds,
// every row runs once per round, and benchtable -ratio compares rows within
// each round. go test names a row's second run "row#01", its third
// "row#02"; benchtable reads them as the same row, round by round.
package rounds

import (
	"os"
	"slices"
	"strconv"
)

// N is BENCH_ROUNDS, 1 unless it is set to a positive number.
func N() int {
	n, err := strconv.Atoi(os.Getenv("BENCH_ROUNDS"))
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// InOrder returns rows in the order round r runs them: as given in even
// rounds, reversed in odd ones. So any two rows run in one order in half
// the rounds and in the other order in the rest, and no row always runs
// first (right after a change of concurrency, or after another library's
// rows) or always last. Each row still runs once per round, and round 0
// keeps the given order, so benchtable lists the rows in that order and
// pairs them round by round as before.
func InOrder[T any](rows []T, r int) []T {
	out := slices.Clone(rows)
	if r%2 == 1 {
		slices.Reverse(out)
	}
	return out
}
