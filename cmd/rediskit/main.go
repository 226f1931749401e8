// Command rediskit runs a live dashboard with health and Prometheus endpoints
// over a Redis deployment, and answers operators' questions about it: health,
// statistics, sessions and cache keys. With no Redis configured, `serve`
// starts an embedded one.
//
//	rediskit serve                      # dashboard on http://127.0.0.1:8080/, embedded Redis
//	rediskit health --redis redis://h:6379/0
//	rediskit sessions list --user alice --json
//	rediskit cache clear 'user:*' --dry-run
//
// Exit status: 0 success, 1 the operation failed (or, for health, Redis is
// unhealthy), 2 bad usage or configuration (a rejected password included),
// 3 Redis unreachable.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"
)

// Exit statuses, distinct so scripts can tell them apart.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitUnreachable = 3
)

// command is one subcommand: its name, a one-line summary for the overview,
// and the function that runs it with the arguments after its name.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *env, args []string) error
}

func commands() []command {
	return []command{
		{"serve", "run the dashboard, /healthz, /readyz, /metrics and the demo app", runServe},
		{"health", "check Redis health (exit 0 healthy, 1 unhealthy, 2 misconfigured)", runHealth},
		{"stats", "show pool, latency and server statistics", runStats},
		{"sessions", "list, revoke and clean up sessions", runSessions},
		{"cache", "get, delete and clear cache keys; cache statistics", runCache},
		{"version", "print the version", runVersion},
	}
}

// env is what a command reads and writes besides its arguments, so tests can
// run commands in-process.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	lookupEnv      func(string) (string, bool)
	// interactive is true when stdout is a terminal: progress bars and
	// prompts are shown only then.
	interactive bool
	// stdinTTY is true when stdin is a terminal: a confirmation is read
	// only from one (with interactive).
	stdinTTY bool
}

func main() {
	// go-redis logs every failed dial to stderr on its own; the command says
	// what went wrong in one line instead (serve keeps them at debug level).
	redis.SetLogger(goRedisLog{slog.New(slog.DiscardHandler)})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, lookupEnv: os.LookupEnv, interactive: isTerminal(os.Stdout), stdinTTY: isTerminal(os.Stdin)}
	code := run(ctx, e, os.Args[1:])
	stop()
	os.Exit(code)
}

// run executes one command line and returns the exit status. Errors are
// printed as one line on stderr; none carries a password.
func run(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(e.stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(ctx, e, args[1:])
			return report(e, c.name, err)
		}
	}
	fmt.Fprintf(e.stderr, "rediskit: unknown command %q (see rediskit --help)\n", args[0])
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprint(w, "rediskit: a Redis toolkit's dashboard and operator commands\n\nUsage:\n  rediskit <command> [flags]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Redis is chosen by --redis URL or the REDIS_URL environment variable
(redis://, rediss://, redis-sentinel://, redis-cluster://); serve starts an
embedded server when neither is given.

Examples:
  rediskit serve
  rediskit health --redis redis://127.0.0.1:6379/0
  rediskit sessions revoke --user alice
  rediskit cache clear 'product:*' --dry-run

Run 'rediskit <command> --help' for a command's flags.
`)
}

// exitError carries an exit status through a command's error return.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

func usageErrorf(format string, a ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, a...)}
}

// errSilent is returned by a command that has already said everything it
// had to (health's verdict); only its status is reported.
var errSilent = errors.New("")

func report(e *env, name string, err error) int {
	if err == nil {
		return exitOK
	}
	code := exitFailed
	var xe *exitError
	if errors.As(err, &xe) {
		code = xe.code
	}
	if errors.Is(err, errSilent) {
		return code
	}
	if errors.Is(err, errHelp) {
		return exitOK
	}
	fmt.Fprintf(e.stderr, "rediskit %s: %s\n", name, oneLine(err.Error()))
	return code
}

// oneLine escapes control characters (a newline in a flag name or a value
// echoed by an error), so an error is always one line on stderr.
func oneLine(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			fmt.Fprintf(&b, "\\x%02x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func runVersion(_ context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "version", "rediskit version", "Print the version of rediskit and of go-redis it is built with.", "rediskit version")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, versionString())
	return nil
}

// goRedisLog hands go-redis's internal log lines to a slog logger at debug
// level.
type goRedisLog struct{ l *slog.Logger }

func (g goRedisLog) Printf(ctx context.Context, format string, v ...any) {
	g.l.DebugContext(ctx, fmt.Sprintf(format, v...), "from", "go-redis")
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
