package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/rediskit/rediskit"
)

func runStats(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "stats", "rediskit stats [--redis URL] [--json]",
		"Print the server's INFO digest per master and summed, and the client's pool figures (waits for a connection included).",
		"rediskit stats --redis redis-cluster://127.0.0.1:7000\nrediskit stats --json | jq .server.used_memory")
	url := redisFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if pos, err := parseFlags(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErrorf("unexpected argument %q", pos[0])
	}
	c, err := connect(ctx, e, *url)
	if err != nil {
		return err
	}
	defer c.Close()
	s, err := c.Stats(ctx)
	if *asJSON {
		writeJSON(e.stdout, statsJSON(s))
	} else {
		printStats(e.stdout, s)
	}
	return err
}

func serverJSON(s rediskit.ServerStats) map[string]any {
	return map[string]any{
		"used_memory": s.UsedMemory, "keyspace_hits": s.KeyspaceHits, "keyspace_misses": s.KeyspaceMisses,
		"hit_ratio": s.HitRatio, "connected_clients": s.ConnectedClients, "ops_per_sec": s.OpsPerSec,
		"evicted_keys": s.EvictedKeys, "expired_keys": s.ExpiredKeys, "uptime_seconds": s.UptimeSeconds,
		"keys": s.Keys,
	}
}

func statsJSON(s rediskit.Stats) map[string]any {
	nodes := make([]map[string]any, 0, len(s.Nodes))
	for _, n := range s.Nodes {
		m := map[string]any{"addr": n.Addr}
		if n.Err != "" {
			m["error"] = n.Err
		} else {
			m["server"] = serverJSON(n.Server)
		}
		nodes = append(nodes, m)
	}
	return map[string]any{
		"server": serverJSON(s.Server),
		"nodes":  nodes,
		"pool": map[string]any{
			"hits": s.Pool.Hits, "misses": s.Pool.Misses, "timeouts": s.Pool.Timeouts,
			"total_conns": s.Pool.TotalConns, "idle_conns": s.Pool.IdleConns, "stale_conns": s.Pool.StaleConns,
			"waits": s.Pool.WaitCount, "wait_ms": ms(time.Duration(s.Pool.WaitDurationNs)),
		},
		"client": map[string]any{
			"commands": s.Commands, "failures": s.Failures, "deadlines": s.Deadlines,
			"retries": s.Retries, "ambiguous": s.Ambiguous,
		},
		"breaker": s.Breaker.String(),
	}
}

func printStats(w io.Writer, s rediskit.Stats) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tKEYS\tMEMORY\tCLIENTS\tOPS/S\tHIT RATIO\tEVICTED\tEXPIRED\tUPTIME")
	row := func(name string, v rediskit.ServerStats) {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%.1f%%\t%d\t%d\t%s\n", name, v.Keys, humanBytes(v.UsedMemory),
			v.ConnectedClients, v.OpsPerSec, 100*v.HitRatio, v.EvictedKeys, v.ExpiredKeys,
			(time.Duration(v.UptimeSeconds) * time.Second).String())
	}
	for _, n := range s.Nodes {
		if n.Err != "" {
			fmt.Fprintf(tw, "%s\terror: %s\n", n.Addr, n.Err)
			continue
		}
		row(n.Addr, n.Server)
	}
	if len(s.Nodes) > 1 {
		row("total", s.Server)
	}
	_ = tw.Flush()
	waits, mean := s.PoolWait()
	fmt.Fprintf(w, "\npool: %d conns, %d idle, %d waits for a connection (mean %s), %d timeouts\n",
		s.Pool.TotalConns, s.Pool.IdleConns, waits, mean, s.Pool.Timeouts)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
