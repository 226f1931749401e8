package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/rediskit/rediskit"
)

func runHealth(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "health", "rediskit health [--redis URL] [--json] [--timeout D]",
		`Check every node once (PING and INFO) and print the verdict, each node's
maxmemory-policy, and a warning where that policy can evict session keys.
Exit status: 0 healthy, 1 unhealthy or unreachable, 2 misconfigured.`,
		"rediskit health --redis redis://127.0.0.1:6379/0\nrediskit health --json | jq .status\nREDIS_URL=redis-sentinel://s1,s2/mymaster rediskit health")
	url := redisFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this `duration`")
	if pos, err := parseFlags(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErrorf("unexpected argument %q", pos[0])
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	c, err := connect(ctx, e, *url)
	if err != nil {
		// Unreachable is unhealthy (1) here, misconfigured stays 2.
		if x, ok := err.(*exitError); ok && x.code == exitUnreachable {
			x.code = exitFailed
			if *asJSON {
				writeJSON(e.stdout, map[string]any{"status": rediskit.StatusDown, "error": err.Error()})
			}
		}
		return err
	}
	defer c.Close()
	h := c.Health(ctx)
	if *asJSON {
		writeJSON(e.stdout, healthJSON(h))
	} else {
		printHealth(e.stdout, h)
	}
	if h.Status == rediskit.StatusUp {
		return nil
	}
	return withCode(exitFailed, errSilent)
}

type nodeJSON struct {
	Addr      string  `json:"addr"`
	Role      string  `json:"role,omitempty"`
	Version   string  `json:"version,omitempty"`
	Up        bool    `json:"up"`
	LatencyMS float64 `json:"latency_ms"`
	Error     string  `json:"error,omitempty"`
	// Policy is maxmemory-policy ("unknown" when INFO is refused);
	// Maxmemory is in bytes (0: no limit, -1: unknown).
	Policy    string `json:"maxmemory_policy,omitempty"`
	Maxmemory int64  `json:"maxmemory"`
}

func healthJSON(h rediskit.Health) map[string]any {
	nodes := make([]nodeJSON, 0, len(h.Nodes))
	for _, n := range h.Nodes {
		nodes = append(nodes, nodeJSON{n.Addr, n.Role, n.Version, n.Up, ms(n.Latency), n.Err, n.MaxmemoryPolicy, n.Maxmemory})
	}
	out := map[string]any{
		"status": h.Status, "latency_ms": ms(h.Latency), "breaker": h.Breaker.String(),
		"checked_at": h.CheckedAt.UTC(), "nodes": nodes,
	}
	if h.LastError != "" {
		out["last_error"] = h.LastError
	}
	if len(h.Warnings) > 0 {
		out["warnings"] = h.Warnings
	}
	return out
}

func printHealth(w io.Writer, h rediskit.Health) {
	fmt.Fprintf(w, "status: %s (slowest node %s, breaker %s)\n", h.Status, h.Latency.Round(time.Microsecond), h.Breaker)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tROLE\tVERSION\tUP\tLATENCY\tMAXMEMORY-POLICY\tERROR")
	for _, n := range h.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\t%s\n", n.Addr, dash(n.Role), dash(n.Version), n.Up, n.Latency.Round(time.Microsecond), dash(n.MaxmemoryPolicy), n.Err)
	}
	_ = tw.Flush()
	for _, warning := range h.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warning)
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
