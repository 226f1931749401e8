package retry

import (
	"context"
	"strings"

	"github.com/redis/go-redis/v9"
)

type idempotentKey struct{}

// WithIdempotent marks every command issued with the returned context as safe
// to repeat, whatever the command table says: the caller vouches that sending
// it twice does no harm (an INCR whose result is discarded by a later SET, a
// Lua script written to be replayable). The hook then retries it like a read.
func WithIdempotent(ctx context.Context) context.Context {
	return context.WithValue(ctx, idempotentKey{}, true)
}

// MarkedIdempotent reports whether ctx was returned by WithIdempotent (or
// derives from such a context).
func MarkedIdempotent(ctx context.Context) bool {
	v, _ := ctx.Value(idempotentKey{}).(bool)
	return v
}

type noRetryKey struct{}

// WithNoRetry returns a context whose commands the Hook never re-sends, for
// calls that would rather fail fast than wait (a health probe). Failures are
// still classified: a non-idempotent write whose reply was lost still comes
// back as an *AmbiguousError.
func WithNoRetry(ctx context.Context) context.Context {
	return context.WithValue(ctx, noRetryKey{}, true)
}

func noRetry(ctx context.Context) bool {
	v, _ := ctx.Value(noRetryKey{}).(bool)
	return v
}

// kind tells how a command name relates to idempotency.
type kind uint8

const (
	never   kind = iota // unknown commands land here too
	always              // reads and writes that set absolute state
	noOpts              // idempotent only without options (EXPIRE k 10, not EXPIRE k 10 NX)
	setCmd              // SET: idempotent without NX, XX, GET
	zaddCmd             // ZADD: idempotent without INCR
	subCmd              // depends on the subcommand (CONFIG GET, CLUSTER SLOTS, …)
)

// commands lists the commands that are safe to send twice. A retried command
// leaves the same state as one that ran once; its reply may differ where it
// is a count (DEL, SADD, HSET report fewer changes the second time), never
// where it decides something (SET NX, GETDEL, INCR are not listed).
var commands = map[string]kind{
	// connection and server
	"ping": always, "echo": always, "time": always, "info": always, "select": always,
	"auth": always, "hello": always, "readonly": always, "readwrite": always, "asking": always,
	"dbsize": always, "lastsave": always, "role": always, "wait": always, "quit": always,
	"flushdb": always, "flushall": always, "multi": always, "exec": always, "discard": always,
	"watch": always, "unwatch": always,
	"config": subCmd, "cluster": subCmd, "client": subCmd, "command": subCmd, "memory": subCmd,
	"object": subCmd, "script": subCmd, "slowlog": subCmd, "latency": subCmd, "xinfo": subCmd,
	"function": subCmd,
	// keys
	"exists": always, "type": always, "ttl": always, "pttl": always, "expiretime": always,
	"pexpiretime": always, "keys": always, "scan": always, "randomkey": always, "dump": always,
	"touch": always, "del": always, "unlink": always, "persist": always, "sort_ro": always,
	"expire": noOpts, "pexpire": noOpts, "expireat": noOpts, "pexpireat": noOpts,
	// strings and bits
	"get": always, "mget": always, "strlen": always, "getrange": always, "substr": always,
	"lcs": always, "getbit": always, "bitcount": always, "bitpos": always, "bitfield_ro": always,
	"set": setCmd, "setex": always, "psetex": always, "mset": always, "setrange": always,
	"setbit": always, "bitop": always,
	// hashes
	"hget": always, "hmget": always, "hgetall": always, "hexists": always, "hlen": always,
	"hkeys": always, "hvals": always, "hstrlen": always, "hscan": always, "hrandfield": always,
	"httl": always, "hpttl": always, "hexpiretime": always, "hpexpiretime": always,
	"hset": always, "hmset": always, "hdel": always, "hpersist": always,
	// lists
	"lrange": always, "llen": always, "lindex": always, "lpos": always, "lset": always,
	"ltrim": always,
	// sets
	"smembers": always, "sismember": always, "smismember": always, "scard": always,
	"srandmember": always, "sscan": always, "sinter": always, "sunion": always, "sdiff": always,
	"sintercard": always, "sadd": always, "srem": always, "sinterstore": always,
	"sunionstore": always, "sdiffstore": always,
	// sorted sets
	"zrange": always, "zrangebyscore": always, "zrangebylex": always, "zrevrange": always,
	"zrevrangebyscore": always, "zrevrangebylex": always, "zscore": always, "zmscore": always,
	"zcard": always, "zcount": always, "zlexcount": always, "zrank": always, "zrevrank": always,
	"zscan": always, "zrandmember": always, "zinter": always, "zunion": always, "zdiff": always,
	"zintercard": always, "zrem": always, "zremrangebyscore": always, "zremrangebyrank": always,
	"zremrangebylex": always, "zrangestore": always, "zunionstore": always,
	"zinterstore": always, "zdiffstore": always, "zadd": zaddCmd,
	// streams, hyperloglog, geo
	"xrange": always, "xrevrange": always, "xlen": always, "xread": always, "xpending": always,
	"xack": always, "xdel": always,
	"pfcount": always, "pfadd": always, "pfmerge": always,
	"geopos": always, "geodist": always, "geohash": always, "geosearch": always,
	"georadius_ro": always, "georadiusbymember_ro": always, "geoadd": always,
	// scripting: read-only variants only
	"eval_ro": always, "evalsha_ro": always, "fcall_ro": always,
}

// subCommands lists, per command, the subcommands safe to repeat.
var subCommands = map[string]map[string]bool{
	"config":  {"get": true, "set": true, "resetstat": true},
	"cluster": {"info": true, "nodes": true, "slots": true, "shards": true, "myid": true, "keyslot": true, "countkeysinslot": true, "getkeysinslot": true, "links": true, "replicas": true},
	"client":  {"list": true, "info": true, "getname": true, "setname": true, "id": true, "setinfo": true, "tracking": true, "trackinginfo": true, "getredir": true, "no-evict": true, "no-touch": true},
	"command": {"": true, "count": true, "docs": true, "info": true, "list": true, "getkeys": true, "getkeysandflags": true},
	"memory":  {"usage": true, "stats": true, "doctor": true},
	"object":  {"encoding": true, "freq": true, "idletime": true, "refcount": true},
	"script":  {"load": true, "exists": true, "flush": true},
	"slowlog": {"get": true, "len": true, "reset": true},
	"latency": {"latest": true, "history": true, "doctor": true},
	"xinfo":   {"stream": true, "groups": true, "consumers": true},
	"function": {
		"list": true, "stats": true, "dump": true,
	},
}

// IsIdempotent reports whether cmd leaves the same state when sent twice
// (see the command table in this package), or was marked so by Repeatable. Unknown commands are not
// idempotent; MULTI and EXEC are neutral, so a transaction is idempotent when
// every command inside it is.
func IsIdempotent(cmd redis.Cmder) bool {
	if _, ok := cmd.(interface{ repeatable() }); ok {
		return true
	}
	name := cmd.Name()
	k := commands[name]
	switch k {
	case always:
		return true
	case noOpts:
		return len(cmd.Args()) <= 3
	case setCmd:
		return !hasOption(cmd.Args(), 3, "nx", "xx", "get")
	case zaddCmd:
		return !hasOption(cmd.Args(), 2, "incr")
	case subCmd:
		sub := ""
		if args := cmd.Args(); len(args) > 1 {
			s, _ := args[1].(string)
			sub = strings.ToLower(s)
		}
		return subCommands[name][sub]
	}
	return false
}

// AllIdempotent reports whether every command in cmds is idempotent.
func AllIdempotent(cmds []redis.Cmder) bool {
	for _, c := range cmds {
		if !IsIdempotent(c) {
			return false
		}
	}
	return true
}

// hasOption reports whether a string argument at index from or later equals
// one of opts, ignoring case. A value that happens to spell an option makes
// the answer "yes", which errs on the side of not retrying.
func hasOption(args []any, from int, opts ...string) bool {
	for i := from; i < len(args); i++ {
		s, ok := args[i].(string)
		if !ok {
			continue
		}
		for _, o := range opts {
			if strings.EqualFold(s, o) {
				return true
			}
		}
	}
	return false
}

// idempotentWrites are the commands of the table that change data. When
// the reply of one of them was lost and its re-send failed too, the hook
// reports the write as ambiguous: the first attempt may have run.
var idempotentWrites = map[string]bool{
	"flushdb": true, "flushall": true, "del": true, "unlink": true, "persist": true,
	"expire": true, "pexpire": true, "expireat": true, "pexpireat": true,
	"set": true, "setex": true, "psetex": true, "mset": true, "setrange": true, "setbit": true, "bitop": true,
	"hset": true, "hmset": true, "hdel": true, "hpersist": true,
	"lset": true, "ltrim": true,
	"sadd": true, "srem": true, "sinterstore": true, "sunionstore": true, "sdiffstore": true,
	"zadd": true, "zrem": true, "zremrangebyscore": true, "zremrangebyrank": true, "zremrangebylex": true,
	"zrangestore": true, "zunionstore": true, "zinterstore": true, "zdiffstore": true,
	"xack": true, "xdel": true, "pfadd": true, "pfmerge": true, "geoadd": true,
}

// writes reports whether cmd changes data: a write of the table, or a
// command marked safe to repeat (Repeatable, WithIdempotent), which is
// marked because it is a write the table cannot know about.
func writes(ctx context.Context, cmd redis.Cmder) bool {
	if _, ok := cmd.(interface{ repeatable() }); ok {
		return true
	}
	return MarkedIdempotent(ctx) || idempotentWrites[cmd.Name()]
}
