package main

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// spinner shows msg with a spinner on stderr while long work runs, only when
// stdout is a terminal; the returned func stops it and clears the line.
func (e *env) spinner(msg string) (stop func()) {
	if !e.interactive {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		frames := `|/-\`
		tick := time.NewTicker(120 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			fmt.Fprintf(e.stderr, "\r%c %s", frames[i%len(frames)], msg)
			select {
			case <-done:
				fmt.Fprintf(e.stderr, "\r%s\r", strings.Repeat(" ", len(msg)+2))
				return
			case <-tick.C:
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

// progress draws "msg [#####.....] n/total" on stderr, only on a terminal.
// total may be 0 when unknown; then only the count is shown.
type progress struct {
	e     *env
	msg   string
	total int64
	mu    sync.Mutex
	last  time.Time
}

func (e *env) progress(msg string, total int64) *progress {
	return &progress{e: e, msg: msg, total: total}
}

func (p *progress) update(n int64) {
	if !p.e.interactive {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.last) < 50*time.Millisecond && n < p.total {
		return
	}
	p.last = time.Now()
	if p.total <= 0 {
		fmt.Fprintf(p.e.stderr, "\r%s %d", p.msg, n)
		return
	}
	const width = 30
	done := int(min(n, p.total) * width / p.total)
	fmt.Fprintf(p.e.stderr, "\r%s [%s%s] %d/%d", p.msg, strings.Repeat("#", done), strings.Repeat(".", width-done), n, p.total)
}

func (p *progress) finish() {
	if p.e.interactive {
		fmt.Fprintln(p.e.stderr)
	}
}
