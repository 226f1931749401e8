package session

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Event streams (Options.Events). Every write script appends the events of
// its change to a stream in the same script, so an event is in Redis
// exactly when its change is (same replication, same AOF record).
//
// A script may only touch keys of its session's slot, so the stream lives
// in that slot: on a standalone or failover client there is one stream,
// "<prefix>events"; on a Cluster there is one stream per hash slot,
// "<prefix>{<slot tag>}:ev", where the slot tag is a short string chosen
// once so that it hashes to that slot. Every session of a slot writes to the
// slot's stream; a subscriber reads all 16384 of them, one pipeline per
// master per poll (see Subscribe).

// EventKind says what happened to a session.
type EventKind string

const (
	// EventCreated: Create stored a new session.
	EventCreated EventKind = "created"
	// EventRotated: Rotate gave a session a new ID. Handle is the new
	// handle, OldHandle the old one.
	EventRotated EventKind = "rotated"
	// EventRevoked: a session was deleted before its time. Cause is
	// "delete" (Delete, DeleteMany, a Manager's Logout), "user"
	// (DeleteByUser, RevokeHandle), "limit" (Options.MaxPerUser revoked it
	// for a newer one) or "vanished" (its key disappeared without a script:
	// eviction, a DEL by hand; reported by the sweep).
	EventRevoked EventKind = "revoked"
	// EventExpired: a session ended by a timeout. Cause is "idle" or
	// "absolute".
	EventExpired EventKind = "expired"
)

// Event is one lifecycle event of a session. It never carries the
// session's ID (its token): Handle is the SHA-256 of the token, as
// Info.Handle and ListByUser show it. UserID is empty for an anonymous
// session.
type Event struct {
	ID        string // stream entry ID: with Handle, tells copies apart (see Subscribe)
	Kind      EventKind
	Cause     string
	UserID    string
	Handle    string
	OldHandle string    // EventRotated only
	At        time.Time // when it happened (for EventExpired: the timeout)
}

// parseEvent reads one stream entry written by emit in scripts.go.
func parseEvent(m redis.XMessage) (Event, error) {
	ev := Event{ID: m.ID}
	str := func(k string) string { v, _ := m.Values[k].(string); return v }
	ev.Kind, ev.Cause, ev.UserID, ev.Handle, ev.OldHandle = EventKind(str("k")), str("c"), str("u"), str("h"), str("o")
	switch ev.Kind {
	case EventCreated, EventRotated, EventRevoked, EventExpired:
	default:
		return ev, fmt.Errorf("%w: event %s: unknown kind", ErrCorrupt, m.ID)
	}
	ms, err := strconv.ParseInt(str("t"), 10, 64)
	if err != nil || ev.Handle == "" {
		return ev, fmt.Errorf("%w: event %s", ErrCorrupt, m.ID)
	}
	ev.At = time.UnixMilli(ms)
	return ev, nil
}

// keys returns a script's keys, with the event stream of tag's slot
// appended when events are on.
func (s *Store) keys(tag string, keys ...string) []string {
	if s.opts.Events {
		keys = append(keys, s.streamKey(tag))
	}
	return keys
}

// streamKey is the event stream of tag's slot.
func (s *Store) streamKey(tag string) string {
	if !s.cluster {
		return s.opts.Prefix + "events"
	}
	return s.slotStream(keySlot(tag))
}

func (s *Store) slotStream(slot int) string {
	return s.opts.Prefix + "{" + slotTags()[slot] + "}:ev"
}

// streams lists every event stream.
func (s *Store) streams() []string {
	if !s.cluster {
		return []string{s.streamKey("")}
	}
	out := make([]string, numSlots)
	for i := range out {
		out[i] = s.slotStream(i)
	}
	return out
}

// tagOfIndex returns the tag of a key "<prefix>{<tag>}...".
func tagOfIndex(k string) string {
	i := strings.IndexByte(k, '{')
	j := strings.LastIndexByte(k, '}')
	if i < 0 || j < i {
		return ""
	}
	return k[i+1 : j]
}

const numSlots = 16384

// keySlot is the Redis Cluster slot of a hash tag: CRC16 (XMODEM) mod 16384.
func keySlot(tag string) int {
	var crc uint16
	for i := 0; i < len(tag); i++ {
		crc ^= uint16(tag[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % numSlots
}

var slotTags = sync.OnceValue(func() []string {
	tags := make([]string, numSlots)
	left := numSlots
	for n := 0; left > 0; n++ {
		t := "ev" + strconv.Itoa(n)
		if sl := keySlot(t); tags[sl] == "" {
			tags[sl] = t
			left--
		}
	}
	return tags
})

// StartAt says where a new subscriber group starts reading.
type StartAt int

const (
	// FromNow: events appended after the group is created.
	FromNow StartAt = iota
	// FromOldest: every event the streams still hold (EventsMaxLen).
	FromOldest
)

// EventOptions configures Subscribe.
type EventOptions struct {
	// Group names the subscriber: every group receives every event. Give
	// each application instance (or each purpose) its own. 1 to 64 bytes,
	// printable ASCII without spaces. Required.
	Group string
	// Consumer names this reader within the group; a restarted reader with
	// the same name gets its unacknowledged events again first. Default
	// "c": one reader per group.
	Consumer string
	// From applies when the group does not exist yet. Default FromNow.
	From StartAt
	// Batch is the most events read from one stream per request. Default 100.
	Batch int64
	// Poll is how long a reader waits when there was nothing to read.
	// Default 200 ms; 1 s on a Cluster, where each poll is 16384 commands.
	Poll time.Duration
	// Sweep is how often this subscriber runs Cleanup, which reports the
	// timeouts of sessions no script has met since (their index entries are
	// past their expiry). Zero: every 30 seconds; negative: never (another
	// subscriber or a cron calling Cleanup does it). One sweeper is enough;
	// more only cost SCANs, never duplicate events.
	Sweep time.Duration
}

var errEventsOff = errors.New("session: subscribe: Options.Events is off")

// ErrBadGroup reports an EventOptions.Group or Consumer that is not a
// plain name.
var ErrBadGroup = errors.New("session: bad event group or consumer name")

func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// Subscribe delivers the store's events to fn until ctx ends (it then
// returns ctx's error) or a Redis call fails. Options.Events must be on.
//
// Delivery is at least once, in order per session: each stream is read in
// order and a session's events all go to one stream (a Rotate keeps the
// slot). An event is acknowledged (XACK) after fn returns nil; when fn
// returns an error, or the reader dies first, the event is delivered again
// (to a reader of the same Group and Consumer): fn may see an event twice;
// copies have the same Event.ID and Handle. A failover can also roll back
// the group's state on the new master (acknowledgements, even the group),
// and lose the last writes with their events unless Options.DurableReplicas
// is set: see "Events" in the package documentation. fn is called from one
// goroutine.
//
// Subscribe checks ctx before each Redis call and each stream's batch, so
// it returns within one Redis call of ctx's end; each call is bounded by
// the client's timeouts and retries. It returns on the first Redis error:
// subscribe again (Manager.Subscribe does).
func (s *Store) Subscribe(ctx context.Context, opts EventOptions, fn func(context.Context, Event) error) error {
	if !s.opts.Events {
		return errEventsOff
	}
	if opts.Consumer == "" {
		opts.Consumer = "c"
	}
	if !validName(opts.Group) || !validName(opts.Consumer) {
		return ErrBadGroup
	}
	if opts.Batch <= 0 {
		opts.Batch = 100
	}
	if opts.Poll <= 0 {
		opts.Poll = 200 * time.Millisecond
		if s.cluster {
			opts.Poll = time.Second
		}
	}
	if opts.Sweep == 0 {
		opts.Sweep = 30 * time.Second
	}
	if s.isClosed() {
		return ErrClosed
	}
	err := s.subscribe(ctx, opts, fn)
	if cc, ok := s.rdb.(*redis.ClusterClient); ok && err != nil && ctx.Err() == nil {
		// A node failed: learn the new slot map before the caller
		// subscribes again.
		cc.ReloadState(ctx)
	}
	return err
}

func (s *Store) subscribe(ctx context.Context, opts EventOptions, fn func(context.Context, Event) error) error {
	streams := s.streams()
	// have: the stream exists with the group. A stream that does not exist
	// yet gets the group when it appears, from its first entry; creating
	// empty streams ahead (MKSTREAM) would leave 16384 keys per group on a
	// Cluster.
	have := make([]bool, len(streams))
	start := "$"
	if opts.From == FromOldest {
		start = "0"
	}
	if err := s.createGroups(ctx, streams, have, start, opts.Group); err != nil {
		return err
	}
	// pending: the stream may hold events delivered to this consumer and
	// not acknowledged; read those (ID "0") before new ones (">").
	pending := make([]bool, len(streams))
	for i := range pending {
		pending[i] = true
	}
	nextSweep := time.Now()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if opts.Sweep > 0 && !time.Now().Before(nextSweep) {
			if _, err := s.Cleanup(ctx); err != nil && ctx.Err() == nil {
				return fmt.Errorf("session: subscribe: sweep: %w", err)
			}
			nextSweep = time.Now().Add(opts.Sweep)
		}
		if err := s.createGroups(ctx, streams, have, "0", opts.Group); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		got, err := s.readOnce(ctx, streams, have, pending, opts, fn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			return err
		}
		if got == 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(opts.Poll):
			}
		}
	}
}

// createGroups creates the group on every stream not in have that exists,
// starting at start, in one pipeline (one round trip per node).
func (s *Store) createGroups(ctx context.Context, streams []string, have []bool, start, group string) error {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StatusCmd, len(streams))
	for i, k := range streams {
		if !have[i] {
			cmds[i] = pipe.XGroupCreate(ctx, k, group, start)
		}
	}
	if pipe.Len() == 0 {
		return nil
	}
	_, _ = pipe.Exec(ctx)
	for i, c := range cmds {
		if c == nil {
			continue
		}
		switch err := c.Err(); {
		case err == nil, redis.HasErrorPrefix(err, "BUSYGROUP"):
			have[i] = true
		case strings.Contains(err.Error(), "requires the key to exist"):
		default:
			return wrapRedis("subscribe", err)
		}
	}
	return nil
}

// readOnce reads every stream once (one pipeline: one round trip per node)
// and hands the events to fn, acknowledging each after fn returns nil.
func (s *Store) readOnce(ctx context.Context, streams []string, have, pending []bool, opts EventOptions,
	fn func(context.Context, Event) error) (int, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.XStreamSliceCmd, len(streams))
	for i, k := range streams {
		if !have[i] {
			continue
		}
		id := ">"
		if pending[i] {
			id = "0"
		}
		cmds[i] = pipe.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: opts.Group, Consumer: opts.Consumer, Streams: []string{k, id},
			Count: opts.Batch, Block: -1,
		})
	}
	if pipe.Len() == 0 {
		return 0, nil
	}
	_, _ = pipe.Exec(ctx)
	got := 0
	for i, c := range cmds {
		if c == nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			// The events not handed to fn yet stay unacknowledged: the
			// group's next reader gets them.
			return got, err
		}
		res, err := c.Result()
		switch {
		case err == redis.Nil:
			pending[i] = false
			continue
		case redis.HasErrorPrefix(err, "NOGROUP"):
			// The stream was deleted (FLUSHALL, a DEL by hand): the group
			// is made again when the stream reappears.
			have[i], pending[i] = false, true
			continue
		case err != nil:
			return got, wrapRedis("subscribe", err)
		}
		var msgs []redis.XMessage
		if len(res) == 1 {
			msgs = res[0].Messages
		}
		if len(msgs) == 0 {
			pending[i] = false // no pending entries left: read new ones
			continue
		}
		var acks []string
		for _, m := range msgs {
			if m.Values != nil { // nil: a pending entry trimmed away (MAXLEN) before it was acked
				ev, err := parseEvent(m)
				// A malformed entry is acknowledged and skipped:
				// redelivering it would only stop the stream.
				if err == nil {
					if err := fn(ctx, ev); err != nil {
						pending[i] = true // delivered again on the next read
						break
					}
				}
			}
			acks = append(acks, m.ID)
		}
		if len(acks) > 0 {
			if err := s.rdb.XAck(ctx, streams[i], opts.Group, acks...).Err(); err != nil {
				return got, wrapRedis("subscribe", err)
			}
			got += len(acks)
		}
	}
	return got, nil
}
