package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/rediskit/rediskit/internal/redistest"
	"github.com/rediskit/rediskit/session"
)

// cliTTY runs the command line in-process as if on a terminal (stdin and
// stdout), with stdin as the operator's typing.
func cliTTY(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{
		stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb,
		lookupEnv:   func(string) (string, bool) { return "", false },
		interactive: true, stdinTTY: true,
	}
	code := run(context.Background(), e, args)
	return result{code, out.String(), errb.String()}
}

// TestSessionsAll: list --all shows every session (anonymous ones and a user
// ID with control characters included, escaped); revoke --all --dry-run
// and revoke --all without confirmation (no terminal, or a terminal answer
// other than "yes") delete nothing; typing "yes", or --yes, revokes every
// session, anonymous ones included (Store.DeleteAll).
func TestSessionsAll(t *testing.T) {
	t.Parallel()
	forEachTopology(t, func(t *testing.T, rdb redis.UniversalClient, url string) {
		ctx := context.Background()
		prefix := redistest.Prefix(t)
		store, err := session.New(rdb, session.Options{Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		const weird = "mallory\x1b[2J"
		var userIDs []string
		create := func() (anonID string) {
			userIDs = userIDs[:0]
			for _, u := range []string{"alice", "alice", "bob", weird, ""} {
				s, err := store.Create(ctx, u, nil, session.CreateOptions{UserAgent: "agent-" + u})
				if err != nil {
					t.Fatal(err)
				}
				if u == "" {
					anonID = s.ID()
				} else {
					userIDs = append(userIDs, s.ID())
				}
			}
			return anonID
		}
		anonID := create()
		live := func() (n int) {
			for _, id := range append(append([]string(nil), userIDs...), anonID) {
				if _, err := store.Get(ctx, id); err == nil {
					n++
				}
			}
			return n
		}
		args := func(a ...string) []string { return append(a, "--redis", url, "--prefix", prefix) }

		var list []struct{ Handle, User string }
		cli(t, nil, args("sessions", "list", "--all", "--json")...).want(t, exitOK).json(t, &list)
		users := map[string]int{}
		for _, s := range list {
			users[s.User]++
		}
		if len(list) != 5 || users["alice"] != 2 || users["bob"] != 1 || users[weird] != 1 || users[""] != 1 {
			t.Fatalf("list --all --json: %+v", list)
		}
		r := cli(t, nil, args("sessions", "list", "--all")...).want(t, exitOK)
		if !strings.Contains(r.stdout, "5 session(s) of 3 user(s), 1 anonymous") || !strings.Contains(r.stdout, `mallory\x1b[2J`) ||
			strings.Contains(r.stdout, "\x1b") {
			t.Fatalf("list --all:\n%s", r.stdout)
		}

		var dry struct {
			DryRun      bool `json:"dry_run"`
			WouldRevoke int  `json:"would_revoke"`
			Users       int
			Anonymous   int
			Revoked     int
		}
		cli(t, nil, args("sessions", "revoke", "--all", "--dry-run", "--json")...).want(t, exitOK).json(t, &dry)
		if !dry.DryRun || dry.WouldRevoke != 5 || dry.Users != 3 || dry.Anonymous != 1 || dry.Revoked != 0 {
			t.Fatalf("revoke --all --dry-run: %+v", dry)
		}
		if n := live(); n != 5 {
			t.Fatalf("after --dry-run: %d live sessions, want all 5", n)
		}
		// No terminal and no --yes: refused before anything is deleted.
		cli(t, nil, args("sessions", "revoke", "--all")...).want(t, exitUsage).oneLine(t, "--yes")
		// On a terminal, anything but "yes" is a no.
		for _, answer := range []string{"", "\n", "y\n", "no\n", "yes please\n", "ye\n"} {
			r := cliTTY(t, answer, args("sessions", "revoke", "--all")...).want(t, exitFailed)
			if !strings.Contains(r.stderr, "Type yes to confirm") || !strings.Contains(r.stderr, "not confirmed") {
				t.Fatalf("answer %q: stderr %q", answer, r.stderr)
			}
		}
		if n := live(); n != 5 {
			t.Fatalf("after unconfirmed revokes: %d live sessions, want all 5", n)
		}

		r = cliTTY(t, "yes\n", args("sessions", "revoke", "--all")...).want(t, exitOK)
		if !strings.Contains(r.stdout, "revoked 5 session(s): 3 user(s), 1 anonymous") {
			t.Fatalf("revoke --all after yes: %q", r.stdout)
		}
		if n := live(); n != 0 {
			t.Fatalf("after revoke --all: %d live sessions, want none", n)
		}
		if _, err := store.Get(ctx, anonID); !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("the anonymous session after revoke --all: %v", err)
		}

		create()
		var rev struct {
			Revoked, Users, Anonymous int
		}
		cli(t, nil, args("sessions", "revoke", "--all", "--yes", "--json")...).want(t, exitOK).json(t, &rev)
		if rev.Revoked != 5 || rev.Users != 3 || rev.Anonymous != 1 {
			t.Fatalf("revoke --all --yes --json: %+v", rev)
		}
		for _, id := range userIDs {
			if _, err := store.Get(ctx, id); err == nil {
				t.Fatal("a user's session survived revoke --all --yes")
			}
		}
	})
}

// TestSessionsAllUsage: --all, --yes and --dry-run refuse every combination
// that would narrow, widen or be ignored, before connecting.
func TestSessionsAllUsage(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"revoke", "--all", "--user", "alice"}, "--all takes no"},
		{[]string{"revoke", "--all", "--handle", "x"}, "--all takes no"},
		{[]string{"list", "--all", "--user", "alice"}, "--all takes no"},
		{[]string{"revoke", "--user", "alice", "--dry-run"}, "--dry-run go with revoke --all"},
		{[]string{"revoke", "--user", "alice", "--yes"}, "--yes and --dry-run"},
		{[]string{"list", "--all", "--dry-run"}, "--dry-run go with revoke --all"},
		{[]string{"cleanup", "--all"}, "--all goes with list or revoke"},
		{[]string{"stats", "--user", "alice"}, "stats takes no"},
		{[]string{"list"}, "--user or --all"},
		{[]string{"revoke"}, "--all"},
	} {
		a := append([]string{"sessions"}, c.args...)
		cli(t, nil, append(a, "--redis", "redis://127.0.0.1:1")...).want(t, exitUsage).oneLine(t, c.msg)
	}
	r := cli(t, nil, "sessions", "--help").want(t, exitOK)
	for _, f := range []string{"--all", "--dry-run", "--yes", "--json"} {
		if !strings.Contains(r.stdout, "\n  "+f) {
			t.Errorf("sessions --help does not list %s:\n%s", f, r.stdout)
		}
	}
}

// FuzzConfirmed: only an answer whose first line is "yes" (any case, spaces
// around) confirms; nothing panics or reads past the first 64 bytes.
func FuzzConfirmed(f *testing.F) {
	for _, s := range []string{"yes\n", "YES\r\n", " yes \n", "y\n", "", "\n", "yes", "yesyes\n", "no\nyes\n",
		strings.Repeat(" ", 70) + "yes\n", "\x00yes\n", "ye\xffs\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := confirmed(strings.NewReader(s))
		// The answer is the first line of the first 64 bytes.
		first, _, _ := strings.Cut(s[:min(len(s), 64)], "\n")
		if want := strings.EqualFold(strings.TrimSpace(first), "yes"); got != want {
			t.Fatalf("confirmed(%q) = %v, want %v", s, got, want)
		}
		if got && !strings.Contains(strings.ToLower(s), "yes") {
			t.Fatalf("confirmed(%q) without a yes", s)
		}
	})
}
