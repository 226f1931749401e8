package main

import (
	"context"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rediskit/rediskit/session"
)

// The demo's "your other device was signed out": serve subscribes to the
// session store's events (session.Manager.Subscribe) and keeps, per user,
// the last few revocations in memory. A signed-in page shows each of the
// user's revocations that happened after its own session began, once, on
// the next page load, except the ones this device made itself (it already
// said "Session revoked.").

const (
	maxNoticesPerUser = 5
	maxNoticeUsers    = 10_000
)

// notice is one revoked session of a user.
type notice struct {
	At     time.Time
	Handle string
	Text   string
}

// notices is the in-memory board the event subscriber fills. Every serve
// process subscribes with its own group (demoGroup), so each has every
// event, whichever process a device's next request reaches.
type notices struct {
	mu    sync.Mutex
	users map[string][]notice // newest last, at most maxNoticesPerUser each
}

func newNotices() *notices { return &notices{users: map[string][]notice{}} }

// add records a revocation event; other events are ignored.
func (n *notices) add(_ context.Context, ev session.Event) error {
	if ev.Kind != session.EventRevoked || ev.UserID == "" {
		return nil
	}
	// "delete": that device signed out; "user": revoked from another
	// device's sessions page (or by an operator).
	text := "Another device of yours was signed out."
	switch ev.Cause {
	case "limit":
		text = "Your oldest device was signed out: you are signed in on too many devices."
	case "vanished":
		text = "Another device of yours lost its session."
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	list, ok := n.users[ev.UserID]
	if !ok && len(n.users) >= maxNoticeUsers {
		for u := range n.users { // full: forget one user, any
			delete(n.users, u)
			break
		}
	}
	list = append(list, notice{At: ev.At, Handle: ev.Handle, Text: text})
	if len(list) > maxNoticesPerUser {
		list = list[len(list)-maxNoticesPerUser:]
	}
	n.users[ev.UserID] = list
	return nil
}

// since returns the user's notices after t, except those of the handles in
// skip (space-separated), oldest first.
func (n *notices) since(user string, t time.Time, skip string) []notice {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []notice
	for _, x := range n.users[user] {
		if x.At.After(t) && !strings.Contains(" "+skip+" ", " "+x.Handle+" ") {
			out = append(out, x)
		}
	}
	return out
}

// demoGroup is this process's event group: one per host, so that every
// serve process of a fleet receives every event (two on one host share
// one, and each then sees part of them).
func demoGroup() string {
	h, _ := os.Hostname()
	b := []byte("rediskit-demo-" + h)
	for i, c := range b {
		if c <= ' ' || c > '~' {
			b[i] = '_'
		}
	}
	return string(b[:min(len(b), 64)])
}
