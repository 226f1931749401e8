package cache

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestClearStaysInsideNamespaceAndLiteral(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		c := newCache(t, tp.rdb, Options{UnlinkBatch: 7, ScanCount: 50})
		other := newCache(t, tp.rdb, Options{})
		items := map[string][]byte{}
		for i := range 120 {
			items[fmt.Sprintf("user:%d", i)] = []byte("u")
			items[fmt.Sprintf("order:%d", i)] = []byte("o")
		}
		items["user*"] = []byte("star")   // a literal '*' in a key
		items["use?:1"] = []byte("quest") // would match "use?:*" as a glob
		items[`us[e]r:x`] = []byte("brackets")
		if err := c.MSet(ctx, items, time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := other.Set(ctx, "user:1", []byte("other ns"), time.Minute); err != nil {
			t.Fatal(err)
		}
		// Escaped user input cannot widen: "user*" removes only that key.
		n, err := c.Clear(ctx, Literal("user*"), ClearOptions{})
		if err != nil || n != 1 {
			t.Fatalf("Clear(Literal(user*)) = %d, %v; want 1", n, err)
		}
		if _, ok, _ := c.Get(ctx, "user:5"); !ok {
			t.Fatal("Literal(\"user*\") removed user:5")
		}
		var progress []int64
		n, err = c.Clear(ctx, Prefix("user:"), ClearOptions{Progress: func(r int64) { progress = append(progress, r) }})
		if err != nil || n != 120 {
			t.Fatalf("Clear(Prefix(user:)) = %d, %v; want 120", n, err)
		}
		if len(progress) < 120/7 || progress[len(progress)-1] != 120 || !sort.SliceIsSorted(progress, func(i, j int) bool { return progress[i] < progress[j] }) {
			t.Fatalf("progress calls %v", progress)
		}
		for _, k := range []string{"order:3", "use?:1", `us[e]r:x`} {
			if _, ok, _ := c.Get(ctx, k); !ok {
				t.Fatalf("%q removed by Prefix(user:)", k)
			}
		}
		if _, ok, _ := other.Get(ctx, "user:1"); !ok {
			t.Fatal("Clear reached into another namespace")
		}
		// An explicit glob from the programmer.
		n, err = c.Clear(ctx, Glob("order:1*"), ClearOptions{})
		if err != nil || n != 31 { // 1, 10–19, 100–119
			t.Fatalf("Glob(order:1*) removed %d, %v; want 31", n, err)
		}
		n, err = c.Clear(ctx, Glob("*"), ClearOptions{})
		if err != nil || n != 120-31+2 {
			t.Fatalf("Glob(*) removed %d, %v; want %d", n, err, 120-31+2)
		}
	})
}

// redisMatch is Redis's stringmatchlen (util.c) for byte strings, without
// the nocase flag: the reference the escaping is checked against.
func redisMatch(p, s string) bool {
	for len(p) > 0 {
		switch p[0] {
		case '*':
			for len(p) > 1 && p[1] == '*' {
				p = p[1:]
			}
			if len(p) == 1 {
				return true
			}
			for i := 0; i <= len(s); i++ {
				if redisMatch(p[1:], s[i:]) {
					return true
				}
			}
			return false
		case '?':
			if len(s) == 0 {
				return false
			}
			s = s[1:]
		case '[':
			if len(s) == 0 {
				return false
			}
			p = p[1:]
			not := len(p) > 0 && p[0] == '^'
			if not {
				p = p[1:]
			}
			match := false
			for {
				if len(p) >= 2 && p[0] == '\\' {
					p = p[1:]
					if p[0] == s[0] {
						match = true
					}
				} else if len(p) == 0 || p[0] == ']' {
					break
				} else if len(p) >= 3 && p[1] == '-' {
					lo, hi := p[0], p[2]
					if lo > hi {
						lo, hi = hi, lo
					}
					p = p[2:]
					if s[0] >= lo && s[0] <= hi {
						match = true
					}
				} else if p[0] == s[0] {
					match = true
				}
				p = p[1:]
			}
			if len(p) == 0 { // unterminated class: Redis treats end as end
				p = " "[:0]
			}
			if not {
				match = !match
			}
			if !match {
				return false
			}
			s = s[1:]
			if len(p) == 0 {
				return len(s) == 0
			}
		case '\\':
			if len(p) >= 2 {
				p = p[1:]
			}
			fallthrough
		default:
			if len(s) == 0 || p[0] != s[0] {
				return false
			}
			s = s[1:]
		}
		p = p[1:]
	}
	return len(s) == 0
}

func FuzzEscapeGlob(f *testing.F) {
	for _, s := range []string{"", "user:1", "*", "?", "[a-z]", `\`, `a\*b`, "x[", "]", "[^a]", "a*?[]\\b"} {
		f.Add(s, "user:1")
	}
	f.Fuzz(func(t *testing.T, s, other string) {
		e := escapeGlob(s)
		if !redisMatch(e, s) {
			t.Fatalf("escaped %q (%q) does not match itself", s, e)
		}
		if other != s && redisMatch(e, other) {
			t.Fatalf("escaped %q (%q) matches %q", s, e, other)
		}
		// Under a namespace and before a '*', it matches only its extensions.
		p := escapeGlob("ns:*") + e + "*"
		if redisMatch(p, "ns:*"+other) != strings.HasPrefix(other, s) {
			t.Fatalf("prefix pattern %q vs %q: widened or narrowed", p, other)
		}
	})
}

func TestRedisMatchAgreesWithServer(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		if tp.cluster {
			t.Skip("the reference matcher is checked once, on the standalone server")
		}
		ctx := context.Background()
		c := newCache(t, tp.rdb, Options{})
		keys := []string{"a", "ab", "a*", "a?", "a[", "a]", `a\`, "abc", "[x]", "b"}
		for _, k := range keys {
			if err := c.Set(ctx, k, []byte("1"), time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		for _, k := range keys {
			pat := escapeGlob(c.ns) + escapeGlob(k)
			var got []string
			for cursor := uint64(0); ; {
				keys, next, err := tp.rdb.Scan(ctx, cursor, pat, 10000).Result()
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, keys...)
				if cursor = next; cursor == 0 {
					break
				}
			}
			if len(got) != 1 || got[0] != c.ns+k {
				t.Fatalf("SCAN MATCH %q = %q, want only %q", pat, got, c.ns+k)
			}
			if !redisMatch(pat, c.ns+k) {
				t.Fatalf("reference matcher disagrees on %q", pat)
			}
		}
	})
}
