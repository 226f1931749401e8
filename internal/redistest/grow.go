package redistest

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rediskit/rediskit/internal/redisproc"
)

// Growing and shrinking a running cluster the way an operator does, with
// redis-cli: AddMaster (add-node), Rebalance (rebalance
// --cluster-use-empty-masters) or Reshard, and RemoveMasters (rebalance
// with weight 0, then del-node). They return errors instead of failing the
// test, so that a scenario can call them from a goroutine running beside
// the load. AddMaster and RemoveMasters change Masters: do not read it
// concurrently.

// AddMaster starts a new node, joins it to the cluster as a master with no
// slots and no replica (redis-cli --cluster add-node), waits until every
// node knows it and the cluster is ok, and appends it to Masters. Slots
// move to it only with Rebalance. The node stops when the test ends.
func (c *Cluster) AddMaster(ctx context.Context) (*Server, error) {
	// A master that lost its last slot would turn into a replica of the
	// master that took it (cluster-allow-replica-migration, on by default
	// since Redis 7), and a rebalance moving slots off it would fail with
	// "Please use SETSLOT only with masters": an added master stays one
	// until RemoveMasters.
	s, err := c.startNode("--cluster-allow-replica-migration", "no")
	if err != nil {
		return nil, err
	}
	if err := c.cli(ctx, "--cluster", "add-node", s.Addr, c.Masters[0].Addr); err != nil {
		s.Stop()
		return nil, err
	}
	c.Masters = append(c.Masters, s)
	if err := c.waitOK(ctx); err != nil {
		return s, fmt.Errorf("redistest: after add-node %s: %w", s.Addr, err)
	}
	return s, nil
}

// Rebalance spreads the slots evenly over the masters, the empty ones
// included (redis-cli --cluster rebalance --cluster-use-empty-masters),
// migrating their keys, and waits until the cluster is ok.
func (c *Cluster) Rebalance(ctx context.Context) error {
	if err := c.cli(ctx, "--cluster", "rebalance", c.Masters[0].Addr, "--cluster-use-empty-masters"); err != nil {
		return err
	}
	return c.waitOK(ctx)
}

// Reshard moves n slots from master from to master to, with their keys
// (redis-cli --cluster reshard), and waits until the cluster is ok.
func (c *Cluster) Reshard(ctx context.Context, from, to *Server, n int) error {
	fromID, err := NodeID(ctx, from)
	if err != nil {
		return err
	}
	toID, err := NodeID(ctx, to)
	if err != nil {
		return err
	}
	if err := c.cli(ctx, "--cluster", "reshard", from.Addr, "--cluster-from", fromID, "--cluster-to", toID,
		"--cluster-slots", strconv.Itoa(n), "--cluster-yes"); err != nil {
		return err
	}
	return c.waitOK(ctx)
}

// RemoveMasters moves every slot of the given masters to the others in one
// redis-cli --cluster rebalance with weight 0 for each of them, removes
// them from the cluster (redis-cli --cluster del-node), stops them and
// drops them from Masters. They must have no replica; at least one master
// must remain.
func (c *Cluster) RemoveMasters(ctx context.Context, gone ...*Server) error {
	var seed string
	for _, m := range c.Masters {
		if !slices.Contains(gone, m) {
			seed = m.Addr
			break
		}
	}
	if seed == "" {
		return errors.New("redistest: RemoveMasters would remove every master")
	}
	// redis-cli takes one --cluster-weight followed by every weight.
	args := []string{"--cluster", "rebalance", seed, "--cluster-weight"}
	ids := make([]string, len(gone))
	for i, s := range gone {
		if !slices.Contains(c.Masters, s) {
			return fmt.Errorf("redistest: %s is not a master of the cluster", s.Addr)
		}
		id, err := NodeID(ctx, s)
		if err != nil {
			return err
		}
		ids[i] = id
		args = append(args, id+"=0")
	}
	if err := c.cli(ctx, args...); err != nil {
		return err
	}
	for i, s := range gone {
		if err := c.cli(ctx, "--cluster", "del-node", seed, ids[i]); err != nil {
			return err
		}
		c.Masters = slices.DeleteFunc(c.Masters, func(m *Server) bool { return m == s })
		s.Stop()
	}
	// The other nodes forgot them (CLUSTER FORGET): waitOK counts the rest.
	return c.waitOK(ctx)
}

// NodeID returns the node's cluster ID (CLUSTER MYID).
func NodeID(ctx context.Context, s *Server) (string, error) {
	v, err := s.Do(ctx, "CLUSTER", "MYID")
	id, _ := v.(string)
	if err == nil && id == "" {
		err = errors.New("empty CLUSTER MYID")
	}
	if err != nil {
		return "", fmt.Errorf("redistest: CLUSTER MYID on %s: %w", s.Addr, err)
	}
	return id, nil
}

// cli runs redis-cli with the cluster's TLS arguments, bounded by ctx and
// two minutes.
func (c *Cluster) cli(ctx context.Context, args ...string) error {
	bin, err := redisproc.Binary("redis-cli")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	full := append(append([]string(nil), c.cfg.cliArgs...), args...)
	out, err := exec.CommandContext(ctx, bin, full...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("redistest: redis-cli %v: %w\n%s", args, err, cliOutput(out))
	}
	return nil
}

// cliOutput is redis-cli's output for an error message, its lines per
// moved slot (thousands in a reshard) counted rather than shown, so that
// the lines that tell why it failed, which come last, are not cut off. The
// last of them stays, and any that carries an error.
func cliOutput(out []byte) string {
	var b strings.Builder
	left, last := 0, ""
	flush := func() {
		if left > 1 {
			fmt.Fprintf(&b, "(%d \"Moving slot\" lines left out)\n", left-1)
		}
		b.WriteString(last)
		left, last = 0, ""
	}
	for line := range strings.Lines(string(out)) {
		if strings.Contains(line, "Moving slot ") && !strings.Contains(line, "ERR") {
			left, last = left+1, line
			continue
		}
		flush()
		b.WriteString(line)
	}
	flush()
	return b.String()
}

// SlotsOf returns how many slots master s serves, from CLUSTER NODES as s
// sees it.
func SlotsOf(ctx context.Context, s *Server) (int, error) {
	id, err := NodeID(ctx, s)
	if err != nil {
		return 0, err
	}
	v, err := s.Do(ctx, "CLUSTER", "NODES")
	if err != nil {
		return 0, fmt.Errorf("redistest: CLUSTER NODES on %s: %w", s.Addr, err)
	}
	return countSlots(fmt.Sprint(v), id), nil
}

// countSlots sums the slot ranges of node id in CLUSTER NODES output; the
// ranges follow a line's 8 fixed fields ("[slot->-node]" entries of a
// migration are not ranges).
func countSlots(nodes, id string) int {
	n := 0
	for line := range strings.SplitSeq(nodes, "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || f[0] != id {
			continue
		}
		for _, r := range f[8:] {
			if strings.HasPrefix(r, "[") {
				continue
			}
			lo, hi, found := strings.Cut(r, "-")
			if !found {
				hi = lo
			}
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if err1 == nil && err2 == nil {
				n += b - a + 1
			}
		}
	}
	return n
}
