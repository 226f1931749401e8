package rediskit

import (
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/retry"
)

func TestParseURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url  string
		want Config
	}{
		{"redis://localhost", Config{Addr: "localhost:6379"}},
		{"redis://:s3cret@10.0.0.1:6380/2", Config{Addr: "10.0.0.1:6380", Password: "s3cret", DB: 2}},
		{"redis://app:p%40ss@h:1/0", Config{Addr: "h:1", Username: "app", Password: "p@ss"}},
		{"rediss://h:6380?tls_server_name=redis.example&pool_size=7", Config{Addr: "h:6380", TLS: true, TLSServerName: "redis.example", PoolSize: 7}},
		{"redis://[::1]:7000", Config{Addr: "[::1]:7000"}},
		{"redis://[::1]", Config{Addr: "[::1]:6379"}},
		{"redis://h?read_timeout=250ms&write_timeout=2&dial_timeout=4&conn_max_idle_time=-1&keep_alive=30s",
			Config{Addr: "h:6379", ReadTimeout: 250 * time.Millisecond, WriteTimeout: 2 * time.Second, DialTimeout: 4 * time.Second, ConnMaxIdleTime: -1, KeepAlive: 30 * time.Second}},
		{"redis://h?retry_attempts=5&retry_base_backoff=10ms&retry_max_backoff=1s&breaker_threshold=-1&breaker_cooldown=3s&health_check_interval=1s&drain_timeout=9s&min_idle_conns=2&conn_max_lifetime=1h",
			Config{Addr: "h:6379", Retry: retry.Policy{MaxAttempts: 5, BaseBackoff: 10 * time.Millisecond, MaxBackoff: time.Second},
				BreakerThreshold: -1, BreakerCooldown: 3 * time.Second, HealthCheckInterval: time.Second, DrainTimeout: 9 * time.Second,
				MinIdleConns: 2, ConnMaxLifetime: time.Hour}},
		{"redis-sentinel://:pw@s1,s2:26380/mymaster/3?sentinel_password=spw",
			Config{MasterName: "mymaster", SentinelAddrs: []string{"s1:26379", "s2:26380"}, Password: "pw", SentinelPassword: "spw", DB: 3}},
		{"rediss-sentinel://s1/m", Config{MasterName: "m", SentinelAddrs: []string{"s1:26379"}, TLS: true}},
		{"redis://s1:26379?master_name=mymaster&addr=s2:26379", Config{MasterName: "mymaster", SentinelAddrs: []string{"s1:26379", "s2:26379"}}},
		{"redis-cluster://h1:7000,h2:7001", Config{ClusterAddrs: []string{"h1:7000", "h2:7001"}}},
		{"redis-cluster://h1", Config{ClusterAddrs: []string{"h1:6379"}}},
		{"rediss-cluster://u:p@h1:7000?tls_insecure_skip_verify=true", Config{ClusterAddrs: []string{"h1:7000"}, Username: "u", Password: "p", TLS: true, TLSInsecureSkipVerify: true}},
		{"redis://h1:7000?addr=h2:7001&addr=h3:7002", Config{ClusterAddrs: []string{"h1:7000", "h2:7001", "h3:7002"}}},
		{"redis://h?disable_context_timeout=true", Config{Addr: "h:6379", DisableContextTimeout: true}},
		{"redis-cluster://h1?disable_context_timeout=0", Config{ClusterAddrs: []string{"h1:6379"}}},
	}
	for _, tt := range tests {
		got, err := ParseURL(tt.url)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tt.url, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseURL(%q)\n got %#v\nwant %#v", tt.url, fields(got), fields(tt.want))
		}
	}
}

// fields prints every field, passwords included, for test diffs only.
func fields(c Config) string { type plain Config; return fmt.Sprintf("%+v", plain(c)) }

func TestParseURLErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url, field, value string
	}{
		{"localhost:6379", "URL", `""`},
		{"http://h", "URL scheme", `"http"`},
		{"redis://", "URL host", `""`},
		{"redis://h:0", "URL host", `"h:0"`},
		{"redis://h:99999", "URL host", `"h:99999"`},
		{"redis://h:x", "URL host", `"h:x"`},
		{"redis://h/abc", "URL path", `"/abc"`},
		{"redis://h/1/2", "URL path", `"/1/2"`},
		{"redis://h?pool_size=many", "URL parameter pool_size", `"many"`},
		{"redis://h?pool_size=-4", "PoolSize", "-4"},
		{"redis://h?read_timeout=-5s", "ReadTimeout", "-5s"},
		{"redis://h?dial_timeout=-1", "", ""}, // valid: sentinel for off is accepted by the parser...
		{"redis://h?bogus=1", "URL parameter", `"bogus"`},
		{"redis://h?password=x", "URL parameter", `"password"`},
		{"redis://h?tls=maybe", "URL parameter tls", `"maybe"`},
		{"redis://h?disable_context_timeout=off", "URL parameter disable_context_timeout", `"off"`},
		{"redis://h?retry_base_backoff=2s&retry_max_backoff=1s", "Retry.BaseBackoff", "2s"},
		{"redis://h#frag", "URL", `"#…"`},
		{"redis://h?q=%zz", "URL query", `""`},
		{"redis-sentinel://s1", "URL path", `""`},
		{"redis-cluster://h1/3", "DB", "3"},
		{"redis-cluster://h1?master_name=m", "URL parameter master_name", `"m"`},
		{"redis://h?min_idle_conns=9&pool_size=3", "MinIdleConns", "9"},
		{"redis://h?breaker_threshold=-2", "BreakerThreshold", "-2"},
	}
	for _, tt := range tests {
		_, err := ParseURL(tt.url)
		if tt.field == "" {
			// dial_timeout=-1 parses, then Validate rejects it: only
			// durations documented as switchable accept -1.
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != "DialTimeout" {
				t.Errorf("ParseURL(%q) = %v, want DialTimeout error", tt.url, err)
			}
			continue
		}
		var ce *ConfigError
		if !errors.As(err, &ce) {
			t.Errorf("ParseURL(%q) = %v, want *ConfigError", tt.url, err)
			continue
		}
		if ce.Field != tt.field || ce.Value != tt.value {
			t.Errorf("ParseURL(%q) = field %q value %q (%v), want field %q value %q", tt.url, ce.Field, ce.Value, err, tt.field, tt.value)
		}
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cfg   Config
		field string
	}{
		{Config{}, ""},
		{Config{Addr: "h:1", ClusterAddrs: []string{"h:2"}}, "Addr/MasterName/ClusterAddrs"},
		{Config{MasterName: "m"}, "SentinelAddrs"},
		{Config{SentinelAddrs: []string{"s:1"}}, "MasterName"},
		{Config{MasterName: "m", SentinelAddrs: []string{"nope"}}, "SentinelAddrs"},
		{Config{ClusterAddrs: []string{"h:1", ":2"}}, "ClusterAddrs"},
		{Config{Addr: "h"}, "Addr"},
		{Config{DB: -1}, "DB"},
		{Config{PoolSize: -1}, "PoolSize"},
		{Config{ReadTimeout: -2}, "ReadTimeout"},
		{Config{ReadTimeout: -1}, ""},
		{Config{ConnMaxLifetime: -1}, "ConnMaxLifetime"},
		{Config{Retry: retry.Policy{MaxAttempts: -1}}, "Retry.MaxAttempts"},
		{Config{BreakerCooldown: -time.Second}, "BreakerCooldown"},
		{Config{HealthCheckInterval: -1}, ""},
	}
	for i, tt := range tests {
		err := tt.cfg.Validate()
		var ce *ConfigError
		switch {
		case tt.field == "" && err != nil:
			t.Errorf("%d: Validate() = %v, want nil", i, err)
		case tt.field != "" && (!errors.As(err, &ce) || ce.Field != tt.field):
			t.Errorf("%d: Validate() = %v, want error on %s", i, err, tt.field)
		}
	}
}

func TestFromEnv(t *testing.T) {
	t.Setenv("REDIS_URL", "redis://:urlpw@h:7000/1?pool_size=4")
	t.Setenv("REDISKIT_POOL_SIZE", "12")
	t.Setenv("REDISKIT_READ_TIMEOUT", "750ms")
	t.Setenv("REDISKIT_BREAKER_THRESHOLD", "-1")
	t.Setenv("REDISKIT_PASSWORD", "envpw")
	cfg, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Addr: "h:7000", DB: 1, PoolSize: 12, ReadTimeout: 750 * time.Millisecond, BreakerThreshold: -1, Password: "envpw"}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("FromEnv()\n got %s\nwant %s", fields(cfg), fields(want))
	}

	t.Setenv("REDISKIT_CLUSTER_ADDRS", "c1:7000, c2:7001")
	t.Setenv("REDISKIT_DB", "0")
	cfg, err = FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Mode() != Cluster || !reflect.DeepEqual(cfg.ClusterAddrs, []string{"c1:7000", "c2:7001"}) || cfg.Addr != "" {
		t.Fatalf("cluster override: got %v", cfg)
	}

	for _, tt := range []struct{ name, value, field string }{
		{"REDISKIT_POOL_SIZE", "lots", "REDISKIT_POOL_SIZE"},
		{"REDISKIT_READ_TIMEOUT", "soon", "REDISKIT_READ_TIMEOUT"},
		{"REDISKIT_TLS", "sometimes", "REDISKIT_TLS"},
		{"REDISKIT_DISABLE_CONTEXT_TIMEOUT", "perhaps", "REDISKIT_DISABLE_CONTEXT_TIMEOUT"},
		{"REDIS_URL", "redis://:leak@h?nope=1", "REDIS_URL: URL parameter"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(tt.name, tt.value)
			_, err := FromEnv()
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != tt.field {
				t.Fatalf("FromEnv with %s=%q: %v, want error on %s", tt.name, tt.value, err, tt.field)
			}
			if strings.Contains(err.Error(), "leak") || strings.Contains(err.Error(), "envpw") {
				t.Fatalf("error leaks a password: %v", err)
			}
		})
	}
}

func TestFromEnvEmpty(t *testing.T) {
	cfg, err := fromEnv(func(string) (string, bool) { return "", false })
	if err != nil || !reflect.DeepEqual(cfg, Config{}) {
		t.Fatalf("fromEnv(empty) = %v, %v; want zero Config", cfg, err)
	}
	if got := cfg.withDefaults().Addr; got != DefaultAddr {
		t.Fatalf("default Addr = %q", got)
	}
}

func TestConfigRedactsPasswords(t *testing.T) {
	t.Parallel()
	cfg := Config{MasterName: "m", SentinelAddrs: []string{"s:26379"}, Password: "hunter2-data", SentinelPassword: "hunter2-sentinel", ReadTimeout: time.Second}
	for _, s := range []string{cfg.String(), fmt.Sprint(cfg), fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg), fmt.Sprint(&cfg)} {
		if strings.Contains(s, "hunter2") {
			t.Fatalf("password in %q", s)
		}
		if !strings.Contains(s, "password=[redacted]") || !strings.Contains(s, "read_timeout=1s") {
			t.Fatalf("String() = %q, want redacted password and settings", s)
		}
	}
	_, err := ParseURL("redis://:hunter2-url@h:99999")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("ParseURL error %v: want an error without the password", err)
	}
	_, err = ParseURL("redis://user:hunter2-esc%zz@h")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("ParseURL error %v: want an error without the password", err)
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"redis://localhost:6379/0",
		"rediss://user:secret-pass@h:6380/2?pool_size=10&read_timeout=1s",
		"redis-sentinel://:pw@s1:26379,s2/mymaster/1?sentinel_password=x",
		"redis-cluster://h1:7000,h2:7001?dial_timeout=3",
		"redis://h1?addr=h2:1&addr=h3:2",
		"redis://[::1]:6379",
		"redis://:secret-pass@h:99999",
		"redis://h?master_name=m&addr=s2",
		"redis://%zz@h",
		"redis://h?read_timeout=-1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cfg, err := ParseURL(s)
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("ParseURL(%q) error %T, want *ConfigError", s, err)
			}
			if pw := urlPassword(s); len(pw) >= 6 && strings.Count(s, pw) == 1 && strings.Contains(err.Error(), pw) {
				t.Fatalf("ParseURL(%q) error %q contains the password", s, err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("ParseURL(%q) returned an invalid config: %v", s, err)
		}
		if cfg.Password != "" && !strings.Contains(cfg.String(), "password=[redacted]") {
			t.Fatalf("String() of %q does not redact: %s", s, cfg)
		}
		if len(cfg.Password) >= 6 && strings.Contains(cfg.String(), cfg.Password) && !strings.Contains(strings.Replace(s, cfg.Password, "", 1), cfg.Password) {
			t.Fatalf("String() of %q shows the password: %s", s, cfg)
		}
	})
}

// urlPassword extracts the raw password of a URL's userinfo, if any.
func urlPassword(s string) string {
	_, rest, ok := strings.Cut(s, "://")
	if !ok {
		return ""
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	i := strings.LastIndexByte(rest, '@')
	if i < 0 {
		return ""
	}
	_, pw, _ := strings.Cut(rest[:i], ":")
	return pw
}

// TestContextTimeoutSetting: deadlines are honoured by default; the Config
// field, the URL parameter and the variable turn it off, String says so,
// and the go-redis option follows.
func TestContextTimeoutSetting(t *testing.T) {
	cfg, err := FromLookup(func(k string) (string, bool) {
		if k == "REDISKIT_DISABLE_CONTEXT_TIMEOUT" {
			return "true", true
		}
		return "", false
	})
	if err != nil || !cfg.DisableContextTimeout {
		t.Fatalf("REDISKIT_DISABLE_CONTEXT_TIMEOUT=true: %v, %v", fields(cfg), err)
	}
	if s := cfg.String(); !strings.Contains(s, "disable_context_timeout=true") {
		t.Errorf("String() = %s, want disable_context_timeout=true", s)
	}
	if s := (Config{}).String(); strings.Contains(s, "context_timeout") {
		t.Errorf("String() of the default = %s, mentions the context timeout", s)
	}
	for _, off := range []bool{false, true} {
		o := newUniversal(Config{Addr: "h:1", DisableContextTimeout: off}.withDefaults())
		if got := o.(*redis.Client).Options().ContextTimeoutEnabled; got == off {
			t.Errorf("DisableContextTimeout %v: go-redis ContextTimeoutEnabled = %v", off, got)
		}
		_ = o.Close()
	}
}

// TestDefaultPoolSize: go-redis's defaults, 10 connections per GOMAXPROCS
// on standalone and Sentinel, 5 per GOMAXPROCS on each node of a Cluster.
func TestDefaultPoolSize(t *testing.T) {
	t.Parallel()
	p := runtime.GOMAXPROCS(0)
	for _, tt := range []struct {
		cfg  Config
		want int
	}{
		{Config{}, 10 * p},
		{Config{MasterName: "m", SentinelAddrs: []string{"s:1"}}, 10 * p},
		{Config{ClusterAddrs: []string{"h:1"}}, 5 * p},
		{Config{ClusterAddrs: []string{"h:1"}, PoolSize: 3}, 3},
	} {
		if got := tt.cfg.withDefaults().PoolSize; got != tt.want {
			t.Errorf("%v: PoolSize = %d, want %d", tt.cfg.Mode(), got, tt.want)
		}
	}
	// The same figure as go-redis's own Cluster default.
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"h:1"}})
	defer cc.Close()
	if got := cc.Options().PoolSize; got != DefaultPoolSize(Cluster) {
		t.Errorf("go-redis ClusterClient PoolSize = %d, DefaultPoolSize(Cluster) = %d", got, DefaultPoolSize(Cluster))
	}
}
