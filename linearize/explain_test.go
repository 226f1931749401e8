package linearize

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// dialLog records every connection a workload client opens, with the
// address go-redis's sentinel dialer chose: which master each client was
// on, and when it moved.
type dialLog struct {
	mu      sync.Mutex
	entries []dialEntry
	n       int
}

type dialEntry struct {
	at     time.Time
	client string
	addr   string
}

// dialer is a go-redis Dialer that records each dial under label.
func (d *dialLog) dialer(label string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	nd := &net.Dialer{Timeout: 300 * time.Millisecond}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		d.mu.Lock()
		d.entries = append(d.entries, dialEntry{time.Now(), label, addr})
		d.mu.Unlock()
		return nd.DialContext(ctx, network, addr)
	}
}

// label names the next client: run.do makes a session client, then a cache
// client, per client number (session0, cache0, session1, ...).
func (d *dialLog) label() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.n++
	kind := "session"
	if d.n%2 == 0 {
		kind = "cache"
	}
	return fmt.Sprintf("%s%d", kind, (d.n-1)/2)
}

// explain writes, for the first two partitions of res's history that have
// no linearization, the end of the longest partial linearization the
// checker found, the operations none of which could come next, and the
// dials of the clients around them.
func explain(w io.Writer, res Result, rec *Recorder, dials *dialLog) {
	m := res.model
	parts := res.info.PartialLinearizationsOperations()
	all := [][]porcupine.Operation{rec.History()}
	if m.Partition != nil {
		all = m.Partition(all[0])
	}
	shown := 0
	for p, part := range all {
		if p >= len(parts) || shown == 2 {
			break
		}
		var longest []porcupine.Operation
		for _, l := range parts[p] {
			if len(l) > len(longest) {
				longest = l
			}
		}
		if len(longest) == len(part) {
			continue
		}
		shown++
		in := map[porcupine.Operation]bool{}
		for _, op := range longest {
			in[op] = true
		}
		var rest []porcupine.Operation
		minRet := int64(1 << 62)
		for _, op := range part {
			if !in[op] {
				rest = append(rest, op)
				minRet = min(minRet, op.Return)
			}
		}
		sort.Slice(rest, func(i, j int) bool { return rest[i].Call < rest[j].Call })
		ms := func(t int64) string {
			if t > 1<<60 {
				return "   (never)"
			}
			return fmt.Sprintf("%10.3f", float64(t)/1e6)
		}
		fmt.Fprintf(w, "partition %d: %d of %d operations linearized; the last ones (call, return in ms; client):\n", p, len(longest), len(part))
		from := max(0, len(longest)-25)
		for _, op := range longest[from:] {
			fmt.Fprintf(w, "  %s %s  c%-2d %s\n", ms(op.Call), ms(op.Return), op.ClientId, m.DescribeOperation(op.Input, op.Output))
		}
		fmt.Fprintf(w, "  none of these can come next (called before %s ms):\n", ms(minRet))
		lo := int64(1 << 62)
		for _, op := range rest {
			if op.Call > minRet {
				break
			}
			lo = min(lo, op.Call)
			fmt.Fprintf(w, "  %s %s  c%-2d %s\n", ms(op.Call), ms(op.Return), op.ClientId, m.DescribeOperation(op.Input, op.Output))
		}
		fmt.Fprintf(w, "  then (up to 25):\n")
		n := 0
		for _, op := range rest {
			if op.Call <= minRet {
				continue
			}
			if n++; n > 25 {
				break
			}
			fmt.Fprintf(w, "  %s %s  c%-2d %s\n", ms(op.Call), ms(op.Return), op.ClientId, m.DescribeOperation(op.Input, op.Output))
		}
		if dials != nil {
			dials.mu.Lock()
			fmt.Fprintf(w, "  dials from 2 s before:\n")
			for _, d := range dials.entries {
				if t := rec.At(d.at); t > lo-2e9 && t < minRet+2e9 {
					fmt.Fprintf(w, "  %s  %s -> %s\n", ms(t), d.client, d.addr)
				}
			}
			dials.mu.Unlock()
		}
	}
}

// dump writes the whole history, sorted by call, with the dials.
func dump(path string, res Result, rec *Recorder, dials *dialLog) {
	h := rec.History()
	sort.Slice(h, func(i, j int) bool { return h[i].Call < h[j].Call })
	var b strings.Builder
	for _, op := range h {
		fmt.Fprintf(&b, "%12.3f %12.3f c%-2d %s\n", float64(op.Call)/1e6, float64(op.Return)/1e6, op.ClientId, res.model.DescribeOperation(op.Input, op.Output))
	}
	if dials != nil {
		dials.mu.Lock()
		for _, d := range dials.entries {
			fmt.Fprintf(&b, "%12.3f dial %s -> %s\n", float64(rec.At(d.at))/1e6, d.client, d.addr)
		}
		dials.mu.Unlock()
	}
	_ = os.WriteFile(path, []byte(b.String()), 0o644)
}
