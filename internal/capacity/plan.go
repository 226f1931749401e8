package main

import (
	"fmt"
	"math"
)

// MixItem is how often one session operation runs per HTTP request.
type MixItem struct {
	Op         string
	PerRequest float64
}

// Assumptions are the plan's inputs that are not measured.
type Assumptions struct {
	// Payload is the session payload of the plan (bytes); the plan uses the
	// measured memory of a session of this payload with a user ID.
	Payload int
	// Mix is the session operations of one HTTP request.
	Mix []MixItem
	// CPUTarget is the share of one core a master may use for commands: a
	// Redis master executes commands on one thread, so on one core.
	CPUTarget float64
	// MemFactor multiplies used_memory into the RAM a node needs:
	// allocator fragmentation, replication and client buffers, and
	// copy-on-write while a fork (RDB save, full resync) runs.
	MemFactor float64
	// MaxDataPerMaster is the most used_memory one master should hold
	// (bytes): it bounds fork time, full-resync time and restart time.
	MaxDataPerMaster float64
	// Replicas is the number of replicas of each master.
	Replicas int
	// Sessions and Rates are the grid of the plan.
	Sessions []float64
	Rates    []float64
}

// DefaultAssumptions are the ones docs/CAPACITY.md states.
func DefaultAssumptions() Assumptions {
	return Assumptions{
		Payload: 1024,
		Mix: []MixItem{
			{"Get (read)", 0.86},
			{"Get (read + touch)", 0.11},
			{"Update", 0.02},
			{"Create", 0.005},
			{"Rotate", 0.003},
			{"Delete", 0.002},
		},
		CPUTarget:        0.5,
		MemFactor:        1.5,
		MaxDataPerMaster: 25 * gib,
		Replicas:         1,
		Sessions:         []float64{1e6, 1e7, 1e8},
		Rates:            []float64{1e4, 1e5, 1e6},
	}
}

const gib = 1 << 30

// Model is the cost model derived from a Result.
type Model struct {
	// SessionBytes is the used_memory of one plan session.
	SessionBytes float64
	// RequestUsec, RequestIn and RequestOut are one HTTP request's Redis
	// CPU (µs of one core) and network bytes, from Assumptions.Mix.
	RequestUsec, RequestIn, RequestOut float64
	// PerCore is how many requests one master serves at CPUTarget.
	PerCore float64
}

// OpUsec is what the plan charges for one operation: the Redis main
// thread's CPU time per operation. usec_per_call alone would leave out
// reading the request and writing the reply, most of the cost of a
// one-command operation.
func (md Model) OpUsec(r OpRow) float64 { return r.ProcUsec }

// NewModel derives the cost model of res under a.
func NewModel(res *Result, a Assumptions) (Model, error) {
	md := Model{}
	mem := res.Mem("session", a.Payload, true)
	if mem == nil {
		return md, fmt.Errorf("capacity: no measured session memory for payload %d with a user ID", a.Payload)
	}
	md.SessionBytes = mem.Used
	for _, mi := range a.Mix {
		r := res.Op("session", mi.Op)
		if r == nil {
			return md, fmt.Errorf("capacity: the mix names %q, which was not measured", mi.Op)
		}
		md.RequestUsec += mi.PerRequest * md.OpUsec(*r)
		md.RequestIn += mi.PerRequest * r.NetIn
		md.RequestOut += mi.PerRequest * r.NetOut
	}
	if md.RequestUsec <= 0 {
		return md, fmt.Errorf("capacity: a request costs %.3f µs of Redis CPU: the measurement is broken", md.RequestUsec)
	}
	md.PerCore = a.CPUTarget * 1e6 / md.RequestUsec
	return md, nil
}

// Cell is the plan for one number of sessions at one request rate.
type Cell struct {
	Sessions, Rate float64
	Data           float64 // used_memory of all sessions, bytes
	MemMasters     int     // masters the memory needs
	CPUMasters     int     // masters the request rate needs
	Masters        int
	Nodes          int     // masters and replicas
	NodeRAM        float64 // RAM per node, bytes
	TotalRAM       float64 // RAM of all nodes, bytes
	Load           float64 // share of one core each master uses
	NetOut         float64 // bytes/s each master sends (replies; replication not included)
	Topology       string
}

// Plan computes the grid of a.
func Plan(md Model, a Assumptions) []Cell {
	var cells []Cell
	for _, n := range a.Sessions {
		for _, rate := range a.Rates {
			c := Cell{Sessions: n, Rate: rate, Data: n * md.SessionBytes}
			c.MemMasters = max(1, int(math.Ceil(c.Data/a.MaxDataPerMaster)))
			c.CPUMasters = max(1, int(math.Ceil(rate/md.PerCore)))
			c.Masters = max(c.MemMasters, c.CPUMasters)
			c.Nodes = c.Masters * (1 + a.Replicas)
			c.NodeRAM = c.Data / float64(c.Masters) * a.MemFactor
			c.TotalRAM = c.NodeRAM * float64(c.Nodes)
			c.Load = rate / float64(c.Masters) * md.RequestUsec / 1e6
			c.NetOut = rate / float64(c.Masters) * md.RequestOut
			c.Topology = Topology(c.Masters)
			cells = append(cells, c)
		}
	}
	return cells
}

// Topology is the deployment the rule picks for a number of masters: one
// master is a Sentinel deployment (a master, its replicas and three
// sentinels), more is a Cluster.
func Topology(masters int) string {
	if masters <= 1 {
		return "Sentinel"
	}
	return "Cluster"
}
