package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rediskit/rediskit/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// TestMeasureSmall runs the measurement of docs/CAPACITY.md on small numbers
// against a real redis-server and checks the figures' shape and sanity:
// every operation is measured, memory grows with the payload, the bytes on
// the wire carry the values, and the document has every table.
func TestMeasureSmall(t *testing.T) {
	srv := redistest.Start(t)
	p := DefaultParams()
	p.Items, p.Ops, p.Workers = 500, 100, 2
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Measure(ctx, srv.Addr, p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.Version, "7.") && !strings.HasPrefix(res.Version, "8.") {
		t.Errorf("redis_version %q: the program reads Redis 7 INFO sections", res.Version)
	}

	for _, user := range []bool{false, true} {
		prev := -1.0
		for _, size := range p.Payloads {
			m := res.Mem("session", size, user)
			if m == nil {
				t.Fatalf("no session memory row for payload %d, user %v", size, user)
			}
			// Growth is checked on MEMORY USAGE: at this small N a used_memory
			// delta also carries the main dict's rehash of whichever phase
			// crossed a power of two, so it need not grow with the payload.
			if m.Usage <= prev || m.Used < float64(size) || m.Usage < float64(size) {
				t.Errorf("session payload %d user %v: used_memory %.0f B, MEMORY USAGE %.0f B per session, after MEMORY USAGE %.0f B for the smaller payload",
					size, user, m.Used, m.Usage, prev)
			}
			prev = m.Usage
			if anon := res.Mem("session", size, false); user && m.Keys <= anon.Keys {
				t.Errorf("payload %d: %.2f keys per session with a user ID, %.2f without: the per-user index is not counted", size, m.Keys, anon.Keys)
			}
		}
	}
	prev := -1.0
	for _, size := range p.CacheSizes {
		m := res.Mem("cache", size, false)
		if m == nil {
			t.Fatalf("no cache memory row for value size %d", size)
		}
		if m.Usage <= prev || m.Used < float64(size) || m.Keys != 1 {
			t.Errorf("cache value %d: used_memory %.0f B, MEMORY USAGE %.0f B per entry (%.2f keys), after MEMORY USAGE %.0f B for the smaller value", size, m.Used, m.Usage, m.Keys, prev)
		}
		prev = m.Usage
	}

	want := []string{
		"session/Create", "session/Get (read)", "session/Get (read + touch)", "session/Update", "session/Extend",
		"session/Rotate", "session/Delete", "session/ListByUser", "session/DeleteByUser",
		"cache/Get (hit)", "cache/Get (miss)", "cache/Set", "cache/MGet (10 keys)", "cache/Incr",
		"cache/GetOrSet (hit)", "cache/GetOrSet (miss)", "cache/Delete",
	}
	if len(res.Ops) != len(want) {
		t.Errorf("%d operation rows, want %d", len(res.Ops), len(want))
	}
	var cpu float64
	for _, w := range want {
		group, name, _ := strings.Cut(w, "/")
		r := res.Op(group, name)
		if r == nil {
			t.Errorf("no row for %s", w)
			continue
		}
		if r.Ops != p.Ops || r.Trips < 1 || r.ServerCmds < r.Trips-0.01 || r.ExecUsec <= 0 || r.NetIn <= 0 || r.NetOut <= 0 {
			t.Errorf("%s: implausible row %+v", w, *r)
		}
		cpu += r.ProcUsec
	}
	if cpu <= 0 {
		t.Errorf("the main thread used %.2f µs of CPU over every operation", cpu)
	}
	bigger := func(what string, got float64, min int) {
		if got < float64(min) {
			t.Errorf("%s: %.0f bytes per operation, want at least %d (the value)", what, got, min)
		}
	}
	if t.Failed() {
		return
	}
	bigger("session Create in", res.Op("session", "Create").NetIn, p.OpPayload)
	bigger("session Get (read) out", res.Op("session", "Get (read)").NetOut, p.OpPayload)
	bigger("cache Set in", res.Op("cache", "Set").NetIn, p.OpValue)
	bigger("cache Get (hit) out", res.Op("cache", "Get (hit)").NetOut, p.OpValue)
	bigger("cache MGet out", res.Op("cache", "MGet (10 keys)").NetOut, 10*p.OpValue)
	if miss, hit := res.Op("cache", "Get (miss)").NetOut, res.Op("cache", "Get (hit)").NetOut; miss >= hit {
		t.Errorf("a cache miss sends %.0f bytes, a hit %.0f", miss, hit)
	}
	if touch, read := res.Op("session", "Get (read + touch)").Trips, res.Op("session", "Get (read)").Trips; touch <= read {
		t.Errorf("a Get that touches sends %.2f commands, a plain read %.2f", touch, read)
	}

	var doc bytes.Buffer
	if err := Render(&doc, res, DefaultAssumptions(), Machine{Date: "today", CPU: "test", Cores: 1}); err != nil {
		t.Fatal(err)
	}
	out := doc.String()
	for _, w := range want {
		group, name, _ := strings.Cut(w, "/")
		if !strings.Contains(out, "| "+group+" | "+name+" |") {
			t.Errorf("the document has no row for %s", w)
		}
	}
	for _, h := range []string{"## Measured: memory", "## Assumptions", "## When to move", "## Plan", "## Cache", command} {
		if !strings.Contains(out, h) {
			t.Errorf("the document lacks %q", h)
		}
	}
	if rows := strings.Count(out, " | Sentinel |") + strings.Count(out, " | Cluster |"); rows != 9 {
		t.Errorf("the plan has %d rows, want 9 (3 session counts × 3 rates)", rows)
	}
}

// TestPlanRule checks the plan's arithmetic and the topology rule on a model
// with round numbers.
func TestPlanRule(t *testing.T) {
	a := DefaultAssumptions()
	a.Sessions, a.Rates = []float64{1e6, 1e8}, []float64{1e4, 1e6}
	md := Model{SessionBytes: 1000, RequestUsec: 10, RequestOut: 100}
	md.PerCore = a.CPUTarget * 1e6 / md.RequestUsec // 50,000 requests/s
	cells := Plan(md, a)
	type want struct{ mem, cpu, masters int }
	wants := []want{
		{1, 1, 1},   // 1 GB, 10 k/s
		{1, 20, 20}, // 1 GB, 1 M/s
		{4, 1, 4},   // 100 GB over 25 GiB, 10 k/s
		{4, 20, 20}, // both
	}
	if len(cells) != len(wants) {
		t.Fatalf("%d cells, want %d", len(cells), len(wants))
	}
	for i, c := range cells {
		w := wants[i]
		if c.MemMasters != w.mem || c.CPUMasters != w.cpu || c.Masters != w.masters {
			t.Errorf("cell %d (%g sessions, %g/s): masters %d/%d/%d, want %d/%d/%d",
				i, c.Sessions, c.Rate, c.MemMasters, c.CPUMasters, c.Masters, w.mem, w.cpu, w.masters)
		}
		if c.Nodes != c.Masters*(1+a.Replicas) {
			t.Errorf("cell %d: %d nodes for %d masters", i, c.Nodes, c.Masters)
		}
		if wantTopo := map[bool]string{true: "Sentinel", false: "Cluster"}[c.Masters == 1]; c.Topology != wantTopo {
			t.Errorf("cell %d: %s for %d masters", i, c.Topology, c.Masters)
		}
		if c.Load > a.CPUTarget+1e-9 {
			t.Errorf("cell %d: each master at %.2f of a core, above the target %.2f", i, c.Load, a.CPUTarget)
		}
	}
	if ram := cells[2].TotalRAM; ram < 1e8*1000*a.MemFactor*2*0.999 || ram > 1e8*1000*a.MemFactor*2*1.001 {
		t.Errorf("100 M sessions of 1000 B with 1 replica and factor %.1f: %.0f B of RAM", a.MemFactor, ram)
	}
}
