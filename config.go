package rediskit

import (
	"crypto/tls"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/rediskit/rediskit/retry"
)

// Mode is the kind of deployment a Config connects to.
type Mode int

const (
	// Standalone is a single server (Config.Addr).
	Standalone Mode = iota
	// Sentinel is a master found through Redis Sentinel (Config.MasterName).
	Sentinel
	// Cluster is a Redis Cluster (Config.ClusterAddrs).
	Cluster
)

// String returns "standalone", "sentinel" or "cluster".
func (m Mode) String() string {
	switch m {
	case Sentinel:
		return "sentinel"
	case Cluster:
		return "cluster"
	}
	return "standalone"
}

// Defaults used by Open for zero Config fields.
const (
	DefaultAddr                = "localhost:6379"
	DefaultDialTimeout         = 5 * time.Second
	DefaultReadTimeout         = 3 * time.Second
	DefaultKeepAlive           = 5 * time.Minute
	DefaultConnMaxIdleTime     = 30 * time.Minute
	DefaultHealthCheckInterval = 5 * time.Second
	DefaultBreakerThreshold    = 5
	DefaultBreakerCooldown     = 2 * time.Second
	DefaultDrainTimeout        = 5 * time.Second
)

// Config describes how to reach Redis and how the connection layer behaves.
// One Config serves the three deployments: set Addr for a standalone server,
// MasterName and SentinelAddrs for Sentinel, or ClusterAddrs for a Cluster
// (setting more than one is a validation error). The zero value of every
// field means its documented default; durations that can be switched off
// take -1 for "off". Build it in code, with ParseURL or with FromEnv.
//
// Config.String redacts the passwords; errors from this package never
// contain them.
type Config struct {
	// Addr is the "host:port" of a standalone server. Default
	// "localhost:6379" when neither MasterName nor ClusterAddrs is set.
	Addr string

	// MasterName is the name Sentinel knows the master by; setting it selects
	// Sentinel mode. No default.
	MasterName string
	// SentinelAddrs are the "host:port" addresses of the sentinels. Required
	// in Sentinel mode.
	SentinelAddrs []string
	// SentinelUsername is the ACL user for the sentinels. Default none.
	SentinelUsername string
	// SentinelPassword authenticates to the sentinels (not to the master:
	// that is Password). Default none.
	SentinelPassword string `json:"-"`

	// ClusterAddrs are seed "host:port" addresses of cluster nodes; setting
	// them selects Cluster mode. The other nodes are discovered.
	ClusterAddrs []string

	// Username is the ACL user for data nodes. Default none ("default").
	Username string
	// Password authenticates to data nodes. Default none.
	Password string `json:"-"`
	// DB is the database number, standalone and Sentinel only. Default 0.
	DB int

	// TLS turns on TLS with a default configuration (system roots, server
	// name from the address or TLSServerName). Default off.
	TLS bool
	// TLSServerName overrides the name verified in the server certificate.
	// Default: the host of the address being dialled.
	TLSServerName string
	// TLSInsecureSkipVerify skips certificate verification (tests only).
	// Default false.
	TLSInsecureSkipVerify bool
	// TLSConfig, when set, is used as is (cloned) and implies TLS; the
	// simple TLS fields above are then ignored. Default nil.
	TLSConfig *tls.Config

	// PoolSize is the maximum number of connections per node. Default
	// 10 per GOMAXPROCS on standalone and Sentinel, 5 per GOMAXPROCS on each
	// node of a Cluster: go-redis's own defaults for Client and
	// ClusterClient. A Cluster spreads the same goroutines over several
	// masters, so each node needs fewer connections, and a bigger pool only
	// lets more WATCH transactions on a hot key run at once and conflict.
	PoolSize int
	// MinIdleConns is the number of idle connections kept open per node.
	// Default 0.
	MinIdleConns int
	// ConnMaxIdleTime closes connections idle for longer. Default 30 min;
	// -1 keeps idle connections forever.
	ConnMaxIdleTime time.Duration
	// ConnMaxLifetime closes connections older than this. Default 0: no limit.
	ConnMaxLifetime time.Duration

	// DialTimeout bounds establishing one connection. Default 5 s.
	DialTimeout time.Duration
	// ReadTimeout bounds waiting for a reply. Default 3 s; -1 waits forever.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a command. Default: ReadTimeout.
	// -1 waits forever.
	WriteTimeout time.Duration
	// KeepAlive is the TCP keep-alive period. Default 5 min; -1 turns TCP
	// keep-alive off.
	KeepAlive time.Duration

	// DisableContextTimeout stops rediskit from honouring context deadlines
	// on the socket (go-redis Options.ContextTimeoutEnabled = false): a
	// command then waits for its reply up to ReadTimeout (for a blocking
	// command, up to its own timeout) whatever its context says. Default
	// false: a command returns by its context's deadline, blocking ones
	// included, with an error matching context.DeadlineExceeded, and a
	// blocking pop is given a server-side timeout that ends before the
	// deadline, so no element is popped without reaching the caller (see
	// the package documentation, "Deadlines").
	DisableContextTimeout bool

	// Retry is the policy for commands that are safe to repeat (see package
	// retry): default 3 attempts, backoff from 8 ms up to 512 ms.
	Retry retry.Policy

	// HealthCheckInterval is the period of the background PING of every node.
	// Default 5 s; -1 turns the checker off (Health then checks on demand).
	HealthCheckInterval time.Duration

	// BreakerThreshold is the number of consecutive infrastructure failures
	// that opens the circuit breaker. Default 5; -1 turns the breaker off.
	// On a Cluster every node has its own breaker: a dead master fails its
	// own slots fast while the other masters keep serving.
	BreakerThreshold int
	// BreakerCooldown is how long the breaker stays open before one probe
	// call is let through. Default 2 s.
	BreakerCooldown time.Duration
	// OnBreakerChange, when set, is called (synchronously, keep it short)
	// on every breaker state change (on a Cluster, of any node's breaker).
	// Default nil.
	OnBreakerChange func(from, to BreakerState)

	// DrainTimeout bounds how long Close waits for commands in flight.
	// Default 5 s.
	DrainTimeout time.Duration

	// ReadOnly lets read-only commands be served by replicas, Cluster and
	// Sentinel only: on a Cluster each read goes to a replica of its slot's
	// master (go-redis ClusterOptions.ReadOnly); in Sentinel mode rediskit
	// builds go-redis's failover cluster client with ReplicaOnly, which sends
	// reads to a replica and writes to the master (go-redis's plain
	// ReplicaOnly failover client would send the writes to a replica too).
	// A replica answers with what it has received, which lags the master by
	// the replication delay (see the package documentation, "Replica
	// reads"). Default false: every command goes to the master.
	ReadOnly bool
	// RouteByLatency sends each read-only command to the node of its slot
	// (master or replica) with the lowest measured latency; implies ReadOnly.
	// Cluster and Sentinel only. Default false.
	RouteByLatency bool
	// RouteRandomly sends each read-only command to a random node of its
	// slot (master or replica); implies ReadOnly. Cluster and Sentinel only.
	// Default false.
	RouteRandomly bool

	// Logger receives rediskit's own records (breaker changes, connections
	// refused by the Sentinel guard, retries, Open) and, while a Client
	// opened with it is open, go-redis's internal log lines (see the package
	// documentation, "Logging"). Records never contain a password or a
	// token. Default nil: rediskit's records go to slog.Default(), and
	// go-redis's logger, which is process-wide, is left as it is.
	Logger *slog.Logger
}

// readsReplicas reports whether read-only commands may go to replicas.
func (c Config) readsReplicas() bool { return c.ReadOnly || c.RouteByLatency || c.RouteRandomly }

// logger returns the Logger, or slog.Default().
func (c Config) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

// Mode returns the deployment the config selects.
func (c Config) Mode() Mode {
	switch {
	case c.MasterName != "":
		return Sentinel
	case len(c.ClusterAddrs) > 0:
		return Cluster
	}
	return Standalone
}

// DefaultPoolSize is the PoolSize used when Config.PoolSize is zero: go-redis's
// defaults, 10 connections per GOMAXPROCS for a standalone or Sentinel
// client and 5 per GOMAXPROCS on each node of a Cluster (whose load is
// spread over its masters).
func DefaultPoolSize(m Mode) int {
	if m == Cluster {
		return 5 * runtime.GOMAXPROCS(0)
	}
	return 10 * runtime.GOMAXPROCS(0)
}

// withDefaults returns a copy of c with zero fields set to their defaults
// (the settings table).
func (c Config) withDefaults() Config {
	for _, s := range settings {
		s.applyDefault(&c)
	}
	c.Retry = c.Retry.WithDefaults()
	return c
}

// Validate checks c and returns a *ConfigError naming the first bad field and
// its value (passwords are never echoed), or nil.
func (c Config) Validate() error {
	modes := 0
	if c.Addr != "" {
		modes++
	}
	if c.MasterName != "" {
		modes++
	}
	if len(c.ClusterAddrs) > 0 {
		modes++
	}
	switch {
	case modes > 1:
		return badField("Addr/MasterName/ClusterAddrs", c.Mode().String(), "set only one of Addr, MasterName, ClusterAddrs")
	case c.Addr != "":
		if err := checkAddr("Addr", c.Addr); err != nil {
			return err
		}
	case c.MasterName != "":
		if len(c.SentinelAddrs) == 0 {
			return badField("SentinelAddrs", c.SentinelAddrs, "required with MasterName")
		}
		for _, a := range c.SentinelAddrs {
			if err := checkAddr("SentinelAddrs", a); err != nil {
				return err
			}
		}
	case len(c.ClusterAddrs) > 0:
		for _, a := range c.ClusterAddrs {
			if err := checkAddr("ClusterAddrs", a); err != nil {
				return err
			}
		}
	}
	if len(c.SentinelAddrs) > 0 && c.MasterName == "" {
		return badField("MasterName", c.MasterName, "required with SentinelAddrs")
	}
	if c.readsReplicas() && c.Mode() == Standalone {
		field, v := "ReadOnly", c.ReadOnly
		switch {
		case c.RouteByLatency:
			field, v = "RouteByLatency", c.RouteByLatency
		case c.RouteRandomly:
			field, v = "RouteRandomly", c.RouteRandomly
		}
		return badField(field, v, "replica reads need Cluster or Sentinel mode: a standalone server has no replicas to route to")
	}
	if c.DB != 0 && c.Mode() == Cluster {
		return badField("DB", c.DB, "a cluster has only database 0")
	}
	for _, st := range settings {
		if err := st.check(&c); err != nil {
			return err
		}
	}
	if c.PoolSize > 0 && c.MinIdleConns > c.PoolSize {
		return badField("MinIdleConns", c.MinIdleConns, "must not exceed PoolSize")
	}
	if c.Retry.MaxBackoff > 0 && c.Retry.BaseBackoff > c.Retry.MaxBackoff {
		return badField("Retry.BaseBackoff", c.Retry.BaseBackoff, "must not exceed Retry.MaxBackoff")
	}
	return nil
}

func checkAddr(field, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return badField(field, addr, "want host:port")
	}
	if host == "" {
		return badField(field, addr, "missing host")
	}
	if strings.ContainsAny(host, "/@?# []") || strings.ContainsFunc(host, isControl) {
		return badField(field, addr, "invalid host")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return badField(field, addr, "port must be 1-65535")
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// String describes c for logs: mode, addresses and the settings that are
// set, in the order of the settings table. Passwords appear as
// "[redacted]" when set; a TLSConfig as tls=true.
func (c Config) String() string {
	var b strings.Builder
	b.WriteString("rediskit.Config{mode=" + c.Mode().String())
	for _, s := range settings {
		v, ok := s.format(&c)
		if s.name == "tls" && !ok && c.TLSConfig != nil {
			v, ok = "on", true
		}
		if !ok {
			continue
		}
		k := s.show
		if k == "" {
			k = s.name
		}
		b.WriteString(" " + k + "=" + v)
	}
	b.WriteString("}")
	return b.String()
}

// GoString redacts like String, so %#v does not print passwords either.
func (c Config) GoString() string { return c.String() }
