package rediskit

import (
	"os"
	"strings"
)

// FromLookup is FromEnv reading variables through lookup, which has the
// shape of os.LookupEnv: a program that keeps its settings elsewhere (a
// secrets file, a test's map) passes its own.
func FromLookup(lookup func(key string) (value string, ok bool)) (Config, error) {
	return fromEnv(lookup)
}

// FromEnv builds a Config from the environment: REDIS_URL (any form
// ParseURL accepts) first, then REDISKIT_* variables, each overriding one
// setting. The variables are REDISKIT_ followed by a ParseURL parameter name
// in upper case (REDISKIT_POOL_SIZE, REDISKIT_READ_TIMEOUT,
// REDISKIT_READ_ONLY, …), plus
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
	for _, st := range settings {
		name := "REDISKIT_" + strings.ToUpper(st.name)
		v, ok := lookup(name)
		if !ok {
			continue
		}
		if err := st.set(&c, name, v); err != nil {
			return Config{}, err
		}
		// An address variable selects its mode: drop the others set by
		// REDIS_URL so that the override wins instead of conflicting.
		switch st.name {
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
