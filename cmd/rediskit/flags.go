package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"reflect"
	"runtime/debug"
	"strconv"
	"strings"
)

// errHelp is returned when --help was asked for and printed.
var errHelp = errors.New("help requested")

// newFlagSet returns a flag set whose --help prints the synopsis, the
// description, the flags and examples to stdout.
func newFlagSet(e *env, name, synopsis, desc, examples string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		w := e.stdout
		fmt.Fprintf(w, "Usage:\n  %s\n\n%s\n", synopsis, desc)
		var has bool
		fs.VisitAll(func(*flag.Flag) { has = true })
		if has {
			fmt.Fprint(w, "\nFlags:\n")
			printDefaults(w, fs)
		}
		fmt.Fprintf(w, "\nExamples:\n  %s\n", strings.ReplaceAll(examples, "\n", "\n  "))
	}
	return fs
}

// parseFlags parses flags placed anywhere among the arguments (the standard
// package stops at the first positional one) and returns the positionals.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		// Silence the package's own error print: we print one line ourselves.
		out := fs.Output()
		fs.SetOutput(discard{})
		err := fs.Parse(args)
		fs.SetOutput(out)
		if errors.Is(err, flag.ErrHelp) {
			return nil, errHelp // the flag package has called fs.Usage
		}
		if err != nil {
			return nil, usageErrorf("%v (see rediskit %s --help)", err, fs.Name())
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// printDefaults is flag.PrintDefaults with flags written as the synopses
// and examples write them: --name, not -name.
func printDefaults(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		line += "\n    \t" + strings.ReplaceAll(usage, "\n", "\n    \t")
		if def := f.DefValue; def != "" && def != "false" && def != "0" {
			if reflect.Indirect(reflect.ValueOf(f.Value)).Kind() == reflect.String {
				def = strconv.Quote(def)
			}
			line += " (default " + def + ")"
		}
		fmt.Fprintln(w, line)
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// versionString names this build and the go-redis it links.
func versionString() string {
	v, goredis := "(devel)", "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, d := range bi.Deps {
			if d.Path == "github.com/redis/go-redis/v9" {
				goredis = d.Version
			}
		}
	}
	return fmt.Sprintf("rediskit %s (go-redis %s)", v, goredis)
}
