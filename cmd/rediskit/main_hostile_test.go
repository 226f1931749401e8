package main

import (
	"strings"
	"testing"

	"github.com/rediskit/rediskit/internal/redistest"
)

// TestHostileArguments: whatever an operator (or a script) passes, the
// command prints one line on stderr, exits with the status of the kind of
// failure, and never echoes a password.
func TestHostileArguments(t *testing.T) {
	t.Parallel()
	const secret = "s3cret-Pa55"
	dead := redistest.Start(t)
	deadAddr := dead.Addr
	dead.Kill()
	guarded := redistest.Start(t, redistest.WithPassword(secret))
	for _, tc := range []struct {
		name string
		vars map[string]string
		args []string
		code int
		want string // in the one line of stderr
	}{
		{"flag name with a newline", nil, []string{"health", "--a\nb"}, exitUsage, "flag provided but not defined"},
		{"flag name with NUL", nil, []string{"stats", "--\x00"}, exitUsage, "flag provided but not defined"},
		{"command with a newline", nil, []string{"heal\nth"}, exitUsage, "unknown command"},
		{"URL with a newline", nil, []string{"health", "--redis", "redis://:" + secret + "@local\nhost:6379/0"}, exitUsage, "--redis"},
		{"URL with an unclosed IPv6 host", nil, []string{"stats", "--redis", "redis://:" + secret + "@[::1/0"}, exitUsage, "--redis"},
		{"URL with a bad escape in the password", nil, []string{"stats", "--redis", "redis://u:%zz" + secret + "@h:6379"}, exitUsage, "password"},
		{"URL with a password parameter", nil, []string{"stats", "--redis", "redis://h:6379/0?password=" + secret}, exitUsage, "unknown parameter"},
		{"URL with a bad bool", nil, []string{"stats", "--redis", "rediss://:" + secret + "@h:6379/0?tls_insecure_skip_verify=maybe"}, exitUsage, "tls_insecure_skip_verify"},
		{"URL with a negative db", nil, []string{"stats", "--redis", "redis://:" + secret + "@h:6379/-1"}, exitUsage, "DB"},
		{"URL of 1 MB", nil, []string{"stats", "--redis", "redis://:" + secret + "@" + strings.Repeat("h", 1<<20) + ":0"}, exitUsage, "--redis"},
		{"sentinel password in the environment", map[string]string{"REDIS_URL": "redis-sentinel://s:26379/m?sentinel_password=" + secret, "REDISKIT_DB": "x"}, []string{"stats"}, exitUsage, "REDISKIT_DB"},
		{"unreachable server with a password", nil, []string{"stats", "--redis", "redis://:" + secret + "@" + deadAddr + "/0"}, exitUnreachable, deadAddr},
		{"wrong password", nil, []string{"stats", "--redis", "redis://:wrong-" + secret + "@" + guarded.Addr + "/0"}, exitUsage, guarded.Addr},
		{"no password for a guarded server", nil, []string{"health", "--redis", "redis://" + guarded.Addr + "/0"}, exitUsage, "NOAUTH"},
		{"session prefix with a brace", nil, []string{"sessions", "stats", "--prefix", "{x}", "--redis", guarded.URL()}, exitUsage, "Prefix"},
		{"session ID of the wrong shape", nil, []string{"sessions", "revoke", "--id", "../../" + secret, "--redis", guarded.URL()}, exitUsage, "--id"},
		{"cache version out of range", nil, []string{"cache", "stats", "--version", "99999999999", "--redis", guarded.URL()}, exitUsage, "--version"},
		{"cache prefix with a brace", nil, []string{"cache", "get", "k", "--prefix", "a{b}", "--redis", guarded.URL()}, exitUsage, "Prefix"},
		{"cache key with a newline, not found", nil, []string{"cache", "get", "a\nb", "--redis", guarded.URL()}, exitFailed, "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := cli(t, tc.vars, tc.args...).want(t, tc.code)
			r.oneLine(t, tc.want)
			if strings.Contains(r.stderr, secret) || strings.Contains(r.stdout, secret) {
				t.Fatalf("the password is in the output: %q", r.stderr)
			}
		})
	}
}
