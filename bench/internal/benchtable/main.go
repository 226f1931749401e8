// Command benchtable turns `go test -bench` output (several -count runs)
// into the Markdown tables of bench/*.md: one row per benchmark, each cell
// the median of the runs.
//
//	BENCH_ROUNDS=3 go test -run '^$' -bench 'CacheGetHit' -benchtime 1s | tee out.txt
//	go run ./internal/benchtable -metric ops/s -extra cmds/op,srv-cmds/op,allocs/op < out.txt
//
// A row's runs are its lines: -count's, or BENCH_ROUNDS's "row#01",
// "row#02" (go test's names for a sub-benchmark's second and third run).
// A name part "g=N" becomes a column of -metric per N (the -extra metrics
// are shown for the largest N); without one, a row shows -metric and
// -extra. Rows keep the order of their first run. Lines without -metric
// are left out, so rows reporting req/s and rows reporting ops/s in one
// output make two tables.
//
// -ratio "a:b,c:d" adds a table of row a's -metric over row b's, per
// concurrency: the ratio of their first runs, of their second runs and so
// on, and the median of those. A round is meaningful when the runs
// alternate, as they do with BENCH_ROUNDS (go test's -count repeats one
// row before it starts the next):
//
//	BENCH_ROUNDS=5 go test -run '^$' -bench 'CacheGetOrSetMiss' |
//		go run ./internal/benchtable -ratio 'rediskit/adaptive:go-redis-cache-Once/pooled'
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

var (
	gPart  = regexp.MustCompile(`^g=(\d+)$`)
	procSx = regexp.MustCompile(`(#\d+)?-\d+$`) // "#01": a row's second run in one process
)

type key struct {
	row string
	g   int // -1: none
}

func main() {
	metric := flag.String("metric", "ops/s", "the metric shown per concurrency")
	extra := flag.String("extra", "allocs/op", "comma-separated metrics shown once per row")
	ratio := flag.String("ratio", "", `comma-separated "row:row" pairs whose -metric ratio is shown per round`)
	flag.Parse()
	var extras []string
	if *extra != "" {
		extras = strings.Split(*extra, ",")
	}
	var pairs [][2]string
	if *ratio != "" {
		for p := range strings.SplitSeq(*ratio, ",") {
			a, b, ok := strings.Cut(p, ":")
			if !ok || a == "" || b == "" {
				fmt.Fprintf(os.Stderr, "benchtable: -ratio %q: want row:row\n", p)
				os.Exit(2)
			}
			pairs = append(pairs, [2]string{a, b})
		}
	}
	if err := run(os.Stdin, os.Stdout, *metric, extras, pairs...); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer, metric string, extras []string, ratios ...[2]string) error {
	vals := map[key]map[string][]float64{}
	var rows []string
	seenRow := map[string]bool{}
	gs := map[int]bool{}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		if !slices.Contains(f, metric) {
			continue // another table's line: one command's output can feed several
		}
		parts := strings.Split(procSx.ReplaceAllString(f[0], ""), "/")
		k := key{g: -1}
		var name []string
		for _, p := range parts[1:] {
			if m := gPart.FindStringSubmatch(p); m != nil {
				k.g, _ = strconv.Atoi(m[1])
				continue
			}
			name = append(name, p)
		}
		k.row = strings.Join(name, "/")
		if !seenRow[k.row] {
			seenRow[k.row] = true
			rows = append(rows, k.row)
		}
		gs[k.g] = true
		if vals[k] == nil {
			vals[k] = map[string][]float64{}
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			vals[k][f[i+1]] = append(vals[k][f[i+1]], v)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if len(rows) == 0 {
		return fmt.Errorf("no benchmark lines")
	}
	var cols []int
	for g := range gs {
		cols = append(cols, g)
	}
	slices.Sort(cols)
	last := cols[len(cols)-1]
	head := []string{"row"}
	align := []string{"---"}
	for _, g := range cols {
		h := metric
		if g >= 0 {
			h += fmt.Sprintf(" g=%d", g)
		}
		head, align = append(head, h), append(align, "---:")
	}
	for _, e := range extras {
		head, align = append(head, e), append(align, "---:")
	}
	fmt.Fprintf(out, "| %s |\n|%s|\n", strings.Join(head, " | "), strings.Join(align, "|"))
	for _, r := range rows {
		cells := []string{r}
		for _, g := range cols {
			cells = append(cells, cell(vals[key{r, g}][metric]))
		}
		for _, e := range extras {
			cells = append(cells, cell(vals[key{r, last}][e]))
		}
		fmt.Fprintf(out, "| %s |\n", strings.Join(cells, " | "))
	}
	if len(ratios) == 0 {
		return nil
	}
	head, align = []string{"ratio of " + metric}, []string{"---"}
	for _, g := range cols {
		h := "rounds"
		if g >= 0 {
			h = fmt.Sprintf("g=%d", g)
		}
		head, align = append(head, h), append(align, "---:")
	}
	fmt.Fprintf(out, "\n| %s |\n|%s|\n", strings.Join(head, " | "), strings.Join(align, "|"))
	for _, p := range ratios {
		if !seenRow[p[0]] || !seenRow[p[1]] {
			return fmt.Errorf("-ratio %s:%s: no such row", p[0], p[1])
		}
		cells := []string{p[0] + " / " + p[1]}
		for _, g := range cols {
			cells = append(cells, ratioCell(vals[key{p[0], g}][metric], vals[key{p[1], g}][metric]))
		}
		fmt.Fprintf(out, "| %s |\n", strings.Join(cells, " | "))
	}
	return nil
}

// ratioCell is the median of a[i]/b[i] over the rounds both ran, then
// each round's ratio: "0.84 (0.80, 0.91, 0.84)".
func ratioCell(a, b []float64) string {
	n := min(len(a), len(b))
	if n == 0 {
		return "n/a"
	}
	rs := make([]float64, n)
	each := make([]string, n)
	for i := range n {
		rs[i] = a[i] / b[i]
		each[i] = strconv.FormatFloat(rs[i], 'f', 2, 64)
	}
	return strconv.FormatFloat(median(rs), 'f', 2, 64) + " (" + strings.Join(each, ", ") + ")"
}

// median is the median of vs.
func median(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

// cell is the median of vs, formatted; "n/a" for none.
func cell(vs []float64) string {
	if len(vs) == 0 {
		return "n/a"
	}
	m := median(vs)
	if m >= 100 {
		return group(strconv.FormatFloat(m, 'f', 0, 64))
	}
	return strconv.FormatFloat(m, 'g', 4, 64) // as the benchmarks print: 4 significant digits
}

// group puts thousands separators into a non-negative integer string.
func group(s string) string {
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	return b.String()
}
