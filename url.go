package rediskit

import (
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

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
// tls, tls_server_name, tls_insecure_skip_verify, and for replica reads
// (Cluster and Sentinel) read_only, route_by_latency, route_randomly;
// replica_only, go-redis's name in a failover URL, is read as read_only.
// Durations take Go syntax ("500ms"), a plain number of seconds, or -1 for
// off. An unknown parameter is an error.
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
		name := k
		if k == "replica_only" {
			name = "read_only"
		}
		st, ok := lookupSetting(name)
		if !ok || st.envOnly {
			return Config{}, badField("URL parameter", k, "unknown parameter")
		}
		if err := st.set(&c, "URL parameter "+k, vals[len(vals)-1]); err != nil {
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
