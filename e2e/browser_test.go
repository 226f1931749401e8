// Package e2e drives the rediskit command's dashboard and demo application
// in a real headless Chromium. It is a module of its own so that the browser
// driver stays out of the core go.mod.
//
//	cd e2e && go test ./...
//
// It needs Debian's chromium (/usr/bin/chromium, or $CHROMIUM) and
// redis-server; without them it skips, except under CI=true, where it fails.
// REDISKIT_SCREENSHOT=path saves a screenshot of the dashboard there.
package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

func need(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s: %v (under CI=true this is a failure)", what, err)
	}
	t.Skipf("!!! SKIPPING browser test: %s: %v", what, err)
}

// serve builds the rediskit command and starts `rediskit serve` on an
// embedded Redis; it returns the base URL.
func serve(t *testing.T) string {
	t.Helper()
	_, err := exec.LookPath("redis-server")
	need(t, "redis-server", err)
	bin := filepath.Join(t.TempDir(), "rediskit")
	build := exec.Command("go", "build", "-o", bin, "./cmd/rediskit")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "serve", "--listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "REDIS_URL=")
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			t.Error("rediskit serve did not stop within 20 s of SIGTERM")
		}
	})
	urls := make(chan string, 1)
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		re := regexp.MustCompile(`dashboard on (http://\S+)/ `)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				urls <- m[1]
			}
		}
		_ = cmd.Wait()
	}()
	select {
	case u := <-urls:
		return u
	case <-time.After(30 * time.Second):
		t.Fatal("rediskit serve did not start within 30 s")
	}
	return ""
}

func browser(t *testing.T) context.Context {
	t.Helper()
	path := os.Getenv("CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	_, err := os.Stat(path)
	need(t, "chromium", err)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first Do starts the browser, which lives as long as ctx.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// device is a browser context of its own: its own cookies, like a second
// browser on another machine.
func device(t *testing.T, b context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	ctx, cancelT := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(cancelT)
	return ctx
}

func signIn(t *testing.T, ctx context.Context, base, user string) {
	t.Helper()
	err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/demo/"),
		chromedp.WaitVisible(chromedp.ID("user")),
		chromedp.SendKeys(chromedp.ID("user"), user),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.CSS("table#sessions")),
	)
	if err != nil {
		t.Fatalf("sign in as %s: %v", user, err)
	}
}

// rows counts the sessions listed on the "your sessions" page.
func rows(t *testing.T, ctx context.Context) int {
	t.Helper()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("table#sessions tbody tr[data-handle]").length`))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func text(t *testing.T, ctx context.Context, id string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID(id)))
	if err != nil {
		t.Fatalf("text of #%s: %v", id, err)
	}
	return strings.TrimSpace(s)
}

// waitText waits until the element's text satisfies ok (the context's
// deadline bounds the wait) and returns it.
func waitText(t *testing.T, ctx context.Context, id string, ok func(string) bool) string {
	t.Helper()
	for {
		s := text(t, ctx, id)
		if ok(s) {
			return s
		}
		select {
		case <-ctx.Done():
			t.Fatalf("#%s stayed %q", id, s)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitJS waits until the expression is true in the page, across page loads
// (an evaluation that meets a navigation is tried again).
func waitJS(t *testing.T, ctx context.Context, expr string) {
	t.Helper()
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err == nil && ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v (last error %v)", expr, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func TestBrowserSessionsAndDashboard(t *testing.T) {
	base := serve(t)
	b := browser(t)

	laptop := device(t, b)
	signIn(t, laptop, base, "alice")
	if n := rows(t, laptop); n != 1 {
		t.Fatalf("laptop sees %d sessions, want 1", n)
	}

	phone := device(t, b)
	signIn(t, phone, base, "alice")
	if n := rows(t, phone); n != 2 {
		t.Fatalf("phone sees %d sessions, want 2 (laptop and phone)", n)
	}
	// From the phone, revoke the laptop's session: the row that is not
	// "this device".
	err := chromedp.Do(phone, chromedp.Click(chromedp.CSS("table#sessions tbody tr[data-handle]:not(.current) button.revoke")))
	if err != nil {
		t.Fatalf("revoke from the phone: %v", err)
	}
	waitJS(t, phone, `(document.querySelector(".flash") || {}).textContent === "Session revoked."`)
	if n := rows(t, phone); n != 1 {
		t.Fatalf("after revoking the laptop, the phone sees %d sessions, want 1", n)
	}
	// The laptop's cookie is now worthless: it lands on the sign-in form.
	err = chromedp.Do(laptop,
		chromedp.Navigate(base+"/demo/sessions"),
		chromedp.WaitVisible(chromedp.ID("login")),
	)
	if err != nil {
		t.Fatalf("revoked laptop was not sent to sign in: %v", err)
	}

	// The laptop signs in again and signs out: the phone's next page says
	// that another device of alice's was signed out (the demo hears it from
	// the session events), where the revoke above, made by the phone
	// itself, said nothing.
	signIn(t, laptop, base, "alice")
	err = chromedp.Do(laptop,
		chromedp.Navigate(base+"/demo/"),
		chromedp.WaitVisible(chromedp.ID("logout")),
		chromedp.Click(chromedp.ID("logout")),
		chromedp.WaitVisible(chromedp.ID("login")),
	)
	if err != nil {
		t.Fatalf("laptop sign out: %v", err)
	}
	for {
		if err := chromedp.Do(phone, chromedp.Navigate(base+"/demo/sessions")); err != nil {
			t.Fatal(err)
		}
		notice, err := chromedp.Run(phone, chromedp.Evaluate[string](`(document.querySelector(".notice") || {}).textContent || ""`))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(notice, "Another device of yours was signed out.") {
			break
		}
		if notice != "" {
			t.Fatalf("phone's notice: %q", notice)
		}
		select {
		case <-phone.Done():
			t.Fatal("the phone never showed that the laptop signed out")
		case <-time.After(200 * time.Millisecond):
		}
	}

	// The dashboard counts two live sessions: the phone's, and the anonymous
	// one the laptop got when sent back to the sign-in form (its CSRF token
	// lives in a session). One of them has a user.
	dash := device(t, b)
	if err := chromedp.Do(dash, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("kpi-sessions"))); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	waitText(t, dash, "kpi-sessions", func(s string) bool { return s == "2" })
	waitText(t, dash, "kpi-sessions-sub", func(s string) bool { return s == "1 user" })
	before := text(t, dash, "kpi-hit-sub")
	// Two items, five calls: two misses, three hits (from Redis or, the demo
	// cache having a near tier, from process memory).
	for i := range 5 {
		resp, err := http.Get(base + "/demo/slow?item=" + strconv.Itoa(i%2))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	waitText(t, dash, "kpi-hit-sub", func(s string) bool {
		var hits, misses, near int
		n, _ := fmt.Sscanf(s, "%d hits · %d misses · %d near hits", &hits, &misses, &near)
		return s != before && n >= 2 && hits+near == 3 && misses == 2
	})

	if path := os.Getenv("REDISKIT_SCREENSHOT"); path != "" {
		// Let the charts gather a few seconds of points first.
		if err := chromedp.Do(dash, chromedp.Sleep(5*time.Second)); err != nil {
			t.Fatal(err)
		}
		png, err := chromedp.Run(dash, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
