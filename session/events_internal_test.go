package session

import (
	"errors"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"
)

// FuzzParseEvent: any stream entry either parses into an Event whose
// fields are the entry's, or fails with ErrCorrupt; never a panic.
func FuzzParseEvent(f *testing.F) {
	f.Add("created", "", "alice", "h", "1700000000000", "")
	f.Add("rotated", "", "bob", "new", "1", "old")
	f.Add("expired", "idle", "", "h", "x", "")
	f.Add("nope", "", "u", "h", "-5", "")
	f.Fuzz(func(t *testing.T, k, c, u, h, ts, o string) {
		ev, err := parseEvent(redis.XMessage{ID: "1-0", Values: map[string]any{"k": k, "c": c, "u": u, "h": h, "t": ts, "o": o}})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not match ErrCorrupt", err)
			}
			return
		}
		ms, perr := strconv.ParseInt(ts, 10, 64)
		if perr != nil || string(ev.Kind) != k || ev.Cause != c || ev.UserID != u || ev.Handle != h ||
			ev.OldHandle != o || ev.At.UnixMilli() != ms || h == "" {
			t.Fatalf("parsed %+v from k=%q c=%q u=%q h=%q t=%q o=%q", ev, k, c, u, h, ts, o)
		}
	})
}

// TestKeySlot: keySlot is Redis Cluster's slot function (CRC16 XMODEM mod
// 16384), checked on the reference vector of the Cluster specification,
// and every slot has a stream tag that hashes to it.
func TestKeySlot(t *testing.T) {
	if got := keySlot("123456789"); got != 0x31C3%numSlots {
		t.Fatalf("keySlot(123456789) = %d, want %d", got, 0x31C3%numSlots)
	}
	for slot, tag := range slotTags() {
		if keySlot(tag) != slot {
			t.Fatalf("slot tag %q hashes to %d, not %d", tag, keySlot(tag), slot)
		}
	}
}
