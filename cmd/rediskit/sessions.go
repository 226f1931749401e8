package main

import (
	"context"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/rediskit/rediskit/session"
)

func runSessions(ctx context.Context, e *env, args []string) error {
	const synopsis = "rediskit sessions list (--user U | --all) | revoke (--user U | --id ID | --user U --handle H | --all [--dry-run] [--yes]) | cleanup | stats"
	fs := newFlagSet(e, "sessions", synopsis,
		`Operate on the sessions of a rediskit session store:
  list     the live sessions of a user (devices, IPs, times), or with --all
           of every user (SCAN on every master, never KEYS)
  revoke   end every session of a user, one session by ID, or one by handle;
           with --all, every session, anonymous ones included: it asks you
           to type "yes" first (on a terminal), or takes --yes; --dry-run
           only says what would be revoked
  cleanup  prune per-user index entries of expired sessions, on every master
  stats    count sessions, users and index entries`,
		"rediskit sessions list --user alice\nrediskit sessions list --all --json\nrediskit sessions revoke --user alice --json\nrediskit sessions revoke --id <session id>\nrediskit sessions revoke --all --dry-run\nrediskit sessions revoke --all --yes --json\nrediskit sessions cleanup --prefix myapp:session:\nrediskit sessions revoke --user alice --events --prefix rediskit:demo:session:")
	url := redisFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	prefix := fs.String("prefix", "session:", "key `prefix` of the session store (session.Options.Prefix)")
	user := fs.String("user", "", "user `ID`")
	id := fs.String("id", "", "session `ID` (the cookie value)")
	handle := fs.String("handle", "", "session `handle` as listed (with --user)")
	all := fs.Bool("all", false, "list or revoke: every session of every user")
	yes := fs.Bool("yes", false, "revoke --all: do not ask for confirmation")
	dry := fs.Bool("dry-run", false, "revoke --all: say what would be revoked, revoke nothing")
	events := fs.Bool("events", false, "the store has session events on (session.Options.Events): revoke and cleanup then emit them, as the application's own store does")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErrorf("want one of list, revoke, cleanup, stats (usage: %s)", synopsis)
	}
	// A flag given with an empty value is a mistake, not an absent flag: an
	// empty --handle must never widen "revoke one" into "revoke all".
	var emptyFlag string
	fs.Visit(func(f *flag.Flag) {
		if v := f.Value.String(); v == "" && (f.Name == "user" || f.Name == "id" || f.Name == "handle") {
			emptyFlag = f.Name
		}
	})
	if emptyFlag != "" {
		return usageErrorf("--%s: empty value", emptyFlag)
	}
	sub := pos[0]
	if err := checkSessionsArgs(sub, *user, *id, *handle, *all, *yes, *dry); err != nil {
		return err
	}

	c, err := connect(ctx, e, *url)
	if err != nil {
		return err
	}
	defer c.Close()
	store, err := session.New(c.Redis(), session.Options{Prefix: *prefix, Events: *events})
	if err != nil {
		return withCode(exitUsage, err)
	}
	defer store.Close()

	switch sub {
	case "list":
		if *all {
			return sessionsListAll(ctx, e, store, *asJSON)
		}
		return sessionsList(ctx, e, store, *user, *asJSON)
	case "revoke":
		if *all {
			return sessionsRevokeAll(ctx, e, store, *yes, *dry, *asJSON)
		}
		return sessionsRevoke(ctx, e, store, *user, *id, *handle, *asJSON)
	case "cleanup":
		stop := e.spinner("cleaning up session indexes")
		n, err := store.Cleanup(ctx)
		stop()
		if err != nil {
			return err
		}
		return say(e, *asJSON, map[string]any{"pruned": n}, "pruned %d stale index entries\n", n)
	default:
		s, err := store.Stats(ctx)
		if err != nil {
			return err
		}
		return say(e, *asJSON, map[string]any{"sessions": s.Sessions, "users": s.Users, "index_entries": s.Indexed},
			"sessions: %d\nusers: %d\nindex entries: %d\n", s.Sessions, s.Users, s.Indexed)
	}
}

func sessionsList(ctx context.Context, e *env, store *session.Store, user string, asJSON bool) error {
	list, err := store.ListByUser(ctx, user)
	if err != nil {
		return err
	}
	if asJSON {
		writeJSON(e.stdout, sessionsJSON(list))
		return nil
	}
	if len(list) == 0 {
		fmt.Fprintf(e.stdout, "no live session for user %q\n", user)
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HANDLE\tIP\tCREATED\tLAST SEEN\tEXPIRES\tUSER AGENT")
	for _, s := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Handle, dash(s.IP), s.CreatedAt.Format(time.RFC3339),
			s.LastSeen.Format(time.RFC3339), s.ExpiresAt.Format(time.RFC3339), dash(s.UserAgent))
	}
	return tw.Flush()
}

func sessionsRevoke(ctx context.Context, e *env, store *session.Store, user, id, handle string, asJSON bool) error {
	var (
		n   int
		err error
	)
	switch {
	case handle != "":
		var ok bool
		ok, err = store.RevokeHandle(ctx, user, handle)
		if ok {
			n = 1
		}
	case id != "":
		var ok bool
		ok, err = store.Delete(ctx, id)
		if ok {
			n = 1
		}
	default:
		n, err = store.DeleteByUser(ctx, user)
	}
	if err != nil {
		return err
	}
	return say(e, asJSON, map[string]any{"revoked": n}, "revoked %d session(s)\n", n)
}

// say prints v as JSON, or the formatted human line.
func say(e *env, asJSON bool, v any, format string, a ...any) error {
	if asJSON {
		writeJSON(e.stdout, v)
		return nil
	}
	fmt.Fprintf(e.stdout, format, a...)
	return nil
}

// sessionsJSON is the --json form of a session list.
func sessionsJSON(list []session.Info) []map[string]any {
	out := make([]map[string]any, 0, len(list))
	for _, s := range list {
		out = append(out, map[string]any{
			"handle": s.Handle, "user": s.UserID, "ip": s.IP, "user_agent": s.UserAgent,
			"created_at": s.CreatedAt.UTC(), "last_seen": s.LastSeen.UTC(),
			"expires_at": s.ExpiresAt.UTC(), "deadline": s.Deadline.UTC(),
		})
	}
	return out
}
