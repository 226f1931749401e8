package rediskit

import (
	"net"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// param is one setting that a URL query parameter and a REDISKIT_*
// environment variable can carry. Its name is the query parameter; the
// variable is "REDISKIT_" + upper-case name.
type param struct {
	name string
	set  func(c *Config, v string) error // the error's Field is filled in by the caller
	// urlOK is false for settings that only the environment may carry
	// (addresses and passwords have their own places in a URL).
	urlOK bool
}

// parseErr is a setter failure before the field name is known.
type parseErr struct{ reason string }

func (e *parseErr) Error() string { return e.reason }

func intParam(dst func(*Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return &parseErr{"want an integer"}
		}
		*dst(c) = n
		return nil
	}
}

func durParam(dst func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := parseDuration(v)
		if err != nil {
			return err
		}
		*dst(c) = d
		return nil
	}
}

func boolParam(dst func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return &parseErr{"want true or false"}
		}
		*dst(c) = b
		return nil
	}
}

func strParam(dst func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *dst(c) = v; return nil }
}

func listParam(dst func(*Config) *[]string) func(*Config, string) error {
	return func(c *Config, v string) error {
		var out []string
		for _, a := range strings.Split(v, ",") {
			if a = strings.TrimSpace(a); a != "" {
				out = append(out, a)
			}
		}
		*dst(c) = out
		return nil
	}
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
			return 0, &parseErr{"want a duration >= 0 or -1"}
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, &parseErr{`want a duration such as "500ms", "3s" or "-1"`}
	}
	return d, nil
}

var params = []param{
	{"addr", strParam(func(c *Config) *string { return &c.Addr }), false},
	{"master_name", strParam(func(c *Config) *string { return &c.MasterName }), true},
	{"sentinel_addrs", listParam(func(c *Config) *[]string { return &c.SentinelAddrs }), false},
	{"sentinel_username", strParam(func(c *Config) *string { return &c.SentinelUsername }), true},
	{"sentinel_password", strParam(func(c *Config) *string { return &c.SentinelPassword }), true},
	{"cluster_addrs", listParam(func(c *Config) *[]string { return &c.ClusterAddrs }), false},
	{"username", strParam(func(c *Config) *string { return &c.Username }), false},
	{"password", strParam(func(c *Config) *string { return &c.Password }), false},
	{"db", intParam(func(c *Config) *int { return &c.DB }), true},
	{"tls", boolParam(func(c *Config) *bool { return &c.TLS }), true},
	{"tls_server_name", strParam(func(c *Config) *string { return &c.TLSServerName }), true},
	{"tls_insecure_skip_verify", boolParam(func(c *Config) *bool { return &c.TLSInsecureSkipVerify }), true},
	{"pool_size", intParam(func(c *Config) *int { return &c.PoolSize }), true},
	{"min_idle_conns", intParam(func(c *Config) *int { return &c.MinIdleConns }), true},
	{"conn_max_idle_time", durParam(func(c *Config) *time.Duration { return &c.ConnMaxIdleTime }), true},
	{"conn_max_lifetime", durParam(func(c *Config) *time.Duration { return &c.ConnMaxLifetime }), true},
	{"dial_timeout", durParam(func(c *Config) *time.Duration { return &c.DialTimeout }), true},
	{"read_timeout", durParam(func(c *Config) *time.Duration { return &c.ReadTimeout }), true},
	{"write_timeout", durParam(func(c *Config) *time.Duration { return &c.WriteTimeout }), true},
	{"keep_alive", durParam(func(c *Config) *time.Duration { return &c.KeepAlive }), true},
	{"disable_context_timeout", boolParam(func(c *Config) *bool { return &c.DisableContextTimeout }), true},
	{"retry_attempts", intParam(func(c *Config) *int { return &c.Retry.MaxAttempts }), true},
	{"retry_base_backoff", durParam(func(c *Config) *time.Duration { return &c.Retry.BaseBackoff }), true},
	{"retry_max_backoff", durParam(func(c *Config) *time.Duration { return &c.Retry.MaxBackoff }), true},
	{"health_check_interval", durParam(func(c *Config) *time.Duration { return &c.HealthCheckInterval }), true},
	{"breaker_threshold", intParam(func(c *Config) *int { return &c.BreakerThreshold }), true},
	{"breaker_cooldown", durParam(func(c *Config) *time.Duration { return &c.BreakerCooldown }), true},
	{"drain_timeout", durParam(func(c *Config) *time.Duration { return &c.DrainTimeout }), true},
}

func lookupParam(name string) (param, bool) {
	for _, p := range params {
		if p.name == name {
			return p, true
		}
	}
	return param{}, false
}

// secretParam reports whether a parameter's value must not be echoed.
func secretParam(name string) bool { return strings.HasSuffix(name, "password") }

func applyParam(c *Config, p param, field, v string) error {
	if err := p.set(c, v); err != nil {
		shown := any(v)
		if secretParam(p.name) {
			shown = "[redacted]"
		}
		return badField(field, shown, err.Error())
	}
	return nil
}

// ParseURL builds a Config from a URL. Forms:
//
//	redis://[[user]:password@]host[:port][/db][?param=value&…]    standalone
//	rediss://…                                                    the same over TLS
//	redis-sentinel://[[user]:password@]s1[:port],s2[:port]/master[/db][?…]
//	redis-cluster://[[user]:password@]h1[:port],h2[:port][?…]
//	redis://h1:7000?addr=h2:7001&addr=h3:7002                    cluster, as go-redis ParseClusterURL
//	redis://s1:26379?master_name=mymaster&addr=s2:26379          sentinel, as go-redis ParseFailoverURL
//
// rediss-sentinel and rediss-cluster are the TLS variants. The default port
// is 6379, or 26379 for sentinels. User and password in the URL are those of
// the data nodes; sentinel_username and sentinel_password parameters
// authenticate to sentinels. Every other Config setting is a parameter
// named in snake case: db, pool_size, min_idle_conns, conn_max_idle_time,
// conn_max_lifetime, dial_timeout, read_timeout, write_timeout, keep_alive,
// disable_context_timeout, retry_attempts, retry_base_backoff, retry_max_backoff,
// health_check_interval, breaker_threshold, breaker_cooldown, drain_timeout,
// tls, tls_server_name, tls_insecure_skip_verify. Durations take Go syntax
// ("500ms"), a plain number of seconds, or -1 for off. An unknown parameter
// is an error.
//
// The result is validated. A *ConfigError names what is wrong; it never
// contains the password.
func ParseURL(s string) (Config, error) {
	var c Config
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return c, badField("URL", "", `want scheme://host, e.g. "redis://localhost:6379/0"`)
	}
	var tlsOn, sentinel, cluster bool
	switch strings.ToLower(scheme) {
	case "redis":
	case "rediss":
		tlsOn = true
	case "redis-sentinel":
		sentinel = true
	case "rediss-sentinel":
		sentinel, tlsOn = true, true
	case "redis-cluster":
		cluster = true
	case "rediss-cluster":
		cluster, tlsOn = true, true
	default:
		return c, badField("URL scheme", scheme, "want redis, rediss, redis-sentinel, rediss-sentinel, redis-cluster or rediss-cluster")
	}
	c.TLS = tlsOn

	authority, tail := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, tail = rest[:i], rest[i:]
	}
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		if err := parseUserinfo(&c, authority[:i]); err != nil {
			return Config{}, err
		}
		authority = authority[i+1:]
	}
	if strings.Contains(tail, "#") {
		return Config{}, badField("URL", "#…", "a fragment is not allowed")
	}
	path, rawQuery, _ := strings.Cut(tail, "?")

	defPort := "6379"
	if sentinel {
		defPort = "26379"
	}
	var hosts []string
	if authority != "" {
		for _, h := range strings.Split(authority, ",") {
			a, err := withPort(h, defPort)
			if err != nil {
				return Config{}, err
			}
			hosts = append(hosts, a)
		}
	}
	if len(hosts) == 0 {
		return Config{}, badField("URL host", "", "missing host")
	}

	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return Config{}, badField("URL query", "", "malformed query")
	}
	names := make([]string, 0, len(q))
	for k := range q {
		names = append(names, k)
	}
	sort.Strings(names) // deterministic: the first bad parameter is reported
	for _, k := range names {
		vals := q[k]
		if k == "addr" {
			for _, v := range vals {
				a, err := withPort(v, defPort)
				if err != nil {
					return Config{}, err
				}
				hosts = append(hosts, a)
			}
			continue
		}
		p, ok := lookupParam(k)
		if !ok || !p.urlOK {
			return Config{}, badField("URL parameter", k, "unknown parameter")
		}
		if err := applyParam(&c, p, "URL parameter "+k, vals[len(vals)-1]); err != nil {
			return Config{}, err
		}
	}

	segs := strings.FieldsFunc(path, func(r rune) bool { return r == '/' })
	switch {
	case sentinel:
		if len(segs) == 0 || len(segs) > 2 {
			return Config{}, badField("URL path", path, "want /mastername or /mastername/db")
		}
		name, err := url.PathUnescape(segs[0])
		if err != nil {
			return Config{}, badField("URL path", path, "bad escape in master name")
		}
		c.MasterName = name
		segs = segs[1:]
	case c.MasterName != "" && cluster:
		return Config{}, badField("URL parameter master_name", c.MasterName, "not allowed in a cluster URL")
	case c.MasterName != "":
		sentinel = true
	}
	if len(segs) > 1 {
		return Config{}, badField("URL path", path, "want /db")
	}
	if len(segs) == 1 {
		db, err := strconv.Atoi(segs[0])
		if err != nil {
			return Config{}, badField("URL path", path, "database must be a number")
		}
		c.DB = db
	}

	switch {
	case sentinel:
		c.SentinelAddrs = hosts
	case cluster || len(hosts) > 1:
		c.ClusterAddrs = hosts
	default:
		c.Addr = hosts[0]
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func parseUserinfo(c *Config, ui string) error {
	user, pass, hasPass := strings.Cut(ui, ":")
	u, err := url.PathUnescape(user)
	if err != nil {
		return badField("URL username", "[redacted]", "bad %-escape")
	}
	c.Username = u
	if hasPass {
		p, err := url.PathUnescape(pass)
		if err != nil {
			return badField("URL password", "[redacted]", "bad %-escape")
		}
		c.Password = p
	}
	return nil
}

// withPort returns h as host:port, adding def when h has no port.
func withPort(h, def string) (string, error) {
	h = strings.TrimSpace(h)
	if h == "" {
		return "", badField("URL host", h, "empty host")
	}
	if _, _, err := net.SplitHostPort(h); err == nil {
		return h, checkAddr("URL host", h)
	}
	if strings.HasPrefix(h, "[") != strings.HasSuffix(h, "]") {
		return "", badField("URL host", h, "unbalanced brackets")
	}
	host := strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	a := net.JoinHostPort(host, def)
	return a, checkAddr("URL host", a)
}

// FromEnv builds a Config from the environment: REDIS_URL (any form
// ParseURL accepts) first, then REDISKIT_* variables, each overriding one
// setting. The variables are REDISKIT_ followed by a ParseURL parameter name
// in upper case (REDISKIT_POOL_SIZE, REDISKIT_READ_TIMEOUT, …), plus
// REDISKIT_ADDR, REDISKIT_USERNAME, REDISKIT_PASSWORD,
// REDISKIT_SENTINEL_ADDRS and REDISKIT_CLUSTER_ADDRS (comma-separated). With
// nothing set the result is the default Config (localhost:6379). The result
// is validated; a *ConfigError names the variable at fault.
func FromEnv() (Config, error) {
	return fromEnv(os.LookupEnv)
}

func fromEnv(lookup func(string) (string, bool)) (Config, error) {
	var c Config
	if u, ok := lookup("REDIS_URL"); ok && u != "" {
		var err error
		if c, err = ParseURL(u); err != nil {
			if ce, ok := err.(*ConfigError); ok {
				ce.Field = "REDIS_URL: " + ce.Field
			}
			return Config{}, err
		}
	}
	for _, p := range params {
		name := "REDISKIT_" + strings.ToUpper(p.name)
		v, ok := lookup(name)
		if !ok {
			continue
		}
		if err := applyParam(&c, p, name, v); err != nil {
			return Config{}, err
		}
		// An address variable selects its mode: drop the others set by
		// REDIS_URL so that the override wins instead of conflicting.
		switch p.name {
		case "addr":
			c.MasterName, c.SentinelAddrs, c.ClusterAddrs = "", nil, nil
		case "cluster_addrs":
			c.Addr, c.MasterName, c.SentinelAddrs = "", "", nil
		case "sentinel_addrs", "master_name":
			c.Addr, c.ClusterAddrs = "", nil
		}
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}
