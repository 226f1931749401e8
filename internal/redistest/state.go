package redistest

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// NodeState is what one server says of itself (INFO replication, DBSIZE,
// connected clients): the waits of the harness report it when they give up,
// and the Sentinel scenario records it as a timeline.
type NodeState struct {
	Addr string
	Err  error // the server did not answer

	Role       string // "master" or "slave"
	MasterAddr string // a replica's master
	Link       string // a replica's master_link_status: "up" or "down"
	// Offset is the replication offset: master_repl_offset on a master,
	// slave_repl_offset on a replica.
	Offset int64
	// SecondOffset is second_repl_offset: on a promoted replica, one past
	// the last byte it had from its old master; -1 when none.
	SecondOffset int64
	Keys         int64
	Clients      int64 // connected_clients
}

// State asks srv for its NodeState through a short-lived connection, within
// one second.
func State(ctx context.Context, srv *Server) NodeState {
	st := NodeState{Addr: srv.Addr}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: srv.Password(), TLSConfig: srv.TLSConfig(),
		MaxRetries: -1, PoolSize: 1, DialTimeout: 300 * time.Millisecond, ReadTimeout: 500 * time.Millisecond})
	defer rdb.Close()
	pipe := rdb.Pipeline()
	repl := pipe.Info(ctx, "replication")
	clients := pipe.Info(ctx, "clients")
	keys := pipe.DBSize(ctx)
	if _, err := pipe.Exec(ctx); err != nil {
		st.Err = err
		return st
	}
	f := infoFields(repl.Val() + clients.Val())
	st.Role = f["role"]
	if h, p := f["master_host"], f["master_port"]; h != "" {
		st.MasterAddr = net.JoinHostPort(h, p)
		st.Link = f["master_link_status"]
		st.Offset, _ = strconv.ParseInt(f["slave_repl_offset"], 10, 64)
	} else {
		st.Offset, _ = strconv.ParseInt(f["master_repl_offset"], 10, 64)
	}
	st.SecondOffset, _ = strconv.ParseInt(f["second_repl_offset"], 10, 64)
	st.Clients, _ = strconv.ParseInt(f["connected_clients"], 10, 64)
	st.Keys = keys.Val()
	return st
}

func infoFields(info string) map[string]string {
	m := make(map[string]string)
	for line := range strings.SplitSeq(info, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			m[k] = v
		}
	}
	return m
}

// String reads like "127.0.0.1:6379 master keys=12 offset=345" or
// "127.0.0.1:6380 replica of 127.0.0.1:6379 link up keys=12 offset=345".
// Client counts are left out: they change with every dial.
func (n NodeState) String() string {
	if n.Err != nil {
		return fmt.Sprintf("%s down (%v)", n.Addr, n.Err)
	}
	role := n.Role
	if n.Role == "slave" {
		role = "replica of " + n.MasterAddr + " link " + n.Link
	}
	return fmt.Sprintf("%s %s keys=%d offset=%d", n.Addr, role, n.Keys, n.Offset)
}

// SentinelView is what the first sentinel says: the master it names, and
// the flags and link status it holds for each replica.
type SentinelView struct {
	Master   string
	Err      error
	Replicas []string // "addr flags link"
}

// View asks the first sentinel for its SentinelView.
func (s *Sentinel) View(ctx context.Context) SentinelView {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var v SentinelView
	v.Master, v.Err = s.MasterAddr(ctx)
	if v.Err != nil {
		return v
	}
	sc := s.sentinelClient()
	defer sc.Close()
	reps, err := sc.Replicas(ctx, s.MasterName).Result()
	if err != nil {
		v.Err = err
		return v
	}
	for _, r := range reps {
		v.Replicas = append(v.Replicas, fmt.Sprintf("%s %s link %s",
			net.JoinHostPort(r["ip"], r["port"]), r["flags"], r["master-link-status"]))
	}
	return v
}

func (v SentinelView) String() string {
	if v.Err != nil {
		return fmt.Sprintf("sentinel: %v", v.Err)
	}
	return fmt.Sprintf("sentinel names %s; its replicas: [%s]", v.Master, strings.Join(v.Replicas, "; "))
}

// Describe returns the sentinel's view and every data node's state in one
// line, for the message of a wait that gave up.
func (s *Sentinel) Describe(ctx context.Context) string {
	parts := []string{s.View(ctx).String()}
	for _, n := range []*Server{s.Master, s.Replica} {
		parts = append(parts, State(ctx, n).String())
	}
	return strings.Join(parts, " | ")
}
