package session

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/rediskit/rediskit/retry"
)

// CookieOptions configures the session cookie. The zero value gives the
// safe defaults: HttpOnly, Secure, SameSite=Lax, Path=/, a browser-session
// cookie (no Expires) unless RememberMe or Persist says otherwise.
type CookieOptions struct {
	// Name is the cookie name. Default "session".
	Name string
	// Domain is the cookie's Domain attribute. Default none (host-only).
	Domain string
	// Path is the cookie's Path attribute. Default "/".
	Path string
	// ScriptAccess drops HttpOnly, letting page scripts read the cookie.
	// Default false.
	ScriptAccess bool
	// Insecure drops Secure, for plain-HTTP development. Default false.
	Insecure bool
	// SameSite is the SameSite attribute. Default http.SameSiteLaxMode.
	SameSite http.SameSite
	// Persist makes cookies outlive the browser session (Expires = the
	// session's absolute deadline) unless RememberMe(ctx, false) is called.
	// Default false: only RememberMe(ctx, true) makes a cookie persistent.
	Persist bool
}

// ManagerOptions configures a Manager. The zero value of every field means
// "use the default" stated in its comment.
type ManagerOptions struct {
	// Cookie configures the session cookie.
	Cookie CookieOptions
	// ErrorHandler answers a request whose session could not be loaded or
	// saved. Default: 503 Service Unavailable when Redis cannot be reached
	// (retry.IsUnavailable) or a write's outcome is unknown
	// (retry.ErrAmbiguous), 500 otherwise; the body is the status text.
	ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)
	// Logger receives load and save failures. Log records never contain a
	// session ID. Default slog.Default().
	Logger *slog.Logger
	// ClientIP extracts the device IP recorded with a new session. Default:
	// the host of r.RemoteAddr (put a trusted proxy's handling in front).
	ClientIP func(r *http.Request) string
}

// Manager is net/http middleware that loads the session named by the
// request's cookie, lets handlers read and change it through the request
// context, and saves it before the response is committed. A request that
// changes nothing costs exactly one Redis command (Store.Get: a GET,
// followed once per Options.TouchInterval by the touch script that slides
// the idle expiry); a request that changes something costs one more.
type Manager struct {
	store *Store
	opts  ManagerOptions
	key   *ctxKey
	// scan: the cookie name is a valid token, so cookieValue may look for
	// it in place of r.Cookie.
	scan bool
}

type ctxKey struct{ name string }

// NewManager returns a Manager over store. It panics if store is nil.
func NewManager(store *Store, opts ManagerOptions) *Manager {
	if store == nil {
		panic("session: NewManager with nil store")
	}
	c := &opts.Cookie
	if c.Name == "" {
		c.Name = "session"
	}
	if c.Path == "" {
		c.Path = "/"
	}
	if c.SameSite == 0 {
		c.SameSite = http.SameSiteLaxMode
	}
	if opts.ErrorHandler == nil {
		opts.ErrorHandler = DefaultErrorHandler
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ClientIP == nil {
		opts.ClientIP = remoteHost
	}
	return &Manager{store: store, opts: opts, key: &ctxKey{name: c.Name}, scan: isCookieName(c.Name)}
}

// Store returns the store the manager reads and writes.
func (m *Manager) Store() *Store { return m.store }

// DefaultErrorHandler answers 503 when err means Redis is unavailable or
// did not answer a write, and 500 otherwise, with the status text as body.
func DefaultErrorHandler(w http.ResponseWriter, _ *http.Request, err error) {
	code := http.StatusInternalServerError
	if retry.IsUnavailable(err) || errors.Is(err, retry.ErrUnavailable) || errors.Is(err, retry.ErrAmbiguous) {
		code = http.StatusServiceUnavailable
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	http.Error(w, http.StatusText(code), code)
}

func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// cookieValue returns the value of the request's first cookie named as the
// manager's, as r.Cookie does, without building every cookie of the header
// (FuzzCookieHeader checks that the two agree). Headers of more than
// scanCookies cookies, and cookie names that are not tokens, go to
// r.Cookie, which applies net/http's own limits to them.
func (m *Manager) cookieValue(r *http.Request) (string, bool) {
	lines := r.Header["Cookie"]
	n := 0
	for _, line := range lines {
		n += strings.Count(line, ";") + 1
	}
	if !m.scan || n > scanCookies {
		c, err := r.Cookie(m.opts.Cookie.Name)
		if err != nil {
			return "", false
		}
		return c.Value, true
	}
	for _, line := range lines {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			name, val, _ := strings.Cut(textproto.TrimString(part), "=")
			if textproto.TrimString(name) != m.opts.Cookie.Name {
				continue
			}
			if len(val) > 1 && val[0] == '"' && val[len(val)-1] == '"' {
				val = val[1 : len(val)-1]
			}
			if cookieValueOK(val) {
				return val, true
			}
		}
	}
	return "", false
}

// scanCookies bounds the cookies cookieValue reads itself: net/http's own
// bound (GODEBUG httpcookiemaxnum) is far above it.
const scanCookies = 64

// cookieValueOK reports whether net/http accepts v as a cookie's value.
func cookieValueOK(v string) bool {
	var bad byte
	for i := range len(v) { // no branch per byte: a session ID is 64 of them
		bad |= cookieByteBad[v[i]]
	}
	return bad == 0
}

// cookieByteBad is 1 for the bytes net/http refuses in a cookie's value.
var cookieByteBad = func() (t [256]byte) {
	for i := range t {
		if b := byte(i); b < 0x20 || b >= 0x7f || b == '"' || b == ';' || b == '\\' {
			t[i] = 1
		}
	}
	return t
}()

// isCookieName reports whether name is an HTTP token, as net/http requires
// of a cookie's name.
func isCookieName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		b := name[i]
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0) {
			return false
		}
	}
	return true
}

// LoadAndSave is the middleware. It answers through ErrorHandler (and does
// not call next) when the session cannot be loaded for a reason other than
// "not found"; a missing, expired or malformed cookie just starts an empty
// session.
func (m *Manager) LoadAndSave(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r, sp := m.traceRequest(r) // the request's Get and save are its children
		defer func() { sp.Done(nil) }()
		st := &state{Context: r.Context(), m: m, r: r, header: w.Header(), persist: m.opts.Cookie.Persist}
		// The store parses the token: a malformed one is a cookie to drop.
		if tok, present := m.cookieValue(r); present {
			err := m.store.get(r.Context(), tok, &st.snap)
			switch {
			case err == nil:
				sp.SetBool(AttrFound, true)
				st.load()
			case errors.Is(err, ErrNotFound) || errors.Is(err, ErrMalformedToken):
				st.clearCookie = true
			default:
				m.opts.Logger.LogAttrs(r.Context(), slog.LevelError, "session: load failed",
					slog.String("handle", hashToken(tok)), slog.String("error", err.Error()))
				m.opts.ErrorHandler(w, r, err)
				sp.Done(err)
				return
			}
		}
		// The state is the request's context (it answers Value(m.key) with
		// itself) and holds its writer: one allocation for both.
		st.w = writer{ResponseWriter: w, st: st}
		next.ServeHTTP(&st.w, r.WithContext(st))
		st.w.commit()
	})
}

// writer commits the session before the first byte of the response.
type writer struct {
	http.ResponseWriter
	st        *state
	committed bool
	failed    bool
}

var errSaveFailed = errors.New("session: response replaced by the error handler: saving the session failed")

func (w *writer) commit() bool {
	if w.committed {
		return !w.failed
	}
	w.committed = true
	if err := w.st.save(); err != nil {
		w.failed = true
		w.st.m.opts.Logger.LogAttrs(w.st.r.Context(), slog.LevelError, "session: save failed",
			slog.String("handle", w.st.snap.md.handle), slog.String("error", err.Error()))
		w.st.m.opts.ErrorHandler(w.ResponseWriter, w.st.r, err)
		return false
	}
	return true
}

// WriteHeader saves the session, then writes the header.
func (w *writer) WriteHeader(code int) {
	if w.commit() {
		w.ResponseWriter.WriteHeader(code)
	}
}

// Write saves the session before the first byte.
func (w *writer) Write(b []byte) (int, error) {
	if !w.commit() {
		return 0, errSaveFailed
	}
	return w.ResponseWriter.Write(b)
}

// Flush saves the session, then flushes if the underlying writer can.
func (w *writer) Flush() {
	if w.commit() {
		if f, ok := w.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func addCookie(h http.Header, c *http.Cookie) {
	if v := c.String(); v != "" {
		h.Add("Set-Cookie", v)
	}
	h.Add("Vary", "Cookie")
	h.Set("Cache-Control", "no-store")
}

func (m *Manager) cookie(value string) *http.Cookie {
	o := m.opts.Cookie
	return &http.Cookie{
		Name: o.Name, Value: value, Path: o.Path, Domain: o.Domain,
		HttpOnly: !o.ScriptAccess, Secure: !o.Insecure, SameSite: o.SameSite,
	}
}
