package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit"
)

// shutdownGrace bounds how long serve waits for in-flight requests on exit.
const shutdownGrace = 10 * time.Second

func runServe(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "serve", "rediskit serve [--listen ADDR] [--redis URL] [--demo=false]",
		`Serve the live dashboard at /, /healthz (liveness), /readyz (readiness from
the cached health check), /metrics (Prometheus) and a demo application under
/demo/. With no --redis and no REDIS_URL, an embedded Redis is started: a
redis-server child process when the binary is on PATH, else an in-process
server. SIGINT or SIGTERM shuts down gracefully.`,
		"rediskit serve\nrediskit serve --listen 0.0.0.0:9000 --redis redis-cluster://10.0.0.1:7000,10.0.0.2:7000\nREDIS_URL=redis://:secret@cache:6379/0 rediskit serve --demo=false")
	listen := fs.String("listen", "127.0.0.1:8080", "`address` to serve HTTP on")
	url := redisFlag(fs)
	demo := fs.Bool("demo", true, "serve the demo application under /demo/")
	if pos, err := parseFlags(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErrorf("unexpected argument %q (see rediskit serve --help)", pos[0])
	}

	cfg, ok, err := loadConfig(e, *url)
	if err != nil {
		return err
	}
	if !ok {
		emb, err := startEmbedded()
		if err != nil {
			return err
		}
		defer emb.Stop()
		fmt.Fprintf(e.stdout, "rediskit: no Redis configured; started an %s\n", emb.Desc)
		if cfg, err = rediskit.ParseURL(emb.URL); err != nil {
			return err
		}
	}

	logger := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	redis.SetLogger(goRedisLog{logger})
	errs := newErrorLog(50)
	cfg.OnBreakerChange = func(from, to rediskit.BreakerState) {
		errs.add(fmt.Sprintf("circuit breaker %s → %s", from, to))
	}
	client, err := rediskit.Open(ctx, cfg)
	if err != nil {
		return openError(err)
	}
	defer client.Close()

	a, err := newApp(client, logger, errs, *demo)
	if err != nil {
		return err
	}
	defer a.Close()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return withCode(exitUsage, fmt.Errorf("--listen: %w", err))
	}
	srv := &http.Server{
		Handler:           a.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	// Event streams never end by themselves: tell them to when shutting down.
	srv.RegisterOnShutdown(a.stopStreams)
	fmt.Fprintf(e.stdout, "rediskit: connected to %s\nrediskit: dashboard on http://%s/ (Ctrl-C to stop)\n", describeTarget(client.Config()), ln.Addr())

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	fmt.Fprintln(e.stdout, "rediskit: shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	<-served
	return nil
}
