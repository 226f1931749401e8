package rediskit

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// setting is everything rediskit knows about one Config field: the names
// it goes by outside Go (URL parameter, environment variable, String key),
// its default, which values are valid and whether it is a secret. The table
// below drives withDefaults, Validate's per-field checks, String, ParseURL's
// parameters and FromEnv's variables, so a new setting is one row plus its
// field; TestSettingsCoverConfig fails when a field has no row.
// Relations between fields (one deployment mode, MinIdleConns <= PoolSize,
// no DB on a Cluster) stay in Validate.
type setting struct {
	// name is the URL parameter, the variable REDISKIT_<NAME> and the key
	// in String.
	name string
	// field is the Go field path, as errors and the coverage test name it.
	field string
	// ptr returns a pointer to the field: *int, *bool, *string, *[]string
	// or *time.Duration.
	ptr func(*Config) any
	// def returns the default of a zero field, or nil when zero is the
	// default. It sees the fields of earlier rows with their defaults.
	def func(Config) any
	// min is the smallest valid value of an int.
	min int
	// off says a duration takes -1 for "off".
	off bool
	// envOnly: a URL does not carry it as a parameter (addresses and
	// credentials have their own places in a URL).
	envOnly bool
	// secret: String and errors show "[redacted]", never the value.
	secret bool
	// show is String's key when it is not name.
	show string
}

func constant[T any](v T) func(Config) any { return func(Config) any { return v } }

var settings = []setting{
	{name: "addr", field: "Addr", ptr: func(c *Config) any { return &c.Addr }, envOnly: true,
		def: func(c Config) any {
			if c.Mode() == Standalone {
				return DefaultAddr
			}
			return nil
		}},
	{name: "master_name", field: "MasterName", ptr: func(c *Config) any { return &c.MasterName }, show: "master"},
	{name: "sentinel_addrs", field: "SentinelAddrs", ptr: func(c *Config) any { return &c.SentinelAddrs }, envOnly: true, show: "sentinels"},
	{name: "sentinel_username", field: "SentinelUsername", ptr: func(c *Config) any { return &c.SentinelUsername }},
	{name: "sentinel_password", field: "SentinelPassword", ptr: func(c *Config) any { return &c.SentinelPassword }, secret: true},
	{name: "cluster_addrs", field: "ClusterAddrs", ptr: func(c *Config) any { return &c.ClusterAddrs }, envOnly: true, show: "cluster"},
	{name: "username", field: "Username", ptr: func(c *Config) any { return &c.Username }, envOnly: true},
	{name: "password", field: "Password", ptr: func(c *Config) any { return &c.Password }, envOnly: true, secret: true},
	{name: "db", field: "DB", ptr: func(c *Config) any { return &c.DB }},
	{name: "tls", field: "TLS", ptr: func(c *Config) any { return &c.TLS }},
	{name: "tls_server_name", field: "TLSServerName", ptr: func(c *Config) any { return &c.TLSServerName }},
	{name: "tls_insecure_skip_verify", field: "TLSInsecureSkipVerify", ptr: func(c *Config) any { return &c.TLSInsecureSkipVerify }},
	{name: "pool_size", field: "PoolSize", ptr: func(c *Config) any { return &c.PoolSize },
		def: func(c Config) any { return DefaultPoolSize(c.Mode()) }},
	{name: "min_idle_conns", field: "MinIdleConns", ptr: func(c *Config) any { return &c.MinIdleConns }},
	{name: "conn_max_idle_time", field: "ConnMaxIdleTime", ptr: func(c *Config) any { return &c.ConnMaxIdleTime }, off: true,
		def: constant(DefaultConnMaxIdleTime)},
	{name: "conn_max_lifetime", field: "ConnMaxLifetime", ptr: func(c *Config) any { return &c.ConnMaxLifetime }},
	{name: "dial_timeout", field: "DialTimeout", ptr: func(c *Config) any { return &c.DialTimeout }, def: constant(DefaultDialTimeout)},
	{name: "read_timeout", field: "ReadTimeout", ptr: func(c *Config) any { return &c.ReadTimeout }, off: true,
		def: constant(DefaultReadTimeout)},
	{name: "write_timeout", field: "WriteTimeout", ptr: func(c *Config) any { return &c.WriteTimeout }, off: true,
		def: func(c Config) any { return c.ReadTimeout }},
	{name: "keep_alive", field: "KeepAlive", ptr: func(c *Config) any { return &c.KeepAlive }, off: true,
		def: constant(DefaultKeepAlive)},
	{name: "disable_context_timeout", field: "DisableContextTimeout", ptr: func(c *Config) any { return &c.DisableContextTimeout }},
	// The retry policy's defaults belong to package retry
	// (Policy.WithDefaults, applied by withDefaults).
	{name: "retry_attempts", field: "Retry.MaxAttempts", ptr: func(c *Config) any { return &c.Retry.MaxAttempts }},
	{name: "retry_base_backoff", field: "Retry.BaseBackoff", ptr: func(c *Config) any { return &c.Retry.BaseBackoff }},
	{name: "retry_max_backoff", field: "Retry.MaxBackoff", ptr: func(c *Config) any { return &c.Retry.MaxBackoff }},
	{name: "health_check_interval", field: "HealthCheckInterval", ptr: func(c *Config) any { return &c.HealthCheckInterval }, off: true,
		def: constant(DefaultHealthCheckInterval)},
	{name: "breaker_threshold", field: "BreakerThreshold", ptr: func(c *Config) any { return &c.BreakerThreshold }, min: -1,
		def: constant(DefaultBreakerThreshold)},
	{name: "breaker_cooldown", field: "BreakerCooldown", ptr: func(c *Config) any { return &c.BreakerCooldown },
		def: constant(DefaultBreakerCooldown)},
	{name: "drain_timeout", field: "DrainTimeout", ptr: func(c *Config) any { return &c.DrainTimeout },
		def: constant(DefaultDrainTimeout)},
	// Replica reads: Cluster and Sentinel only (checked in Validate).
	{name: "read_only", field: "ReadOnly", ptr: func(c *Config) any { return &c.ReadOnly }},
	{name: "route_by_latency", field: "RouteByLatency", ptr: func(c *Config) any { return &c.RouteByLatency }},
	{name: "route_randomly", field: "RouteRandomly", ptr: func(c *Config) any { return &c.RouteRandomly }},
}

// codeOnly lists the Config fields that have no row: values only code can
// give.
var codeOnly = []string{"TLSConfig", "OnBreakerChange", "Logger"}

func lookupSetting(name string) (setting, bool) {
	for _, s := range settings {
		if s.name == name {
			return s, true
		}
	}
	return setting{}, false
}

// isZero reports whether the field is at its zero value.
func (s setting) isZero(c *Config) bool {
	switch p := s.ptr(c).(type) {
	case *int:
		return *p == 0
	case *bool:
		return !*p
	case *string:
		return *p == ""
	case *[]string:
		return len(*p) == 0
	case *time.Duration:
		return *p == 0
	}
	panic("rediskit: setting " + s.name + " of an unknown type")
}

// applyDefault sets a zero field to its default.
func (s setting) applyDefault(c *Config) {
	if s.def == nil || !s.isZero(c) {
		return
	}
	v := s.def(*c)
	if v == nil {
		return
	}
	switch p := s.ptr(c).(type) {
	case *int:
		*p = v.(int)
	case *bool:
		*p = v.(bool)
	case *string:
		*p = v.(string)
	case *time.Duration:
		*p = v.(time.Duration)
	}
}

// check validates the field on its own.
func (s setting) check(c *Config) error {
	switch p := s.ptr(c).(type) {
	case *int:
		if *p < s.min {
			return badField(s.field, *p, fmt.Sprintf("must be >= %d", s.min))
		}
	case *time.Duration:
		if *p < 0 && !(s.off && *p == -1) {
			reason := "must be >= 0"
			if s.off {
				reason = "must be >= 0, or -1 for off"
			}
			return badField(s.field, *p, reason)
		}
	}
	return nil
}

// format returns the field as String shows it, and false when it is at
// its zero value (String shows only what is set).
func (s setting) format(c *Config) (string, bool) {
	if s.isZero(c) {
		return "", false
	}
	if s.secret {
		return "[redacted]", true
	}
	switch p := s.ptr(c).(type) {
	case *int:
		return strconv.Itoa(*p), true
	case *bool:
		return "true", true
	case *string:
		return *p, true
	case *[]string:
		return strings.Join(*p, ","), true
	case *time.Duration:
		return p.String(), true
	}
	return "", false
}

// set parses v into the field. A failure is reported as a *ConfigError on
// field (a URL parameter or a variable name), without the value of a
// secret.
func (s setting) set(c *Config, field, v string) error {
	var reason string
	switch p := s.ptr(c).(type) {
	case *int:
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			reason = "want an integer"
		}
		*p = n
	case *bool:
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			reason = "want true or false"
		}
		*p = b
	case *string:
		*p = v
	case *[]string:
		var out []string
		for _, a := range strings.Split(v, ",") {
			if a = strings.TrimSpace(a); a != "" {
				out = append(out, a)
			}
		}
		*p = out
	case *time.Duration:
		d, err := parseDuration(v)
		if err != nil {
			reason = err.Error()
		}
		*p = d
	}
	if reason == "" {
		return nil
	}
	shown := any(v)
	if s.secret {
		shown = "[redacted]"
	}
	return badField(field, shown, reason)
}

// parseDuration accepts Go durations ("250ms", "1m30s"), a plain integer as
// seconds (as go-redis URLs do), and "-1" for "off".
func parseDuration(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if v == "-1" {
		return -1, nil
	}
	if n, err := strconv.ParseInt(v, 10, 32); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("want a duration >= 0 or -1")
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf(`want a duration such as "500ms", "3s" or "-1"`)
	}
	return d, nil
}
