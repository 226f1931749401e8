#!/usr/bin/env bash
# Runs every fuzz target of rediskit for a fixed time and prints a Markdown
# table: target, time, executions, new corpus entries, crashes.
#
#   scripts/fuzz.sh            # 30 s per target
#   FUZZTIME=10s scripts/fuzz.sh
#
# A crash leaves its input in <package>/testdata/fuzz/<Target>/: check it
# in as a regression test and fix the bug. CI does not run this script; the
# seed corpora run in every `go test`.
set -u
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-30s}
targets=(
	".:FuzzParseURL"
	"./session:FuzzParseToken"
	"./session:FuzzCookieHeader"
	"./session:FuzzStoredSession"
	"./cache:FuzzDecodeHeader"
	"./cache:FuzzEscapeGlob"
	"./cache:FuzzTypedDecode"
)
echo "| target | package | time | execs | new corpus entries | crashes |"
echo "|---|---|---|---|---|---|"
status=0
for t in "${targets[@]}"; do
	pkg=${t%%:*}
	name=${t##*:}
	log=$(mktemp)
	go test "$pkg" -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" -parallel 2 >"$log" 2>&1
	rc=$?
	last=$(grep -E '^fuzz: elapsed' "$log" | tail -1)
	execs=$(sed -nE 's/.*execs: ([0-9]+).*/\1/p' <<<"$last")
	news=$(sed -nE 's/.*new interesting: ([0-9]+).*/\1/p' <<<"$last")
	crashes=0
	if [ $rc -ne 0 ]; then
		crashes=1
		status=1
		grep -E 'Failing input written to|--- FAIL' "$log" >&2
	fi
	echo "| $name | ${pkg#./} | $FUZZTIME | ${execs:-?} | ${news:-?} | $crashes |"
	rm -f "$log"
done
exit $status
