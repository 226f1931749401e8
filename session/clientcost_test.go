package session_test

import (
	"context"
	"strings"
	"testing"

	"github.com/rediskit/rediskit/internal/redistest"
	"github.com/rediskit/rediskit/session"
)

// BenchmarkGetClientSide measures what a Store.Get does on the client and a
// bare GET of the same bytes does not: parse and SHA-256 the token, build
// the key, parse the stored form into a Session. The session is the one
// bench/'s SessionGet rows read (five values, a user, device info).
//
//	go test -run '^$' -bench GetClientSide -benchmem ./session/
func BenchmarkGetClientSide(b *testing.B) {
	ctx := context.Background()
	rdb := redistest.Shared(b).Client(b)
	store, err := session.New(rdb, session.Options{Prefix: redistest.Prefix(b)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = store.Close() })
	s, err := store.Create(ctx, "bench-user", map[string]any{
		"user_id": 4242, "name": "Alice Example", "role": "editor",
		"csrf": strings.Repeat("c", 43), "prefs": strings.Repeat("p", 200),
	}, session.CreateOptions{IP: "192.0.2.1", UserAgent: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	raw, err := rdb.Get(ctx, store.StoredKey(s.ID())).Result()
	if err != nil {
		b.Fatal(err)
	}
	id := s.ID()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := store.ParseAndLoad(id, raw); err != nil {
			b.Fatal(err)
		}
	}
}
