package security

import (
	"context"
	"fmt"
	"strings"
)

// Scope names what one application's Redis user may reach: the key prefix
// of its session store and the namespace prefix of its cache.
type Scope struct {
	// SessionPrefix is session.Options.Prefix ("session:" by default); ""
	// grants no session keys.
	SessionPrefix string
	// CachePrefix is cache.Options.Prefix; "" grants no cache keys.
	CachePrefix string
}

// DefaultScope is the scope of the defaults: session.Options.Prefix
// "session:" and a cache with Prefix "cache" (as the rediskit command uses).
var DefaultScope = Scope{SessionPrefix: "session:", CachePrefix: "cache"}

// CommandGroup is a set of commands with the reason rediskit needs them.
type CommandGroup struct {
	Why      string
	Commands []string
}

// Commands are every command rediskit's session store, cache and connection
// layer send, directly or from their Lua scripts (Redis checks the commands
// a script calls, and the keys they touch, against the caller's ACL too).
// Read from the code: session/store.go and scripts.go, cache/*.go,
// client.go, health.go and go-redis's connection handshake.
var Commands = []CommandGroup{
	{"connection handshake (go-redis), health checks, breaker probe", []string{
		"hello", "auth", "ping", "client|setname"}},
	{"cluster client: slot map, command table (go-redis routes by it and logs a NOPERM on every call without it), redirections, reads from replicas", []string{
		"cluster|slots", "command", "asking", "readonly"}},
	{"statistics: rediskit Stats and health, cache Stats", []string{
		"info", "memory|usage", "scan"}},
	{"Lua: one round trip per operation; Preload", []string{
		"evalsha", "eval", "script|load"}},
	{"session store (GET read path and its scripts; HGETALL, TYPE and PTTL convert a first-version hash; SETRANGE slides a session in place, and a rule without it only makes that slower)", []string{
		"time", "get", "set", "setrange", "type", "hgetall", "pttl", "exists", "del", "rename",
		"pexpireat", "zadd", "zrem", "zrange", "zremrangebyscore", "zcard"}},
	{"cache (reads, writes, counters, leases, lease events)", []string{
		"get", "set", "mget", "unlink", "incrby", "pexpire", "pttl",
		"publish", "subscribe", "unsubscribe"}},
	{"near cache (in progress): CLIENT TRACKING keeps the in-process tier coherent", []string{
		"client|tracking"}},
}

// SetInfo is go-redis's CLIENT SETINFO (library name and version, sent on
// every new connection; failures are ignored). Redis 7.2 added it: older
// servers reject it in an ACL rule, so Apply adds it only where it exists.
const SetInfo = "client|setinfo"

// globEscape escapes the characters Redis glob patterns treat specially.
func globEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Rule returns the ACL SETUSER modifiers (everything after the user name)
// of a user that may run only Commands, only on the keys and channels of s,
// authenticated by password. withSetInfo adds CLIENT SETINFO (Redis 7.2+).
func Rule(s Scope, password string, withSetInfo bool) []string {
	r := []string{"reset", "on", ">" + password, "-@all"}
	seen := map[string]bool{}
	for _, g := range Commands {
		for _, c := range g.Commands {
			if !seen[c] { // a command several parts use is granted once
				seen[c] = true
				r = append(r, "+"+c)
			}
		}
	}
	if withSetInfo {
		r = append(r, "+"+SetInfo)
	}
	if s.SessionPrefix != "" {
		// "<prefix>{<tag>}:s:<handle>" and "<prefix>{<tag>}:u".
		r = append(r, "~"+globEscape(s.SessionPrefix)+"*")
	}
	if s.CachePrefix != "" {
		// "<prefix>:v<version>:<key>", "<prefix>:v<version>#lease{…" and
		// the lease-event channel "<prefix>:v<version>#events".
		p := globEscape(s.CachePrefix) + ":v"
		r = append(r, "~"+p+"*", "&"+p+"*#events")
	}
	return r
}

// Render returns the rule as one ACL SETUSER command line for the docs,
// with the password shown as <password>.
func Render(user string, s Scope) string {
	r := Rule(s, "<password>", false)
	return "ACL SETUSER " + user + " " + strings.Join(r, " ")
}

// Doer runs one command on one server, as redistest's Server.Do does.
type Doer func(ctx context.Context, args ...any) (any, error)

// Apply creates (or resets) user with the rule of s on a server, as an
// administrator: on a cluster, call it for every node. CLIENT SETINFO is
// included when the server knows it.
func Apply(ctx context.Context, do Doer, user, password string, s Scope) error {
	args := func(setInfo bool) []any {
		a := []any{"ACL", "SETUSER", user}
		for _, m := range Rule(s, password, setInfo) {
			a = append(a, m)
		}
		return a
	}
	_, err := do(ctx, args(true)...)
	if err != nil && strings.Contains(err.Error(), SetInfo) {
		_, err = do(ctx, args(false)...)
	}
	if err != nil {
		return fmt.Errorf("security: ACL SETUSER %s: %w", user, err)
	}
	return nil
}

// Drop deletes user from a server (ACL DELUSER); a missing user is fine.
func Drop(ctx context.Context, do Doer, user string) error {
	_, err := do(ctx, "ACL", "DELUSER", user)
	return err
}
