package otel_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/rediskit/rediskit/internal/redistest"
	rkotel "github.com/rediskit/rediskit/otel"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// rig is a Tracer over an in-memory exporter and a client whose commands
// are traced by redisotel with the same provider.
type rig struct {
	exp  *tracetest.InMemoryExporter
	tp   *sdktrace.TracerProvider
	tr   *rkotel.Tracer
	rdb  *redis.Client
	root trace.Tracer // starts the test's own root spans
}

func newRig(t *testing.T, srv *redistest.Server) *rig {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tr := rkotel.NewTracer(rkotel.WithTracerProvider(tp))
	rdb := srv.Client(t)
	if err := tr.InstrumentClient(rdb); err != nil {
		t.Fatal(err)
	}
	return &rig{exp: exp, tp: tp, tr: tr, rdb: rdb, root: tp.Tracer("test")}
}

// under runs fn in a fresh root span named name and returns the spans
// recorded since, with that root's ID.
func (r *rig) under(t *testing.T, name string, fn func(ctx context.Context)) tree {
	t.Helper()
	r.exp.Reset()
	ctx, span := r.root.Start(context.Background(), name)
	fn(ctx)
	span.End()
	return newTree(r.exp.GetSpans(), span.SpanContext().SpanID())
}

// tree indexes recorded spans by parent.
type tree struct {
	root     trace.SpanID
	all      tracetest.SpanStubs
	children map[trace.SpanID][]tracetest.SpanStub
}

func newTree(spans tracetest.SpanStubs, root trace.SpanID) tree {
	tr := tree{root: root, all: spans, children: map[trace.SpanID][]tracetest.SpanStub{}}
	for _, s := range spans {
		tr.children[s.Parent.SpanID()] = append(tr.children[s.Parent.SpanID()], s)
	}
	return tr
}

// one returns the only child of parent named name.
func (tr tree) one(t *testing.T, parent trace.SpanID, name string) tracetest.SpanStub {
	t.Helper()
	var found []tracetest.SpanStub
	for _, s := range tr.children[parent] {
		if s.Name == name {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one %q under %s, found %d; tree:\n%s", name, parent, len(found), tr)
	}
	return found[0]
}

// names returns the sorted names of parent's children.
func (tr tree) names(parent trace.SpanID) []string {
	var out []string
	for _, s := range tr.children[parent] {
		out = append(out, s.Name)
	}
	sort.Strings(out)
	return out
}

// commands returns the sorted names of parent's children that are Redis
// command spans (redisotel: client spans with db.system redis).
func (tr tree) commands(parent trace.SpanID) []string {
	var out []string
	for _, s := range tr.children[parent] {
		if s.SpanKind == trace.SpanKindClient && attr(s, "db.system") == "redis" {
			out = append(out, s.Name)
		}
	}
	sort.Strings(out)
	return out
}

func (tr tree) String() string {
	var b strings.Builder
	var walk func(id trace.SpanID, depth int)
	walk = func(id trace.SpanID, depth int) {
		for _, s := range tr.children[id] {
			fmt.Fprintf(&b, "%s%s %v\n", strings.Repeat("  ", depth), s.Name, s.Attributes)
			walk(s.SpanContext.SpanID(), depth+1)
		}
	}
	walk(trace.SpanID{}, 0)
	return b.String()
}

// attr returns the value of the attribute key of s, as text; "" if absent.
func attr(s tracetest.SpanStub, key string) string {
	for _, a := range s.Attributes {
		if string(a.Key) == key {
			return a.Value.String()
		}
	}
	return ""
}
