package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/rediskit/rediskit/cache"
)

func runCache(ctx context.Context, e *env, args []string) error {
	const synopsis = "rediskit cache get KEY | del KEY... | clear PATTERN [--yes] [--dry-run] | stats  [--prefix P --version N]"
	fs := newFlagSet(e, "cache", synopsis,
		`Operate on one cache namespace (cache.Options Prefix and Version):
  get     print the value under KEY (text as is, binary as base64)
  del     delete keys
  clear   delete every key of the namespace matching the glob PATTERN
          (SCAN on every master, UNLINK in batches; asks first unless --yes;
          --dry-run only counts)
  stats   Redis memory and a MEMORY USAGE sample of the namespace`,
		"rediskit cache get user:42 --prefix myapp\nrediskit cache del user:42 user:43 --prefix myapp\nrediskit cache clear 'user:*' --prefix myapp --dry-run\nrediskit cache clear '*' --prefix myapp --yes --json")
	url := redisFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	prefix := fs.String("prefix", "cache", "namespace `prefix` (cache.Options.Prefix)")
	version := fs.Uint("version", 0, "namespace `version` (cache.Options.Version)")
	yes := fs.Bool("yes", false, "clear without asking")
	dry := fs.Bool("dry-run", false, "clear: count the matching keys, delete nothing")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageErrorf("want one of get, del, clear, stats (usage: %s)", synopsis)
	}
	sub, rest := pos[0], pos[1:]
	switch {
	case sub == "get" && len(rest) == 1, sub == "del" && len(rest) >= 1, sub == "clear" && len(rest) == 1,
		sub == "stats" && len(rest) == 0:
	case sub == "get" || sub == "del" || sub == "clear" || sub == "stats":
		return usageErrorf("wrong number of arguments for %s (usage: %s)", sub, synopsis)
	default:
		return usageErrorf("unknown cache command %q (want get, del, clear, stats)", sub)
	}
	if *version > 1<<32-1 {
		return usageErrorf("--version: %d is out of range", *version)
	}

	c, err := connect(ctx, e, *url)
	if err != nil {
		return err
	}
	defer c.Close()
	ch, err := cache.New(c.Redis(), cache.Options{Prefix: *prefix, Version: uint32(*version)})
	if err != nil {
		return withCode(exitUsage, err)
	}
	defer ch.Close()

	switch sub {
	case "get":
		v, ok, err := ch.Get(ctx, rest[0])
		if err != nil {
			return err
		}
		if !ok {
			if *asJSON {
				writeJSON(e.stdout, map[string]any{"key": rest[0], "found": false})
			}
			return withCode(exitFailed, fmt.Errorf("%q: not found in namespace %s", rest[0], ch.Namespace()))
		}
		if *asJSON {
			out := map[string]any{"key": rest[0], "found": true}
			if utf8.Valid(v) {
				out["value"] = string(v)
			} else {
				out["value_base64"] = base64.StdEncoding.EncodeToString(v)
			}
			writeJSON(e.stdout, out)
			return nil
		}
		if utf8.Valid(v) {
			fmt.Fprintln(e.stdout, string(v))
		} else {
			fmt.Fprintln(e.stdout, base64.StdEncoding.EncodeToString(v))
		}
		return nil
	case "del":
		if err := ch.Delete(ctx, rest...); err != nil {
			return err
		}
		return say(e, *asJSON, map[string]any{"deleted": rest}, "deleted %d key(s)\n", len(rest))
	case "clear":
		return cacheClear(ctx, e, ch, rest[0], *yes, *dry, *asJSON)
	default:
		stop := e.spinner("sampling the namespace")
		s, err := ch.Stats(ctx)
		stop()
		if err != nil {
			return err
		}
		per := int64(0)
		if s.SampledKeys > 0 {
			per = s.SampledBytes / int64(s.SampledKeys)
		}
		return say(e, *asJSON, map[string]any{
			"namespace": ch.Namespace(), "used_memory": s.UsedMemory,
			"sampled_keys": s.SampledKeys, "sampled_bytes": s.SampledBytes, "bytes_per_key": per,
		}, "namespace: %s\nredis used memory: %s\nsampled keys: %d (%s, about %s each)\n",
			ch.Namespace(), humanBytes(s.UsedMemory), s.SampledKeys, humanBytes(s.SampledBytes), humanBytes(per))
	}
}

func cacheClear(ctx context.Context, e *env, ch *cache.Cache, glob string, yes, dry, asJSON bool) error {
	p := cache.Glob(glob)
	count := func() (int64, error) {
		stop := e.spinner("counting keys")
		defer stop()
		return ch.Clear(ctx, p, cache.ClearOptions{DryRun: true})
	}
	if dry {
		n, err := count()
		if err != nil {
			return err
		}
		return say(e, asJSON, map[string]any{"matched": n, "deleted": 0, "dry_run": true},
			"%d key(s) of namespace %s match %q; nothing deleted (dry run)\n", n, ch.Namespace(), glob)
	}
	var total int64
	if !yes {
		if !e.interactive {
			return usageErrorf("clear deletes keys: pass --yes (or --dry-run to count) when not on a terminal")
		}
		n, err := count()
		if err != nil {
			return err
		}
		if n == 0 {
			return say(e, asJSON, map[string]any{"matched": 0, "deleted": 0}, "no key of namespace %s matches %q\n", ch.Namespace(), glob)
		}
		fmt.Fprintf(e.stderr, "Delete %d key(s) of namespace %s matching %q? [y/N] ", n, ch.Namespace(), glob)
		answer, _ := bufio.NewReader(e.stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			return withCode(exitFailed, fmt.Errorf("not confirmed; nothing deleted"))
		}
		total = n
	}
	bar := e.progress("clearing", total)
	n, err := ch.Clear(ctx, p, cache.ClearOptions{Progress: bar.update})
	bar.finish()
	if err != nil {
		return fmt.Errorf("after deleting %d key(s): %w", n, err)
	}
	return say(e, asJSON, map[string]any{"deleted": n}, "deleted %d key(s) of namespace %s\n", n, ch.Namespace())
}
