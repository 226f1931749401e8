package rediskit

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rediskit/rediskit/internal/security"
)

// TestTLS connects to a redis-server that listens only on TLS, with a
// certificate signed by a CA made in the test and verification on.
func TestTLS(t *testing.T) {
	t.Parallel()
	srv := security.StartTLS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	t.Run("trusted CA", func(t *testing.T) {
		c := open(t, Config{Addr: srv.Addr, TLSConfig: security.ClientConfig(srv.CA), HealthCheckInterval: -1})
		rdb := c.Redis()
		if err := rdb.Set(ctx, "tls:k", "v", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		if v, err := rdb.Get(ctx, "tls:k").Result(); err != nil || v != "v" {
			t.Fatalf("GET over TLS = %q, %v", v, err)
		}
		if h := c.Health(ctx); !h.Healthy() {
			t.Fatalf("health over TLS: %+v", h)
		}
		// The name verified is the dialled host: 127.0.0.1 is in the
		// certificate's SANs, and so is localhost.
		cfg, err := ParseURL("rediss://localhost:" + portOf(srv.Addr) + "/0?health_check_interval=-1")
		if err != nil {
			t.Fatal(err)
		}
		cfg.TLSConfig = security.ClientConfig(srv.CA)
		if err := open(t, cfg).Redis().Ping(ctx).Err(); err != nil {
			t.Fatalf("PING via rediss://localhost: %v", err)
		}
	})

	// Every refusal is an error from Open that says why, within the dial
	// timeout: none hangs and none falls back to plain text.
	other, err := security.NewCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want func(err error) bool
	}{
		{"wrong CA", Config{Addr: srv.Addr, TLSConfig: security.ClientConfig(other)}, isUnknownAuthority},
		{"system roots (rediss:// without a CA)", Config{Addr: srv.Addr, TLS: true}, isUnknownAuthority},
		{"name not in the certificate", Config{Addr: srv.Addr, TLSConfig: withName(security.ClientConfig(srv.CA), "redis.example.com")},
			func(err error) bool {
				var he x509.HostnameError
				return errors.As(err, &he)
			}},
		{"plain text to the TLS port", Config{Addr: srv.Addr, ReadTimeout: time.Second}, func(err error) bool { return err != nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.DialTimeout = 2 * time.Second
			tc.cfg.HealthCheckInterval = -1
			tc.cfg.Retry.MaxAttempts = 1
			start := time.Now()
			c, err := Open(ctx, tc.cfg)
			if err == nil {
				_ = c.Close()
				t.Fatal("Open succeeded")
			}
			t.Logf("Open: %v", err)
			if !tc.want(err) {
				t.Fatalf("Open: %v (%T)", err, errors.Unwrap(err))
			}
			if ctx.Err() != nil || time.Since(start) > 15*time.Second {
				t.Fatalf("Open took %v: it must fail, not hang", time.Since(start))
			}
			if !strings.Contains(err.Error(), srv.Addr) {
				t.Errorf("error does not name the address: %v", err)
			}
		})
	}
}

func isUnknownAuthority(err error) bool {
	var ua x509.UnknownAuthorityError
	return errors.As(err, &ua) && strings.Contains(err.Error(), "certificate signed by unknown authority")
}

func withName(c *tls.Config, name string) *tls.Config {
	c.ServerName = name
	return c
}

func portOf(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }

// TestTLSCluster opens a rediss-cluster:// URL on a cluster whose nodes
// listen only on TLS: commands reach all three masters (the slot map's
// addresses are dialled over TLS too), and health and stats see every node.
func TestTLSCluster(t *testing.T) {
	t.Parallel()
	cl := security.StartTLSCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := ParseURL("rediss-cluster://" + strings.Join(cl.Addrs(), ",") + "?health_check_interval=-1")
	if err != nil {
		t.Fatal(err)
	}
	cfg.TLSConfig = security.ClientConfig(cl.CA)
	c := open(t, cfg)
	rdb := c.Redis()
	for i := range 100 {
		if err := rdb.Set(ctx, fmt.Sprintf("tls:%d", i), i, time.Minute).Err(); err != nil {
			t.Fatalf("SET %d over TLS: %v", i, err)
		}
	}
	for i := range 100 {
		if v, err := rdb.Get(ctx, fmt.Sprintf("tls:%d", i)).Int(); err != nil || v != i {
			t.Fatalf("GET %d over TLS = %d, %v", i, v, err)
		}
	}
	if h := c.Health(ctx); !h.Healthy() || len(h.Nodes) != 3 {
		t.Fatalf("health of the TLS cluster: %+v", h)
	}
	st, err := c.Stats(ctx)
	if err != nil || len(st.Nodes) != 3 || st.Server.Keys != 100 {
		t.Fatalf("stats of the TLS cluster: %d nodes, %d keys, %v", len(st.Nodes), st.Server.Keys, err)
	}

	// Without TLS the same addresses refuse to serve: no plain-text fallback.
	plain := cfg
	plain.TLSConfig, plain.TLS = nil, false
	plain.DialTimeout = time.Second
	if pc, err := Open(ctx, plain); err == nil {
		pc.Close()
		t.Fatal("Open without TLS on a TLS-only cluster succeeded")
	}
}

// TestTLSSentinel opens a rediss-sentinel:// URL on a master, replica and
// sentinel that listen only on TLS: the sentinel is asked over TLS, the
// master it names is dialled over TLS, and a failover is followed.
func TestTLSSentinel(t *testing.T) {
	t.Parallel()
	s := security.StartTLSSentinel(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg, err := ParseURL("rediss-sentinel://" + strings.Join(s.SentinelAddrs(), ",") + "/" + s.MasterName + "?health_check_interval=-1")
	if err != nil {
		t.Fatal(err)
	}
	cfg.TLSConfig = security.ClientConfig(s.CA)
	c := open(t, cfg)
	rdb := c.Redis()
	if err := rdb.Set(ctx, "tls:sentinel", "v", time.Minute).Err(); err != nil {
		t.Fatalf("SET through the TLS sentinel: %v", err)
	}
	if h := c.Health(ctx); !h.Healthy() {
		t.Fatalf("health over TLS: %+v", h)
	}
	if n, err := rdb.Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n != 1 {
		t.Fatalf("the replica did not confirm over TLS replication: %d, %v", n, err)
	}
	s.Failover(t)
	eventually(t, 20*time.Second, "a write on the promoted master", func() bool {
		return rdb.Set(ctx, "tls:sentinel", "w", time.Minute).Err() == nil
	})
	if v, err := rdb.Get(ctx, "tls:sentinel").Result(); err != nil || v != "w" {
		t.Fatalf("GET after the failover = %q, %v", v, err)
	}
}
