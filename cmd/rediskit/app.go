package main

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rediskit/rediskit"
	"github.com/rediskit/rediskit/cache"
	"github.com/rediskit/rediskit/metrics"
	"github.com/rediskit/rediskit/session"
)

//go:embed web
var webFS embed.FS

// Sampling periods of the dashboard: statistics every second, the session
// count (a SCAN of every master) less often.
const (
	sampleEvery   = time.Second
	sessionsEvery = 5 * time.Second
	historyLen    = 120 // two minutes of snapshots, for charts that start full
)

// app is the HTTP side of serve: dashboard, probes, metrics and the demo.
type app struct {
	client   *rediskit.Client
	logger   *slog.Logger
	errs     *errorLog
	sessions *session.Store
	manager  *session.Manager
	cache    *cache.Cache
	slow     *cache.Typed[json.RawMessage] // the slow endpoint's answers, near tier in front
	demo     bool
	notices  *notices // the demo's "your other device was signed out"
	registry *prometheus.Registry

	snap      atomic.Pointer[[]byte] // latest snapshot as JSON
	histMu    sync.Mutex
	history   [][]byte      // the last historyLen snapshots, oldest first
	streams   chan struct{} // closed to end event streams
	closeOnce sync.Once
	stop      context.CancelFunc
	done      chan struct{} // closed when the sampler has returned
	evDone    chan struct{} // closed when the demo's event subscriber has returned
}

func newApp(client *rediskit.Client, logger *slog.Logger, errs *errorLog, demo bool) (*app, error) {
	rdb := client.Redis()
	// Events feed the demo's "your other device was signed out"; the cap
	// (the oldest of eleven devices goes) is one of its causes.
	store, err := session.New(rdb, session.Options{Prefix: "rediskit:demo:session:", Events: demo, MaxPerUser: 10})
	if err != nil {
		return nil, err
	}
	// The demo's cache has a near tier, so the dashboard shows one at work
	// (it turns itself off, with one log line, on a server that cannot
	// track keys).
	c, err := cache.New(rdb, cache.Options{Prefix: "rediskit:demo:cache", StaleWhileRevalidate: 30 * time.Second,
		Near: &cache.NearOptions{MaxEntries: 10_000, Logger: logger}})
	if err != nil {
		_ = store.Close()
		return nil, err
	}
	a := &app{
		client: client, logger: logger, errs: errs, sessions: store, cache: c, demo: demo,
		slow:     cache.NewTyped[json.RawMessage](c, nil),
		registry: prometheus.NewRegistry(),
		streams:  make(chan struct{}),
		done:     make(chan struct{}),
		evDone:   make(chan struct{}),
		notices:  newNotices(),
	}
	a.manager = session.NewManager(store, session.ManagerOptions{
		// serve speaks plain HTTP; put TLS in front to get Secure cookies.
		Cookie: session.CookieOptions{Name: "rediskit_demo", Insecure: true},
		Logger: logger,
	})
	a.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		metrics.NewClientCollector(client),
		metrics.NewCacheCollector("demo", c),
		metrics.NewSessionCollector(store),
	)
	ctx, cancel := context.WithCancel(context.Background())
	a.stop = cancel
	a.sample(ctx, nil) // the first snapshot is there before the first request
	go a.sampler(ctx)
	go func() {
		defer close(a.evDone)
		if !demo {
			return
		}
		// Until Close: Manager.Subscribe subscribes again after Redis
		// errors (logged), and returns when ctx ends.
		err := a.manager.Subscribe(ctx, session.EventOptions{Group: demoGroup()}, a.notices.add)
		if ctx.Err() == nil {
			a.logger.Error("demo: session events stopped", "err", err)
			a.errs.add("session events: " + err.Error())
		}
	}()
	return a, nil
}

// Close stops the sampler and the event subscriber and releases the demo's store and cache.
func (a *app) Close() {
	a.stopStreams()
	a.stop()
	<-a.done
	<-a.evDone
	_ = a.cache.Close()
	_ = a.sessions.Close()
}

func (a *app) stopStreams() { a.closeOnce.Do(func() { close(a.streams) }) }

func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(webFS, "web")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, static, "index.html")
	})
	mux.Handle("GET /healthz", rediskit.LivenessHandler())
	mux.Handle("GET /readyz", a.client.ReadinessHandler())
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /api/snapshot", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(*a.snap.Load())
	})
	mux.HandleFunc("GET /api/history", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		a.histMu.Lock()
		body := append([]byte("["), bytes.Join(a.history, []byte(","))...)
		a.histMu.Unlock()
		_, _ = w.Write(append(body, ']'))
	})
	mux.HandleFunc("GET /api/events", a.events)
	if a.demo {
		a.demoRoutes(mux)
	}
	return mux
}

// events streams a snapshot every second as server-sent events until the
// client leaves or the server shuts down.
func (a *app) events(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	tick := time.NewTicker(sampleEvery)
	defer tick.Stop()
	for {
		if _, err := fmt.Fprintf(w, "data: %s\n\n", *a.snap.Load()); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-a.streams:
			return
		case <-tick.C:
		}
	}
}

func (a *app) sampler(ctx context.Context) {
	defer close(a.done)
	tick := time.NewTicker(sampleEvery)
	defer tick.Stop()
	prev := &sampleState{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			a.sample(ctx, prev)
		}
	}
}

// sampleState carries what a rate or a slow figure needs between samples.
type sampleState struct {
	at       time.Time
	commands uint64
	buckets  []rediskit.LatencyBucket
	sessions session.Stats
	sessAt   time.Time
	healthAt time.Time
}

// snapshot is what the dashboard draws; see web/app.js.
type snapshot struct {
	Time    int64  `json:"time"`
	Target  string `json:"target"`
	Breaker string `json:"breaker"`
	Health  struct {
		Status   string     `json:"status"`
		Nodes    []nodeView `json:"nodes"`
		Warnings []string   `json:"warnings,omitempty"` // Health.Warnings: eviction risks
	} `json:"health"`
	Server struct {
		OpsPerSec        int64 `json:"ops_per_sec"`
		UsedMemory       int64 `json:"used_memory"`
		Keys             int64 `json:"keys"`
		ConnectedClients int64 `json:"connected_clients"`
	} `json:"server"`
	Client struct {
		CommandsPerSec float64 `json:"commands_per_sec"`
		Latency        struct {
			P50 float64 `json:"p50"`
			P99 float64 `json:"p99"`
		} `json:"latency_ms"`
		Pool struct {
			InUse    uint32 `json:"in_use"`
			Idle     uint32 `json:"idle"`
			Total    uint32 `json:"total"`
			Timeouts uint32 `json:"timeouts"`
			// Waits counts the waits for a free connection since start;
			// WaitMS is their mean, in milliseconds.
			Waits  uint32  `json:"waits"`
			WaitMS float64 `json:"wait_ms"`
		} `json:"pool"`
		Retries   uint64 `json:"retries"`
		Ambiguous uint64 `json:"ambiguous"`
		Deadlines uint64 `json:"deadlines"`
	} `json:"client"`
	Cache struct {
		Hits           uint64 `json:"hits"`
		Misses         uint64 `json:"misses"`
		Loads          uint64 `json:"loads"`
		DedupLoads     uint64 `json:"dedup_loads"`
		LoadErrors     uint64 `json:"load_errors"`
		StaleServed    uint64 `json:"stale_served"`
		LeaseWaits     uint64 `json:"lease_waits"`
		DecodeFailures uint64 `json:"decode_failures"`
		// Near is the demo cache's near tier (cache.NearStats).
		Near struct {
			Mode          string `json:"mode"`
			Serving       bool   `json:"serving"`
			Hits          uint64 `json:"hits"`
			NegativeHits  uint64 `json:"negative_hits"`
			Misses        uint64 `json:"misses"`
			Fills         uint64 `json:"fills"`
			NegativeFills uint64 `json:"negative_fills"`
			Evictions     uint64 `json:"evictions"`
			Invalidations uint64 `json:"invalidations"`
			Flushes       uint64 `json:"flushes"`
			Entries       int    `json:"entries"`
			Bytes         uint64 `json:"bytes"`
		} `json:"near"`
	} `json:"cache"`
	Sessions struct {
		Active int64 `json:"active"`
		Users  int64 `json:"users"`
	} `json:"sessions"`
	Errors []errorEntry `json:"errors"`
}

type nodeView struct {
	Addr      string  `json:"addr"`
	Role      string  `json:"role"`
	Version   string  `json:"version"`
	OK        bool    `json:"ok"`
	LatencyMS float64 `json:"latency_ms"`
	Error     string  `json:"error,omitempty"`
}

// windowQuantile returns the q-quantile of the calls counted between two
// cumulative histograms, as the upper bound of the bucket it falls in; zero
// when no call was counted.
func windowQuantile(before, after []rediskit.LatencyBucket, q float64) time.Duration {
	if len(before) != len(after) || len(after) == 0 {
		return 0
	}
	total := after[len(after)-1].Count - before[len(before)-1].Count
	if total == 0 {
		return 0
	}
	target := uint64(q*float64(total) + 0.5)
	target = max(target, 1)
	for i := range after {
		if after[i].Count-before[i].Count >= target {
			return after[i].UpperBound
		}
	}
	return after[len(after)-1].UpperBound
}

// describeTarget names the deployment in a few words, without secrets.
func describeTarget(cfg rediskit.Config) string {
	switch cfg.Mode() {
	case rediskit.Sentinel:
		return fmt.Sprintf("sentinel master %q via %s", cfg.MasterName, strings.Join(cfg.SentinelAddrs, ", "))
	case rediskit.Cluster:
		return "cluster seeded by " + strings.Join(cfg.ClusterAddrs, ", ")
	}
	return fmt.Sprintf("standalone %s db %d", cfg.Addr, cfg.DB)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// sample takes one snapshot. prev is nil for the first, which has no rates.
func (a *app) sample(ctx context.Context, prev *sampleState) {
	ctx, cancel := context.WithTimeout(ctx, 2*sampleEvery)
	defer cancel()
	now := time.Now()
	var s snapshot
	s.Time = now.UnixMilli()
	s.Target = describeTarget(a.client.Config())

	h := a.client.Health(ctx)
	s.Health.Status = string(h.Status)
	s.Health.Warnings = h.Warnings
	s.Breaker = h.Breaker.String()
	for _, n := range h.Nodes {
		s.Health.Nodes = append(s.Health.Nodes, nodeView{n.Addr, n.Role, n.Version, n.Up, ms(n.Latency), n.Err})
	}

	st, err := a.client.Stats(ctx)
	if err != nil {
		a.errs.add("stats: " + err.Error())
	}
	s.Server.OpsPerSec = st.Server.OpsPerSec
	s.Server.UsedMemory = st.Server.UsedMemory
	s.Server.ConnectedClients = st.Server.ConnectedClients
	s.Server.Keys = st.Server.Keys
	// Percentiles since start (the first sample) or over the last second.
	s.Client.Latency.P50, s.Client.Latency.P99 = ms(st.Latency.P50), ms(st.Latency.P99)
	if prev != nil {
		if prev.buckets != nil {
			s.Client.Latency.P50 = ms(windowQuantile(prev.buckets, st.Latency.Buckets, 0.50))
			s.Client.Latency.P99 = ms(windowQuantile(prev.buckets, st.Latency.Buckets, 0.99))
		}
		prev.buckets = st.Latency.Buckets
	}
	s.Client.Pool.Total, s.Client.Pool.Idle, s.Client.Pool.Timeouts = st.Pool.TotalConns, st.Pool.IdleConns, st.Pool.Timeouts
	s.Client.Pool.InUse = st.Pool.TotalConns - min(st.Pool.IdleConns, st.Pool.TotalConns)
	waits, mean := st.PoolWait()
	s.Client.Pool.Waits, s.Client.Pool.WaitMS = waits, ms(mean)
	s.Client.Retries, s.Client.Ambiguous, s.Client.Deadlines = st.Retries, st.Ambiguous, st.Deadlines

	cs := a.cache.LocalStats()
	s.Cache.Hits, s.Cache.Misses, s.Cache.Loads, s.Cache.DedupLoads = cs.Hits, cs.Misses, cs.Loads, cs.DedupLoads
	s.Cache.LoadErrors, s.Cache.StaleServed, s.Cache.LeaseWaits, s.Cache.DecodeFailures = cs.LoaderErrors, cs.StaleServed, cs.LeaseWaits, cs.DecodeFailures
	ns := a.cache.NearStats()
	n := &s.Cache.Near
	n.Mode, n.Serving, n.Hits, n.NegativeHits, n.Misses = ns.Mode.String(), ns.Serving, ns.Hits, ns.NegativeHits, ns.Misses
	n.Fills, n.NegativeFills, n.Evictions, n.Invalidations = ns.Fills, ns.NegativeFills, ns.Evictions, ns.Invalidations
	n.Flushes, n.Entries, n.Bytes = ns.Flushes, ns.Entries, ns.Bytes

	if prev != nil {
		if !prev.at.IsZero() {
			if dt := now.Sub(prev.at).Seconds(); dt > 0 && st.Commands >= prev.commands {
				s.Client.CommandsPerSec = float64(st.Commands-prev.commands) / dt
			}
		}
		prev.at, prev.commands = now, st.Commands
		if h.LastErrorAt.After(prev.healthAt) {
			prev.healthAt = h.LastErrorAt
			a.errs.addAt(h.LastErrorAt, "health: "+h.LastError)
		}
	}
	if prev == nil || now.Sub(prev.sessAt) >= sessionsEvery {
		ss, err := a.sessions.Stats(ctx)
		if err != nil {
			a.errs.add("sessions: " + err.Error())
		} else if prev != nil {
			prev.sessions, prev.sessAt = ss, now
		}
		s.Sessions.Active, s.Sessions.Users = ss.Sessions, ss.Users
	} else {
		s.Sessions.Active, s.Sessions.Users = prev.sessions.Sessions, prev.sessions.Users
	}
	s.Errors = a.errs.list()

	b, err := json.Marshal(&s)
	if err != nil {
		a.logger.Error("dashboard snapshot", "err", err)
		return
	}
	a.snap.Store(&b)
	a.histMu.Lock()
	a.history = append(a.history, b)
	if len(a.history) > historyLen {
		a.history = a.history[len(a.history)-historyLen:]
	}
	a.histMu.Unlock()
}

// errorLog keeps the most recent errors for the dashboard.
type errorLog struct {
	mu      sync.Mutex
	entries []errorEntry
	max     int
}

type errorEntry struct {
	Time    int64  `json:"time"`
	Message string `json:"message"`
}

func newErrorLog(max int) *errorLog { return &errorLog{max: max} }

func (l *errorLog) add(msg string) { l.addAt(time.Now(), msg) }

func (l *errorLog) addAt(t time.Time, msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, errorEntry{t.UnixMilli(), msg})
	if len(l.entries) > l.max {
		l.entries = l.entries[len(l.entries)-l.max:]
	}
}

func (l *errorLog) list() []errorEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]errorEntry(nil), l.entries...)
}
