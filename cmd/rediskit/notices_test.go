package main

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// demoDevice is one browser of the demo: its own cookie jar.
type demoDevice struct {
	t    *testing.T
	c    *http.Client
	base string
}

func newDemoDevice(t *testing.T, base string) *demoDevice {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &demoDevice{t: t, c: &http.Client{Jar: jar, Timeout: 10 * time.Second}, base: base}
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// page loads path and returns the body.
func (d *demoDevice) page(path string) string {
	d.t.Helper()
	resp, body := get(d.t, d.c, d.base+path)
	if resp.StatusCode != 200 {
		d.t.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
	return body
}

// post submits a form of the page at from (which holds the CSRF token).
func (d *demoDevice) post(from, path string, form url.Values) string {
	d.t.Helper()
	m := csrfRe.FindStringSubmatch(d.page(from))
	if m == nil {
		d.t.Fatalf("%s has no CSRF token", from)
	}
	form.Set("csrf", m[1])
	resp, err := d.c.PostForm(d.base+path, form)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		d.t.Fatalf("POST %s: %d %s", path, resp.StatusCode, b)
	}
	return string(b)
}

func (d *demoDevice) signIn(user string) {
	d.t.Helper()
	d.post("/demo/", "/demo/login", url.Values{"user": {user}})
}

var noticeRe = regexp.MustCompile(`<p class="notice"[^>]*>([^<]*)`)

func noticesOf(body string) []string {
	var out []string
	for _, m := range noticeRe.FindAllStringSubmatch(body, -1) {
		out = append(out, strings.TrimSpace(m[1]))
	}
	return out
}

// awaitNotice loads path until the page shows a notice (the event reaches
// the subscriber within a poll; 20 s at most) and returns the notices.
func (d *demoDevice) awaitNotice(path string) []string {
	d.t.Helper()
	for range 200 {
		if n := noticesOf(d.page(path)); len(n) > 0 {
			return n
		}
		time.Sleep(100 * time.Millisecond)
	}
	d.t.Fatalf("%s never showed a notice", path)
	return nil
}

// TestServeDemoOtherDeviceSignedOut: the demo subscribes to session events
// and tells a signed-in user, once, on the next page, that another of
// their devices was signed out: by signing out there, or by the cap on
// devices. The device that revoked another itself gets no notice of it, and
// a device signed in after a revocation hears nothing of it. On the
// embedded redis-server and on the in-process fallback.
func TestServeDemoOtherDeviceSignedOut(t *testing.T) {
	t.Parallel()
	for _, srv := range []struct {
		name string
		env  []string
	}{{"redis-server", nil}, {"in-process", []string{"PATH=" + t.TempDir()}}} {
		t.Run(srv.name, func(t *testing.T) {
			t.Parallel()
			demoOtherDeviceSignedOut(t, startServe(t, srv.env))
		})
	}
}

func demoOtherDeviceSignedOut(t *testing.T, s *server) {
	laptop, phone, tablet := newDemoDevice(t, s.base), newDemoDevice(t, s.base), newDemoDevice(t, s.base)
	for _, d := range []*demoDevice{laptop, phone, tablet} {
		d.signIn("alice")
	}
	if n := noticesOf(phone.page("/demo/sessions")); len(n) != 0 {
		t.Fatalf("notices before any sign-out: %q", n)
	}

	// The laptop signs out: the phone's next page says so, once.
	laptop.post("/demo/", "/demo/logout", url.Values{})
	if got := phone.awaitNotice("/demo/"); len(got) != 1 || !strings.HasPrefix(got[0], "Another device of yours was signed out.") {
		t.Fatalf("phone's notices: %q", got)
	}
	if n := noticesOf(phone.page("/demo/")); len(n) != 0 {
		t.Fatalf("the notice came again: %q", n)
	}
	// The tablet has its own copy.
	if got := tablet.awaitNotice("/demo/sessions"); len(got) != 1 {
		t.Fatalf("tablet's notices: %q", got)
	}
	// A device signed in afterwards hears nothing of it.
	late := newDemoDevice(t, s.base)
	late.signIn("alice")
	if n := noticesOf(late.page("/demo/")); len(n) != 0 {
		t.Fatalf("a later device got %q", n)
	}

	// The phone revokes the tablet: the phone, which did it, gets no
	// notice; the later device does.
	handle := regexp.MustCompile(`<tr data-handle="([^"]+)">`) // not .current
	body := phone.page("/demo/sessions")
	// Oldest first: the phone (current), the tablet, the later device.
	m := handle.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no other device on the phone's sessions page:\n%s", body)
	}
	phone.post("/demo/sessions", "/demo/sessions/revoke", url.Values{"handle": {m[1]}})
	if got := late.awaitNotice("/demo/"); len(got) != 1 {
		t.Fatalf("later device's notices: %q", got)
	}
	// By now the subscriber has the event: the phone's page would show it.
	if n := noticesOf(phone.page("/demo/")); len(n) != 0 {
		t.Fatalf("the revoking device got %q", n)
	}

	// The cap: ten devices of bob, and an eleventh signs the oldest out.
	var bobs []*demoDevice
	for range 11 {
		d := newDemoDevice(t, s.base)
		d.signIn("bob")
		bobs = append(bobs, d)
	}
	if got := bobs[1].awaitNotice("/demo/"); len(got) != 1 || !strings.Contains(got[0], "too many devices") {
		t.Fatalf("bob's notices: %q", got)
	}
	if body := bobs[0].page("/demo/"); !strings.Contains(body, `id="login"`) {
		t.Fatal("bob's oldest device is still signed in")
	}
	s.stop(t)
}
