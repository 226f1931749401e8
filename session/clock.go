package session

import (
	"strconv"
	"time"
)

// now is the ARGV[1] of every script: 0 lets the script read Redis TIME.
// With Options.Events it is "now,maxlen,grace" (see setup in scripts.go).
func (s *Store) now() any {
	var ms int64
	if s.opts.Clock != nil {
		ms = s.opts.Clock().UnixMilli()
	}
	if !s.opts.Events {
		return ms
	}
	return strconv.FormatInt(ms, 10) + s.evArg
}

// touchDue reports whether a session read without a script needs the
// touch script: its last-seen is TouchInterval old, or it is past a
// timeout by the store's clock. That clock only decides when the script
// runs; the script reads the time again (Redis TIME, or Options.Clock) and
// alone decides whether the session is dead. A last-seen more than
// TouchInterval in the future means the store's clock is behind Redis's
// (and has not learnt the offset yet): the script runs, and its reply
// teaches the offset, so such a clock cannot hold touches back until
// sessions idle out in use.
func (s *Store) touchDue(md *metadata) bool {
	now := s.localNow()
	age, every := now-md.lastSeen, s.touchEvery(time.Duration(md.idle)*time.Millisecond)
	return age >= every || age < -every || now >= md.expires
}

// touchEvery is the touch interval of a session with the given idle
// timeout, in ms: Options.TouchInterval scaled by the session's idle timeout
// over the store's, so a session with its own idle timeout
// (CreateOptions.IdleTimeout) slides as often, relative to that timeout, as
// the store's sessions do. The Get script computes the same.
func (s *Store) touchEvery(idle time.Duration) int64 {
	return int64(float64(s.opts.TouchInterval.Milliseconds()) * float64(idle.Milliseconds()) /
		float64(s.opts.IdleTimeout.Milliseconds()))
}

// localNow is the store's estimate of the scripts' clock, in ms: Options.
// Clock, or the local clock corrected by the offset to Redis TIME last
// seen in a script reply.
func (s *Store) localNow() int64 {
	if s.opts.Clock != nil {
		return s.opts.Clock().UnixMilli()
	}
	return s.wall() + s.skew.Load()
}

// monoClock returns a local clock in Unix ms that reads only the monotonic
// clock, from the wall time when it was made: one clock read where
// time.Now makes two, and it runs on every Get. A step of the wall clock
// since (or a suspend, which the monotonic clock does not count) is caught
// like any other offset to Redis TIME: a session then looks touched in the
// future or past its expiry, the touch script runs, and observe learns the
// offset from its reply (TestLocalClockSkew).
func monoClock() func() int64 {
	start := time.Now()
	ms := start.UnixMilli()
	return func() int64 { return ms + time.Since(start).Milliseconds() }
}

// observe records the offset of Redis TIME (a script reply's "now") to
// the local clock, so a local clock that drifts cannot delay touches until
// sessions idle out in use.
func (s *Store) observe(v any) {
	if s.opts.Clock != nil {
		return
	}
	str, _ := v.(string)
	if ms, err := strconv.ParseInt(str, 10, 64); err == nil && ms > 0 {
		s.skew.Store(ms - s.wall())
	}
}
