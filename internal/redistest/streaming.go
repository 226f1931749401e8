package redistest

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// AwaitStreaming waits until s's replica has acknowledged a write made now
// on s (WAIT 1) and returns how long that took. A replica's link is up
// (master_link_status:up) as soon as it has loaded the master's snapshot,
// but a master that sent the snapshot over the socket (diskless sync, the
// default) starts streaming the writes since only when the replica's first
// REPLCONF ACK arrives after it saw the transfer end; when that ACK came
// too early, the next one comes up to a second later. A failover in that
// second promotes a replica that lacks every write since its sync, however
// old (docs/RELIABILITY.md, Findings: a linearizability run lost a second of
// acknowledged writes that way). On a Cluster node the write goes to a key
// of one of s's own slots: a MOVED reply picks the next key.
func (s *Server) AwaitStreaming(ctx context.Context) (time.Duration, error) {
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr, Password: s.Password(), TLSConfig: s.TLSConfig(), MaxRetries: -1, PoolSize: 1})
	defer rdb.Close()
	conn := rdb.Conn() // WAIT counts the acknowledgements of this connection's writes
	defer conn.Close()
	for i := 0; ; i++ {
		err := conn.Incr(ctx, "redistest-sync-"+strconv.Itoa(i)).Err()
		if _, moved := redis.IsMovedError(err); moved && i < 1000 {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("await streaming from %s: %w", s.Addr, err)
		}
		break
	}
	began := time.Now()
	n, err := conn.Do(ctx, "WAIT", 1, 15000).Int()
	if err == nil && n < 1 {
		err = fmt.Errorf("no replica acknowledged within 15 s")
	}
	if err != nil {
		return 0, fmt.Errorf("await streaming from %s: WAIT 1: %w", s.Addr, err)
	}
	return time.Since(began), nil
}
