package scsstore

import (
	"crypto/sha256"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// FuzzKeyOf: whatever a cookie carries, keyOf neither panics nor puts the
// string in a key: the key is the prefix and a 43-character hash in braces,
// and a string read as a handle is one this store issued, spelt exactly so.
//
//	go test -run '^$' -fuzz FuzzKeyOf -fuzztime 30s ./scsstore/
func FuzzKeyOf(f *testing.F) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:0"}) // never dialled
	defer rdb.Close()
	s, err := New(rdb, Options{Prefix: "p:"})
	if err != nil {
		f.Fatal(err)
	}
	sum := sha256.Sum256([]byte("seed"))
	valid := s.handle(sum[:])
	for _, seed := range []string{
		"", "token", "{x}", "p:{" + strings.Repeat("A", 43) + "}", valid, valid[:len(valid)-1],
		valid[:len(valid)-1] + "B", handlePrefix, handlePrefix + strings.Repeat(".", handleLen-len(handlePrefix)),
		strings.Repeat("\xff", 300),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		key, ok := s.keyOf(tok)
		if !ok {
			if tok != "" && !strings.HasPrefix(tok, handlePrefix) {
				t.Fatalf("keyOf(%q) refused a plain token", tok)
			}
			return
		}
		got, found := s.sumOfKey(key)
		if !found || len(key) != len("p:")+hashB64Len+2 {
			t.Fatalf("keyOf(%q) = %q: not a key of this store", tok, key)
		}
		if len(tok) >= 8 && strings.Contains(key, tok) {
			t.Fatalf("keyOf(%q) = %q holds the token", tok, key)
		}
		if strings.HasPrefix(tok, handlePrefix) && s.handle(got[:]) != tok {
			t.Fatalf("handle %q accepted but not the one this store issues for its hash", tok)
		}
	})
}
