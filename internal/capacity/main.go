// Command capacity measures what rediskit's sessions and cache cost a real
// redis-server (memory per item, CPU and network bytes per operation) and
// writes the capacity plan that follows from those figures, docs/CAPACITY.md:
//
//	go run ./internal/capacity -write docs/CAPACITY.md
//
// It starts its own redis-server (from PATH) on a free loopback port, with
// no persistence, and stops it before exiting. It measures through the
// session.Store and cache.Cache of this tree, so the plan follows the code:
// re-run it after changing a storage format or a script.
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/rediskit/rediskit/internal/redisproc"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "capacity:", err)
		os.Exit(1)
	}
}

func run() error {
	p := DefaultParams()
	write := flag.String("write", "", "write the document to this file instead of standard output")
	flag.IntVar(&p.Items, "items", p.Items, "sessions or cache entries per memory measurement")
	flag.IntVar(&p.Ops, "ops", p.Ops, "operations per CPU/network measurement")
	flag.IntVar(&p.Workers, "workers", p.Workers, "concurrent clients")
	flag.Parse()

	loadStart := loadAvg()
	bin, err := redisproc.Binary("redis-server")
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "capacity-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := redisproc.Start(redisproc.Config{Bin: bin, Dir: dir})
	if err != nil {
		return err
	}
	defer srv.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	res, err := Measure(ctx, srv.Addr, p)
	if err != nil {
		return err
	}
	mach := Machine{Date: time.Now().UTC().Format("2006-01-02"), CPU: cpuModel(), Cores: runtime.NumCPU(),
		LoadStart: loadStart, LoadEnd: loadAvg()}
	var buf bytes.Buffer
	if err := Render(&buf, res, DefaultAssumptions(), mach); err != nil {
		return err
	}
	if *write == "" {
		_, err = os.Stdout.Write(buf.Bytes())
		return err
	}
	return os.WriteFile(*write, buf.Bytes(), 0o644)
}

// cpuModel is the first "model name" of /proc/cpuinfo, or "unknown CPU".
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// loadAvg is the three load averages of /proc/loadavg, or "unknown".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " / ")
	}
	return "unknown"
}
