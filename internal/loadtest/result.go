package loadtest

import (
	"fmt"
	"strings"
	"time"
)

// KindResult is what happened to the operations of one kind.
type KindResult struct {
	Attempted  int64
	Outcomes   [NumOutcomes]int64
	MaxLatency time.Duration
	// SlowWhileOpen counts this kind's share of Result.SlowWhileOpen.
	SlowWhileOpen int64
}

// FaultResult is the recovery of one fault announced with Driver.Fault.
type FaultResult struct {
	Name string
	// Recovered is false when no operation succeeded after the fault ended.
	Recovered bool
	// Recovery is the time from the fault's end to the first operation of
	// any kind that Redis answered; SlowestKind the same for the kind that
	// took longest (among kinds run after the end), named by Kind.
	Recovery, SlowestKind time.Duration
	Kind                  Kind
	// ErrorWindow is the time from the fault's start to the last failed
	// operation (0 when none failed).
	ErrorWindow time.Duration
}

// Result holds the figures of one run. The driver fills in everything but
// the fields marked "set by the caller".
type Result struct {
	Name                 string // set by the caller
	Rate                 int
	Workers              int
	Elapsed              time.Duration
	Offered              int64 // operations due at the rate
	Shed                 int64 // due while every worker was busy: not run
	Attempted, Succeeded int64
	Outcomes             [NumOutcomes]int64
	Kinds                [NumKinds]KindResult
	Faults               []FaultResult

	// Calls started while the breaker was open, how many of them took at
	// least the client's ReadTimeout (only a half-open probe may), and the
	// longest.
	StartedWhileOpen, SlowWhileOpen int64
	MaxLatencyWhileOpen             time.Duration

	Panics     int64
	PanicStack string
	// OtherErrors samples the distinct errors of outcome Other; Samples
	// holds the first error of every other outcome.
	OtherErrors []string
	Samples     [NumOutcomes]string

	// The ledger at the end: live sessions, acknowledged deletes and
	// rotations, sessions dropped after an ambiguous create/rotate/delete.
	LiveSessions, DeletedIDs, Uncertain int64

	// Set by the caller.
	GoroutinesBefore, GoroutinesAfter int
	HeapBefore, HeapAfter             uint64
	BreakerOpens, BreakerRejected     uint64
	SessionAudit                      SessionAudit
	CounterAudit                      CounterAudit
	Command                           string
	Notes                             []string
}

func (d *Driver) result(elapsed time.Duration) *Result {
	r := &Result{Rate: d.cfg.Rate, Workers: d.cfg.Workers, Elapsed: elapsed,
		Offered: d.offered.Load(), Shed: d.shed.Load()}
	for k := range d.kinds {
		ks := &d.kinds[k]
		kr := &r.Kinds[k]
		kr.Attempted = ks.attempted.Load()
		kr.MaxLatency = time.Duration(ks.maxNs.Load())
		kr.SlowWhileOpen = ks.openSlow.Load()
		r.SlowWhileOpen += kr.SlowWhileOpen
		r.Attempted += kr.Attempted
		for o := range ks.outcomes {
			kr.Outcomes[o] = ks.outcomes[o].Load()
			r.Outcomes[o] += kr.Outcomes[o]
		}
	}
	r.Succeeded = r.Outcomes[OK]
	r.StartedWhileOpen = d.openStarted.Load()
	r.MaxLatencyWhileOpen = time.Duration(d.openMaxNs.Load())
	r.Panics = d.panics.Load()

	d.mu.Lock()
	r.PanicStack = d.panicStack
	r.OtherErrors = append([]string(nil), d.others...)
	r.Samples = d.samples
	for _, f := range d.faults {
		end := f.end
		fr := FaultResult{Name: f.name, Recovered: !f.firstOK.IsZero()}
		if end.IsZero() { // never ended: measured as if it had ended at Run's end
			end = f.start
		}
		if fr.Recovered {
			fr.Recovery = f.firstOK.Sub(end)
			for k, t := range f.firstOKKind {
				if !t.IsZero() && t.Sub(end) > fr.SlowestKind {
					fr.SlowestKind, fr.Kind = t.Sub(end), Kind(k)
				}
			}
		}
		if !f.lastFail.IsZero() {
			fr.ErrorWindow = f.lastFail.Sub(f.start)
		}
		r.Faults = append(r.Faults, fr)
	}
	d.mu.Unlock()

	d.ledger.mu.Lock()
	r.LiveSessions = int64(len(d.ledger.live))
	r.DeletedIDs = d.ledger.deadTotal
	d.ledger.mu.Unlock()
	r.Uncertain = d.ledger.uncertain.Load()
	return r
}

// Failed returns the number of attempted operations that did not end OK.
func (r *Result) Failed() int64 { return r.Attempted - r.Succeeded }

// MaxRecovery returns the longest Recovery and SlowestKind over the faults,
// and the number of faults after which nothing succeeded.
func (r *Result) MaxRecovery() (anyKind, slowestKind time.Duration, unrecovered int) {
	for _, f := range r.Faults {
		if !f.Recovered {
			unrecovered++
			continue
		}
		anyKind = max(anyKind, f.Recovery)
		slowestKind = max(slowestKind, f.SlowestKind)
	}
	return anyKind, slowestKind, unrecovered
}

// MaxErrorWindow returns the longest ErrorWindow over the faults.
func (r *Result) MaxErrorWindow() time.Duration {
	var w time.Duration
	for _, f := range r.Faults {
		w = max(w, f.ErrorWindow)
	}
	return w
}

// ReadErrors returns how many read operations (Kind.IsRead) did not end OK.
func (r *Result) ReadErrors() int64 {
	var n int64
	for k, kr := range r.Kinds {
		if Kind(k).IsRead() {
			n += kr.Attempted - kr.Outcomes[OK]
		}
	}
	return n
}

// Failures formats the non-OK outcomes as "class n, class n", or "none".
func (r *Result) Failures() string {
	return formatOutcomes(r.Outcomes)
}

func formatOutcomes(o [NumOutcomes]int64) string {
	var parts []string
	for i, n := range o {
		if Outcome(i) != OK && n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", Outcome(i), n))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// Markdown renders the result as a section of docs/RELIABILITY.md: a table
// of the figures, the recovery of each fault, and the operations per kind.
func (r *Result) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "#### %s\n\n", r.Name)
	if r.Command != "" {
		fmt.Fprintf(&b, "`%s`\n\n", r.Command)
	}
	any, slowest, unrec := r.MaxRecovery()
	row := func(k, v string) { fmt.Fprintf(&b, "| %s | %s |\n", k, v) }
	b.WriteString("| figure | value |\n|---|---|\n")
	row("rate × duration", fmt.Sprintf("%d ops/s × %.1f s, %d workers", r.Rate, r.Elapsed.Seconds(), r.Workers))
	row("offered / shed (no idle worker)", fmt.Sprintf("%d / %d", r.Offered, r.Shed))
	row("attempted", fmt.Sprint(r.Attempted))
	row("succeeded", fmt.Sprint(r.Succeeded))
	row("failed, by class", fmt.Sprintf("%d: %s", r.Failed(), r.Failures()))
	row("read errors (session.get, cache.get)", fmt.Sprint(r.ReadErrors()))
	if len(r.Faults) > 0 {
		rec := fmt.Sprintf("%s (slowest kind %s)", ms(any), ms(slowest))
		if unrec > 0 {
			rec += fmt.Sprintf(", %d fault(s) NOT recovered", unrec)
		}
		row("max recovery after fault end", rec)
		row("max error window from fault start", ms(r.MaxErrorWindow()))
	}
	if r.BreakerOpens > 0 || r.StartedWhileOpen > 0 {
		row("breaker opens / calls rejected", fmt.Sprintf("%d / %d", r.BreakerOpens, r.BreakerRejected))
		row("ops started while open / of them ≥ ReadTimeout / longest", fmt.Sprintf("%d / %d%s / %s", r.StartedWhileOpen, r.SlowWhileOpen, r.slowKinds(), ms(r.MaxLatencyWhileOpen)))
	}
	row("goroutines before → after", fmt.Sprintf("%d → %d", r.GoroutinesBefore, r.GoroutinesAfter))
	row("heap before → after (after GC)", fmt.Sprintf("%s → %s", mib(r.HeapBefore), mib(r.HeapAfter)))
	row("panics", fmt.Sprint(r.Panics))
	row("ledger: live / deleted / uncertain sessions", fmt.Sprintf("%d / %d / %d", r.LiveSessions, r.DeletedIDs, r.Uncertain))
	for _, n := range r.Notes {
		k, v, ok := strings.Cut(n, ": ")
		if !ok {
			k, v = n, ""
		}
		row(k, v)
	}
	if len(r.Faults) > 0 {
		b.WriteString("\n| fault | recovery (any op) | slowest kind | error window |\n|---|---|---|---|\n")
		for _, f := range r.Faults {
			if !f.Recovered {
				fmt.Fprintf(&b, "| %s | not recovered | | %s |\n", f.Name, ms(f.ErrorWindow))
				continue
			}
			fmt.Fprintf(&b, "| %s | %s | %s (%s) | %s |\n", f.Name, ms(f.Recovery), ms(f.SlowestKind), f.Kind, ms(f.ErrorWindow))
		}
	}
	b.WriteString("\n| op | attempted | ok | failed, by class | max latency |\n|---|---|---|---|---|\n")
	for k, kr := range r.Kinds {
		fmt.Fprintf(&b, "| %s | %d | %d | %s | %s |\n", Kind(k), kr.Attempted, kr.Outcomes[OK], formatOutcomes(kr.Outcomes), ms(kr.MaxLatency))
	}
	var samples []string
	for o, e := range r.Samples {
		if e != "" {
			samples = append(samples, fmt.Sprintf("- %s: `%s`", Outcome(o), e))
		}
	}
	for _, e := range r.OtherErrors {
		samples = append(samples, fmt.Sprintf("- other: `%s`", e))
	}
	if len(samples) > 0 {
		b.WriteString("\nFirst error of each class:\n\n" + strings.Join(samples, "\n") + "\n")
	}
	b.WriteString("\n")
	return b.String()
}

// slowKinds names the kinds of the calls counted in SlowWhileOpen, as
// " (session.get 1, cache.getorset 2)", or "" when there are none.
func (r *Result) slowKinds() string {
	var parts []string
	for k, kr := range r.Kinds {
		if kr.SlowWhileOpen > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", Kind(k), kr.SlowWhileOpen))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}
