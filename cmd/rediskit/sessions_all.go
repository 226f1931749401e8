package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rediskit/rediskit/session"
)

// checkSessionsArgs validates the sessions command's selectors before any
// connection: every selector names exactly what it acts on, and --all never
// combines with one that would narrow it (or be ignored).
func checkSessionsArgs(sub, user, id, handle string, all, yes, dry bool) error {
	if (yes || dry) && (sub != "revoke" || !all) {
		return usageErrorf("--yes and --dry-run go with revoke --all")
	}
	if all && (user != "" || id != "" || handle != "") {
		return usageErrorf("--all takes no --user, --id or --handle")
	}
	if all && sub != "list" && sub != "revoke" {
		return usageErrorf("--all goes with list or revoke")
	}
	switch sub {
	case "list":
		if user == "" && !all {
			return usageErrorf("list needs --user or --all")
		}
		if id != "" || handle != "" {
			return usageErrorf("list takes --user or --all only")
		}
	case "revoke":
		if all {
			return nil
		}
		if (user == "") == (id == "") && handle == "" {
			return usageErrorf("revoke needs --user, --id or --all (one of them)")
		}
		if handle != "" && (user == "" || id != "") {
			return usageErrorf("--handle goes with --user")
		}
		if id != "" && !session.ValidToken(id) {
			return usageErrorf("--id: not a session ID")
		}
	case "cleanup", "stats":
		if user != "" || id != "" || handle != "" {
			return usageErrorf("%s takes no --user, --id or --handle", sub)
		}
	default:
		return usageErrorf("unknown sessions command %q (want list, revoke, cleanup, stats)", sub)
	}
	return nil
}

// sessionsListAll prints every live session of the store (Store.Iterate:
// SCAN on every master, metadata only).
func sessionsListAll(ctx context.Context, e *env, store *session.Store, asJSON bool) error {
	stop := e.spinner("listing sessions")
	var list []session.Info
	err := store.Iterate(ctx, func(i session.Info) error { list = append(list, i); return nil })
	stop()
	if err != nil {
		return err
	}
	slices.SortFunc(list, func(a, b session.Info) int {
		if c := strings.Compare(a.UserID, b.UserID); c != 0 {
			return c
		}
		return a.CreatedAt.Compare(b.CreatedAt)
	})
	if asJSON {
		writeJSON(e.stdout, sessionsJSON(list))
		return nil
	}
	if len(list) == 0 {
		fmt.Fprintln(e.stdout, "no live session")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tHANDLE\tIP\tCREATED\tLAST SEEN\tEXPIRES\tUSER AGENT")
	for _, s := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", dash(printable(s.UserID)), s.Handle, dash(s.IP),
			s.CreatedAt.Format(time.RFC3339), s.LastSeen.Format(time.RFC3339), s.ExpiresAt.Format(time.RFC3339),
			dash(printable(s.UserAgent)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	users, anon := census(list)
	fmt.Fprintf(e.stdout, "%d session(s) of %d user(s), %d anonymous\n", len(list), len(users), anon)
	return nil
}

// printable quotes text that carries control characters, so a user ID or
// user agent cannot rewrite the operator's terminal.
func printable(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) < 0 {
		return s
	}
	return strings.Trim(fmt.Sprintf("%q", s), `"`)
}

// census returns the session count of every user and the number of
// anonymous sessions.
func census(list []session.Info) (users map[string]int, anon int) {
	users = map[string]int{}
	for _, s := range list {
		if s.UserID == "" {
			anon++
		} else {
			users[s.UserID]++
		}
	}
	return users, anon
}

// sessionsRevokeAll revokes every session, anonymous ones included: it
// lists them (Store.Iterate), asks for confirmation unless yes, then runs
// Store.DeleteAll (SCAN of each master, one pipeline of deletes per page).
// A session created during the run may or may not be revoked.
func sessionsRevokeAll(ctx context.Context, e *env, store *session.Store, yes, dry, asJSON bool) error {
	stop := e.spinner("listing sessions")
	var list []session.Info
	err := store.Iterate(ctx, func(i session.Info) error { list = append(list, i); return nil })
	stop()
	if err != nil {
		return err
	}
	users, anon := census(list)
	if dry {
		return say(e, asJSON, map[string]any{"dry_run": true, "would_revoke": len(list), "users": len(users), "anonymous": anon, "revoked": 0},
			"would revoke %d session(s): %d user(s), %d anonymous session(s); nothing revoked (dry run)\n", len(list), len(users), anon)
	}
	if len(list) == 0 {
		return say(e, asJSON, map[string]any{"revoked": 0, "users": 0, "anonymous": 0}, "no session to revoke\n")
	}
	if !yes {
		if !e.interactive || !e.stdinTTY {
			return usageErrorf("revoke --all ends every session: pass --yes (or --dry-run to see what it would revoke) when not on a terminal")
		}
		fmt.Fprintf(e.stderr, "Revoke %d session(s) of %d user(s) and %d anonymous? Type yes to confirm: ", len(list), len(users), anon)
		if !confirmed(e.stdin) {
			return withCode(exitFailed, fmt.Errorf("not confirmed; nothing revoked"))
		}
	}
	stop = e.spinner("revoking sessions")
	revoked, err := store.DeleteAll(ctx)
	stop()
	if err != nil {
		return fmt.Errorf("after revoking %d session(s): %w", revoked, err)
	}
	return say(e, asJSON, map[string]any{"revoked": revoked, "users": len(users), "anonymous": anon},
		"revoked %d session(s): %d user(s), %d anonymous session(s) listed before\n", revoked, len(users), anon)
}

// confirmed reads one answer line and reports whether it is "yes" (spaces
// around it allowed, any case). Anything else — "y", an empty line, end of
// input, a longer line — is a no (FuzzConfirmed).
func confirmed(r io.Reader) bool {
	line, err := bufio.NewReader(io.LimitReader(r, 64)).ReadString('\n')
	if err != nil && err != io.EOF {
		return false
	}
	return strings.EqualFold(strings.TrimSpace(line), "yes")
}
