package otel_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/rediskit/rediskit/cache"
	"github.com/rediskit/rediskit/internal/redistest"
	rkotel "github.com/rediskit/rediskit/otel"
)

// exampleTB lets runnable examples use the shared test server: Examples get
// no *testing.T.
type exampleTB struct{ testing.TB }

func (exampleTB) Helper()                   {}
func (exampleTB) Cleanup(func())            {}
func (exampleTB) Name() string              { return "Example" }
func (exampleTB) Fatalf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }
func (exampleTB) Skipf(f string, a ...any)  { panic(fmt.Sprintf(f, a...)) }

// A cache traced with OpenTelemetry: the GetOrSet span, the SET NX GET it
// sends (a redisotel span) and the loader call.
func ExampleNewTracer() {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())

	rdb := redis.NewClient(&redis.Options{Addr: redistest.Shared(exampleTB{}).Addr})
	defer rdb.Close()
	tr := rkotel.NewTracer(rkotel.WithTracerProvider(tp))
	if err := tr.InstrumentClient(rdb); err != nil {
		panic(err)
	}
	c, err := cache.New(rdb, cache.Options{Prefix: "example-otel", Tracer: tr})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ctx := context.Background()
	_ = c.Delete(ctx, "greeting")
	if err := c.Preload(ctx); err != nil {
		panic(err)
	}

	exp.Reset()
	v, err := c.GetOrSet(ctx, "greeting", time.Minute, func(context.Context) ([]byte, error) {
		return []byte("hello"), nil
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(string(v))
	spans := exp.GetSpans() // in the order they ended
	var op tracetest.SpanStub
	for _, s := range spans {
		if s.Name == "cache.GetOrSet" {
			op = s
		}
	}
	fmt.Println(op.Name, cache.AttrHit+"="+attr(op, cache.AttrHit))
	for _, s := range spans {
		if s.Parent.SpanID() == op.SpanContext.SpanID() {
			fmt.Println("  " + s.Name)
		}
	}
	// Output:
	// hello
	// cache.GetOrSet rediskit.cache.hit=false
	//   set
	//   cache.load
	//   evalsha
}
