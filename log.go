package rediskit

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// go-redis logs through one process-wide logger (internal.Logger, set with
// redis.SetLogger): a pool that cannot dial, a sentinel that names a new
// master, a duration rounded up. Its lines carry no client identity, and
// many are written by background goroutines with context.Background(), so
// they cannot be told apart by client. goRedisLog is the one logger
// rediskit installs there: every Client opened with a Config.Logger
// registers while it is open, and each line goes to every distinct Logger
// registered (one record per *slog.Logger, however many Clients share it),
// at a level chosen from the line (goRedisLevel), with the passwords of
// every registered Config redacted. With none registered (all closed) lines
// go to standard error with go-redis's "redis: " prefix.
//
// rediskit calls redis.SetLogger once, at the first Open with a Logger; a
// logger the program set before is replaced, and one set after takes over
// (rediskit's Loggers then get no go-redis lines).
type goRedisLog struct {
	mu    sync.Mutex
	sinks []logSink
}

type logSink struct {
	c       *Client
	l       *slog.Logger
	secrets []string
}

var (
	redisLog        = &goRedisLog{}
	redisLogInstall sync.Once
	redisLogStderr  = log.New(os.Stderr, "redis: ", log.LstdFlags)
)

// register routes go-redis's lines to c's Logger until unregister.
func (r *goRedisLog) register(c *Client) {
	redisLogInstall.Do(func() { redis.SetLogger(r) })
	var secrets []string
	for _, s := range []string{c.cfg.Password, c.cfg.SentinelPassword} {
		if s != "" {
			secrets = append(secrets, s)
		}
	}
	r.mu.Lock()
	r.sinks = append(r.sinks, logSink{c: c, l: c.cfg.Logger, secrets: secrets})
	r.mu.Unlock()
}

func (r *goRedisLog) unregister(c *Client) {
	r.mu.Lock()
	r.sinks = slices.DeleteFunc(r.sinks, func(s logSink) bool { return s.c == c })
	r.mu.Unlock()
}

// Printf implements go-redis's internal.Logging.
func (r *goRedisLog) Printf(ctx context.Context, format string, v ...any) {
	if ctx == nil {
		ctx = context.Background()
	}
	level := goRedisLevel(format)
	r.mu.Lock()
	var loggers []*slog.Logger
	var secrets []string
	for _, s := range r.sinks {
		if !slices.Contains(loggers, s.l) {
			loggers = append(loggers, s.l)
		}
		secrets = append(secrets, s.secrets...)
	}
	r.mu.Unlock()
	if len(loggers) == 0 {
		redisLogStderr.Print(redact(fmt.Sprintf(format, v...), nil))
		return
	}
	msg := ""
	for _, l := range loggers {
		if !l.Enabled(ctx, level) {
			continue
		}
		if msg == "" {
			msg = "redis: " + strings.TrimPrefix(redact(fmt.Sprintf(format, v...), secrets), "redis: ")
		}
		l.LogAttrs(ctx, level, msg, slog.String("component", "go-redis"))
	}
}

// goRedisLevel chooses the level of a go-redis line from its format
// string: what an operator acts on is Warn or Error, what only explains
// normal operation (a reconnection, a topology change) is Info or Debug.
// A line not listed is Warn: go-redis logs when something went wrong.
func goRedisLevel(format string) slog.Level {
	f := strings.ToLower(format)
	switch {
	case strings.Contains(f, "panic"):
		return slog.LevelError // a bug in go-redis or a hook
	case strings.Contains(f, "sentinel: new master"):
		return slog.LevelWarn // a failover happened
	case strings.Contains(f, "discovered new sentinel"),
		strings.Contains(f, "sentinel: selected addr"),
		strings.Contains(f, "reconnecting"),
		strings.Contains(f, "reloading cluster state"),
		strings.Contains(f, "shard state changed"):
		return slog.LevelInfo // the topology moved, and the client followed
	case strings.Contains(f, "failed to close"),
		strings.Contains(f, "unread data"),
		strings.Contains(f, "state changed by hook"),
		strings.Contains(f, "rejected by hook"),
		strings.Contains(f, "buffered data"):
		return slog.LevelDebug // a connection retired and replaced
	}
	return slog.LevelWarn
}

// urlCreds matches the userinfo of a URL ("://user:password@").
var urlCreds = regexp.MustCompile(`://[^/@\s]*@`)

// redact removes URL credentials and every secret from s.
func redact(s string, secrets []string) string {
	s = urlCreds.ReplaceAllString(s, "://[redacted]@")
	for _, sec := range secrets {
		s = strings.ReplaceAll(s, sec, "[redacted]")
	}
	return s
}
