package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit"
)

// redisFlag adds the --redis flag every command has.
func redisFlag(fs *flag.FlagSet) *string {
	return fs.String("redis", "", "Redis `URL` (redis://, rediss://, redis-sentinel://, redis-cluster://); default $REDIS_URL")
}

// errNoRedis says that no Redis was configured for a command that needs one.
var errNoRedis = errors.New("no Redis configured: pass --redis URL or set REDIS_URL")

// loadConfig builds the Config from --redis, or else from REDIS_URL and the
// REDISKIT_* variables. ok is false when neither names a server.
func loadConfig(e *env, url string) (cfg rediskit.Config, ok bool, err error) {
	if url != "" {
		cfg, err = rediskit.ParseURL(url)
		if err != nil {
			return cfg, false, withCode(exitUsage, fmt.Errorf("--redis: %w", err))
		}
		return cfg, true, nil
	}
	if v, _ := e.lookupEnv("REDIS_URL"); v == "" {
		return cfg, false, nil
	}
	cfg, err = rediskit.FromLookup(e.lookupEnv)
	if err != nil {
		return cfg, false, withCode(exitUsage, err)
	}
	return cfg, true, nil
}

// connect opens a client for an operator command: quick to give up, with no
// background health checker, and an unreachable server is exit status 3.
func connect(ctx context.Context, e *env, url string) (*rediskit.Client, error) {
	cfg, ok, err := loadConfig(e, url)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, withCode(exitUsage, errNoRedis)
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 2 * time.Second
	}
	cfg.HealthCheckInterval = -1
	c, err := rediskit.Open(ctx, cfg)
	if err != nil {
		return nil, openError(err)
	}
	return c, nil
}

// openError gives a failed Open its exit status: a bad setting or a
// rejected password or ACL user is a configuration problem (2), anything else
// means the server could not be reached (3).
func openError(err error) error {
	var ce *rediskit.ConfigError
	if errors.As(err, &ce) || redis.IsAuthError(err) || redis.IsPermissionError(err) {
		return withCode(exitUsage, err)
	}
	return withCode(exitUnreachable, err)
}
