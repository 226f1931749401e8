package rediskit

import (
	"errors"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSettingsCoverConfig: every Config field has a row in the settings
// table (or is listed as code-only), every row names a real field, and the
// ParseURL documentation lists every parameter a URL may carry. Adding a
// field without its row fails here.
func TestSettingsCoverConfig(t *testing.T) {
	var fields []string
	var walk func(typ reflect.Type, prefix string)
	walk = func(typ reflect.Type, prefix string) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			if f.Type.Kind() == reflect.Struct && f.Type.PkgPath() != "" && f.Name == "Retry" {
				walk(f.Type, prefix+f.Name+".")
				continue
			}
			fields = append(fields, prefix+f.Name)
		}
	}
	walk(reflect.TypeFor[Config](), "")
	var rows []string
	for _, s := range settings {
		rows = append(rows, s.field)
	}
	for _, f := range fields {
		if !slices.Contains(rows, f) && !slices.Contains(codeOnly, f) {
			t.Errorf("Config.%s has no row in the settings table (settings.go)", f)
		}
	}
	for _, r := range rows {
		if !slices.Contains(fields, r) {
			t.Errorf("settings row %q names no Config field", r)
		}
	}

	src, err := os.ReadFile("url.go")
	envSrc, err2 := os.ReadFile("env.go")
	if err2 != nil {
		t.Fatal(err2)
	}
	if err != nil {
		t.Fatal(err)
	}
	doc := regexp.MustCompile(`(?s)// ParseURL builds.*?func ParseURL`).Find(src)
	envDoc := regexp.MustCompile(`(?s)// FromEnv builds.*?func FromEnv`).Find(envSrc)
	for _, s := range settings {
		if !s.envOnly && !regexp.MustCompile(`\b`+s.name+`\b`).Match(doc) {
			t.Errorf("the ParseURL documentation does not list parameter %s", s.name)
		}
		if s.envOnly && !strings.Contains(string(envDoc), "REDISKIT_"+strings.ToUpper(s.name)) {
			t.Errorf("the FromEnv documentation does not name REDISKIT_%s", strings.ToUpper(s.name))
		}
	}
}

// TestEverySettingRoundTrips: each row is read from its URL parameter (when
// a URL may carry it) and from its REDISKIT_ variable into its field, and
// String shows it, redacted when secret.
func TestEverySettingRoundTrips(t *testing.T) {
	sample := func(s setting) (string, any) {
		switch reflect.TypeOf(s.ptr(&Config{})).Elem().Kind() {
		case reflect.Int:
			return "7", 7
		case reflect.Bool:
			return "true", true
		case reflect.Slice:
			return "h1:1,h2:2", []string{"h1:1", "h2:2"}
		case reflect.String:
			if s.name == "addr" {
				return "h1:1", "h1:1"
			}
			return "s3cret-value", "s3cret-value"
		}
		return "1500ms", 1500 * time.Millisecond
	}
	for _, s := range settings {
		raw, want := sample(s)
		var c Config
		if err := s.set(&c, s.name, raw); err != nil {
			t.Fatalf("%s: set %q: %v", s.name, raw, err)
		}
		if got := reflect.ValueOf(s.ptr(&c)).Elem().Interface(); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: field = %v, want %v", s.name, got, want)
		}
		if v, ok := s.format(&c); ok {
			if s.secret && v != "[redacted]" {
				t.Errorf("%s: String shows %q for a secret", s.name, v)
			}
			key := s.show
			if key == "" {
				key = s.name
			}
			if !strings.Contains(c.String(), " "+key+"="+v) {
				t.Errorf("%s: String() = %s, want %s=%s", s.name, c.String(), key, v)
			}
			if s.secret && strings.Contains(c.String(), raw) {
				t.Errorf("%s: String() shows the secret: %s", s.name, c.String())
			}
		}
		// Replica reads need a deployment with replicas: a cluster.
		replicaRead := s.name == "read_only" || s.name == "route_by_latency" || s.name == "route_randomly"
		env := map[string]string{"REDISKIT_" + strings.ToUpper(s.name): raw}
		switch {
		case replicaRead:
			env["REDISKIT_CLUSTER_ADDRS"] = "h1:1,h2:2"
		case s.name != "addr" && s.name != "master_name" && s.name != "sentinel_addrs" && s.name != "cluster_addrs":
			env["REDISKIT_ADDR"] = "localhost:6379"
		}
		if s.name == "master_name" {
			env["REDISKIT_SENTINEL_ADDRS"] = "s:26379"
		}
		if s.name == "sentinel_addrs" {
			env["REDISKIT_MASTER_NAME"] = "m"
		}
		if s.name == "min_idle_conns" {
			env["REDISKIT_POOL_SIZE"] = "10"
		}
		cfg, err := FromLookup(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
		if err != nil {
			t.Errorf("%s: FromLookup(%v): %v", s.name, env, err)
			continue
		}
		if got := reflect.ValueOf(s.ptr(&cfg)).Elem().Interface(); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: from the environment = %v, want %v", s.name, got, want)
		}
		if s.envOnly {
			if s.name == "addr" {
				continue // in a URL, addr adds a host (go-redis's cluster and failover URL forms)
			}
			if _, err := ParseURL("redis://localhost?" + s.name + "=" + raw); err == nil {
				t.Errorf("%s: a URL parameter was accepted for an environment-only setting", s.name)
			}
			continue
		}
		u := "redis://localhost?" + s.name + "=" + raw
		if s.name == "master_name" {
			u = "redis://s1?master_name=" + raw
		}
		if s.name == "min_idle_conns" {
			u += "&pool_size=10"
		}
		if replicaRead {
			u = "redis-cluster://h1,h2?" + s.name + "=" + raw
		}
		cfg, err = ParseURL(u)
		if err != nil {
			t.Errorf("%s: ParseURL(%q): %v", s.name, u, err)
			continue
		}
		if got := reflect.ValueOf(s.ptr(&cfg)).Elem().Interface(); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: from a URL = %v, want %v", s.name, got, want)
		}
	}
}

// TestReplicaReadSettings: the replica-read settings are accepted on a
// Cluster and on Sentinel (from code, URL and environment, go-redis's
// replica_only URL name included), refused with a *ConfigError naming the
// field on a standalone server, and shown by String.
func TestReplicaReadSettings(t *testing.T) {
	c, err := ParseURL("redis-sentinel://s1,s2/mymaster?replica_only=true&route_randomly=true")
	if err != nil || !c.ReadOnly || !c.RouteRandomly || c.Mode() != Sentinel {
		t.Fatalf("sentinel URL: %+v, %v", c, err)
	}
	c, err = ParseURL("redis://h1:7000?addr=h2:7001&route_by_latency=1")
	if err != nil || !c.RouteByLatency || c.Mode() != Cluster {
		t.Fatalf("cluster URL: %v, %v", c, err)
	}
	if !strings.Contains(c.String(), " route_by_latency=true") {
		t.Errorf("String() = %s, want route_by_latency=true", c)
	}
	for _, tc := range []struct {
		cfg   Config
		field string
	}{
		{Config{Addr: "h:1", ReadOnly: true}, "ReadOnly"},
		{Config{RouteRandomly: true}, "RouteRandomly"},
		{Config{Addr: "h:1", RouteByLatency: true}, "RouteByLatency"},
	} {
		var ce *ConfigError
		if err := tc.cfg.Validate(); !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("Validate(%v) = %v, want a *ConfigError on %s", tc.cfg, err, tc.field)
		}
	}
	var ce *ConfigError
	if _, err := ParseURL("redis://h1?read_only=true"); !errors.As(err, &ce) || ce.Field != "ReadOnly" {
		t.Errorf("standalone URL with read_only: %v, want a *ConfigError on ReadOnly", err)
	}
	env := map[string]string{"REDISKIT_CLUSTER_ADDRS": "h1:1", "REDISKIT_READ_ONLY": "yes please"}
	if _, err := FromLookup(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); !errors.As(err, &ce) || ce.Field != "REDISKIT_READ_ONLY" {
		t.Errorf("REDISKIT_READ_ONLY=yes please: %v, want a *ConfigError naming the variable", err)
	}
}
