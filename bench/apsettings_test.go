package bench

import (
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/internal/pipeline"
)

// benchAP, when set, is given to every benchmark client as its
// AutoPipelineOptions: rediskit then keeps it (a client configured by its
// user), and the peers' "autopipelined" rows run on it too. nil, the
// default, is a plain client: rediskit asks for pipeline.Options, and the
// peers run on the same settings.
var benchAP *redis.AutoPipelineOptions

// BenchmarkAutoPipelineSettings runs the rows the AutoPipeliner's settings
// move, rediskit's default beside a peer on the same auto-pipelined client,
// once on go-redis's blocking default (DefaultBlockingAutoPipelineOptions,
// MaxBatchSize 300) and once on the settings rediskit asks for
// (pipeline.Options, MaxBatchSize pipeline.BatchTarget).
func BenchmarkAutoPipelineSettings(b *testing.B) {
	settings := []struct {
		name string
		opts *redis.AutoPipelineOptions
	}{
		{"go-redis-default", redis.DefaultBlockingAutoPipelineOptions()},
		{fmt.Sprintf("batch-%d", pipeline.BatchTarget), nil},
	}
	// Each row runs on both settings back to back, so that the machine's
	// drift over a run touches both alike.
	both := func(name string, run func(b *testing.B)) {
		for _, set := range settings {
			b.Run(name+"/"+set.name, func(b *testing.B) {
				benchAP = set.opts
				defer func() { benchAP = nil }()
				run(b)
			})
		}
	}
	both("session-request/rediskit/adaptive", func(b *testing.B) {
		h, cookies, count := rediskitHandler(b, sessionModes[0].mode, 0)
		runRequests(b, h, cookies, count)
	})
	both("session-request/scs-cmdablestore/autopipelined", func(b *testing.B) { benchSCS(b, true, false) })
	for _, g := range []int{16, 128} {
		for _, row := range pick(hitRows(), "rediskit/adaptive", "go-redis-cache/autopipelined", "eko-gocache/autopipelined") {
			both(fmt.Sprintf("get-hit/g=%d/%s", g, row.name), func(b *testing.B) { row.run(b, g) })
		}
		for _, row := range pick(missRows(), "rediskit/adaptive", "go-redis-cache-Once/autopipelined") {
			both(fmt.Sprintf("getorset-miss/g=%d/%s", g, row.name), func(b *testing.B) { row.run(b, g) })
		}
	}
}

// pick returns the rows named, in the order named.
func pick[R interface{ rowName() string }](rows []R, names ...string) []R {
	var out []R
	for _, n := range names {
		for _, r := range rows {
			if r.rowName() == n {
				out = append(out, r)
			}
		}
	}
	return out
}

func (row cacheRow) rowName() string { return row.name }
func (row missRow) rowName() string  { return row.name }
