package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

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
// changes nothing costs exactly one Redis command (Store.Get: an HGETALL,
// followed once per Options.TouchInterval by the touch script that slides
// the idle expiry); a request that changes something costs one more.
type Manager struct {
	store *Store
	opts  ManagerOptions
	key   *ctxKey
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
	return &Manager{store: store, opts: opts, key: &ctxKey{name: c.Name}}
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

// entry is one value of the request's session: its codec bytes, and the Go
// value when the handler put it in this request.
type entry struct {
	raw    string
	val    any
	hasVal bool
}

// state is the per-request session. Handlers may use it from several
// goroutines, hence the mutex.
type state struct {
	mu     sync.Mutex
	m      *Manager
	r      *http.Request
	id     string // "" until the session exists in Redis
	userID string
	info   Info
	// loaded is the hash of the session as Get read it ("d:<key>" →
	// envelope and codec bytes), read in place until the first change;
	// values is nil until then, and from then on holds every value.
	loaded map[string]string
	values map[string]entry
	// dirty holds the keys changed in this request: set if present in
	// values, deleted otherwise. nil until the first change.
	dirty        map[string]struct{}
	persist      bool
	persistDirty bool
	setCookie    bool // send the current ID
	clearCookie  bool // tell the client to drop its cookie
	committed    bool
	encodeErr    error
	header       http.Header
}

func (m *Manager) state(ctx context.Context) *state {
	st, ok := ctx.Value(m.key).(*state)
	if !ok {
		panic("session: no session in context: wrap the handler with Manager.LoadAndSave")
	}
	return st
}

// tokenFromRequest returns the well-formed token of the request's cookie.
// present reports whether the request carried the cookie at all.
func (m *Manager) tokenFromRequest(r *http.Request) (tok string, present bool) {
	c, err := r.Cookie(m.opts.Cookie.Name)
	if err != nil {
		return "", false
	}
	if !ValidToken(c.Value) {
		return "", true
	}
	return c.Value, true
}

// LoadAndSave is the middleware. It answers through ErrorHandler (and does
// not call next) when the session cannot be loaded for a reason other than
// "not found"; a missing, expired or malformed cookie just starts an empty
// session.
func (m *Manager) LoadAndSave(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := &state{m: m, r: r, header: w.Header(), persist: m.opts.Cookie.Persist}
		tok, present := m.tokenFromRequest(r)
		if tok != "" {
			sess, err := m.store.Get(r.Context(), tok)
			switch {
			case err == nil:
				st.load(sess)
			case errors.Is(err, ErrNotFound):
				st.clearCookie = true
			default:
				m.opts.Logger.LogAttrs(r.Context(), slog.LevelError, "session: load failed",
					slog.String("handle", hashToken(tok)), slog.String("error", err.Error()))
				m.opts.ErrorHandler(w, r, err)
				return
			}
		} else if present {
			st.clearCookie = true
		}
		sw := &writer{ResponseWriter: w, st: st}
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), m.key, st)))
		sw.commit()
	})
}

func (st *state) load(s *Session) {
	st.id = s.id
	st.userID = s.info.UserID
	st.info = s.info
	st.persist = s.info.Persist || st.m.opts.Cookie.Persist
	st.loaded = s.fields
}

// lookup returns the value under key.
func (st *state) lookup(key string) (entry, bool) {
	if st.values != nil {
		e, ok := st.values[key]
		return e, ok
	}
	v, ok := st.loaded["d:"+key]
	if !ok {
		return entry{}, false
	}
	return entry{raw: v[1:]}, true // the envelope was checked by Store.Get
}

// change returns the values to modify and marks key dirty ("" marks
// nothing): the loaded hash is copied into values at the first change.
func (st *state) change(key string) map[string]entry {
	if st.values == nil {
		st.values = make(map[string]entry, len(st.loaded))
		for k, v := range st.loaded {
			if strings.HasPrefix(k, "d:") {
				st.values[k[2:]] = entry{raw: v[1:]}
			}
		}
		st.loaded = nil
	}
	if key != "" {
		if st.dirty == nil {
			st.dirty = make(map[string]struct{})
		}
		st.dirty[key] = struct{}{}
	}
	return st.values
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
			slog.String("handle", w.st.info.Handle), slog.String("error", err.Error()))
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

// save writes the request's changes (at most one Redis call) and sets the
// cookie headers. It runs once, before the response is committed.
func (st *state) save() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.committed = true
	if st.encodeErr != nil {
		return st.encodeErr
	}
	ctx := st.r.Context()
	if len(st.dirty) > 0 || st.persistDirty {
		if st.id == "" {
			if err := st.createLocked(ctx, st.userID); err != nil {
				return err
			}
		} else {
			set := make(map[string][]byte, len(st.dirty))
			var del []string
			for k := range st.dirty {
				if e, ok := st.lookup(k); ok {
					set[k] = append([]byte{envelopeV1}, e.raw...)
				} else {
					del = append(del, k)
				}
			}
			var persist *bool
			if st.persistDirty {
				persist = &st.persist
				st.setCookie = true
			}
			_, err := st.m.store.updateRaw(ctx, st.id, set, del, persist, 0)
			switch {
			case errors.Is(err, ErrNotFound):
				// Deleted elsewhere during this request ("log out
				// everywhere"): the change is dropped, never resurrected.
				st.m.opts.Logger.LogAttrs(ctx, slog.LevelInfo, "session: ended during the request; changes dropped",
					slog.String("handle", st.info.Handle))
				st.resetLocked()
			case err != nil:
				return err
			}
		}
		st.dirty = nil
		st.persistDirty = false
	}
	h := st.header
	switch {
	case st.setCookie && st.id != "":
		c := st.m.cookie(st.id)
		if st.persist {
			c.Expires = st.info.Deadline.UTC()
			c.MaxAge = max(1, int(time.Until(st.info.Deadline).Seconds()))
		}
		addCookie(h, c)
	case st.clearCookie:
		c := st.m.cookie("")
		c.MaxAge = -1
		c.Expires = time.Unix(1, 0)
		addCookie(h, c)
	}
	return nil
}

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

// createLocked stores the request's values as a new session of userID.
func (st *state) createLocked(ctx context.Context, userID string) error {
	values := st.change("")
	enc := make(map[string][]byte, len(values))
	for k, e := range values {
		enc[k] = append([]byte{envelopeV1}, e.raw...)
	}
	ua := st.r.UserAgent()
	if len(ua) > maxMetaBytes {
		ua = ua[:maxMetaBytes]
	}
	ip := st.m.opts.ClientIP(st.r)
	if len(ip) > maxMetaBytes {
		ip = ip[:maxMetaBytes]
	}
	s, err := st.m.store.createRaw(ctx, userID, enc, CreateOptions{IP: ip, UserAgent: ua, Persist: st.persist})
	if err != nil {
		return err
	}
	st.id, st.userID, st.info = s.id, userID, s.info
	st.setCookie, st.clearCookie = true, false
	st.dirty = nil
	st.persistDirty = false
	return nil
}

func (st *state) resetLocked() {
	st.id, st.userID, st.info = "", "", Info{}
	st.loaded, st.values, st.dirty = nil, nil, nil
	st.persistDirty = false
	st.setCookie, st.clearCookie = false, true
}

var errCommitted = errors.New("session: the response is already committed")

func (st *state) warnIfCommitted(op string) {
	if st.committed {
		st.m.opts.Logger.LogAttrs(st.r.Context(), slog.LevelWarn,
			"session: changed after the response was committed; the change is not saved", slog.String("op", op))
	}
}

// Put sets key to val in the request's session. The value is encoded with
// the store's codec now; an encoding error fails the save (ErrorHandler).
// Put after the response is committed is not saved, and logged.
func (m *Manager) Put(ctx context.Context, key string, val any) {
	st := m.state(ctx)
	b, err := m.store.encode(key, val)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.warnIfCommitted("put")
	if err != nil {
		st.encodeErr = fmt.Errorf("session: put: %w", err)
		return
	}
	st.change(key)[key] = entry{raw: string(b[1:]), val: val, hasVal: true}
}

// Get returns the value under key, or nil. A value put in this request is
// returned as put; one loaded from Redis is decoded into an any (with the
// JSON codec, numbers come back as float64: use GetInt and friends).
func (m *Manager) Get(ctx context.Context, key string) any {
	st := m.state(ctx)
	st.mu.Lock()
	e, _ := st.lookup(key)
	st.mu.Unlock()
	if e.hasVal {
		return e.val
	}
	var v any
	if err := m.Decode(ctx, key, &v); err != nil {
		return nil
	}
	return v
}

// Decode decodes the value under key into dst (a pointer). It returns
// ErrNoValue when there is none and ErrCorrupt when it cannot be decoded.
func (m *Manager) Decode(ctx context.Context, key string, dst any) error {
	st := m.state(ctx)
	st.mu.Lock()
	e, ok := st.lookup(key)
	st.mu.Unlock()
	if !ok {
		return ErrNoValue
	}
	if err := m.store.opts.Codec.Unmarshal([]byte(e.raw), dst); err != nil {
		return fmt.Errorf("%w: value %q: %v", ErrCorrupt, key, err)
	}
	return nil
}

func getAs[T any](m *Manager, ctx context.Context, key string) T {
	st := m.state(ctx)
	st.mu.Lock()
	e, ok := st.lookup(key)
	st.mu.Unlock()
	var zero T
	if !ok {
		return zero
	}
	if e.hasVal {
		if v, ok := e.val.(T); ok {
			return v
		}
	}
	var v T
	if err := m.store.opts.Codec.Unmarshal([]byte(e.raw), &v); err != nil {
		return zero
	}
	return v
}

// GetString returns the string under key, or "" if missing or not a string.
func (m *Manager) GetString(ctx context.Context, key string) string {
	return getAs[string](m, ctx, key)
}

// GetInt returns the int under key, or 0 if missing or not an int.
func (m *Manager) GetInt(ctx context.Context, key string) int { return getAs[int](m, ctx, key) }

// GetInt64 returns the int64 under key, or 0 if missing or not an int64.
func (m *Manager) GetInt64(ctx context.Context, key string) int64 { return getAs[int64](m, ctx, key) }

// GetFloat returns the float64 under key, or 0 if missing or not a number.
func (m *Manager) GetFloat(ctx context.Context, key string) float64 {
	return getAs[float64](m, ctx, key)
}

// GetBool returns the bool under key, or false if missing or not a bool.
func (m *Manager) GetBool(ctx context.Context, key string) bool { return getAs[bool](m, ctx, key) }

// GetBytes returns the []byte under key, or nil if missing or not bytes.
func (m *Manager) GetBytes(ctx context.Context, key string) []byte { return getAs[[]byte](m, ctx, key) }

// GetTime returns the time.Time under key, or the zero time.
func (m *Manager) GetTime(ctx context.Context, key string) time.Time {
	return getAs[time.Time](m, ctx, key)
}

// Pop returns the value under key and removes it: a flash message.
func (m *Manager) Pop(ctx context.Context, key string) any {
	v := m.Get(ctx, key)
	m.Remove(ctx, key)
	return v
}

// PopString returns the string under key and removes it.
func (m *Manager) PopString(ctx context.Context, key string) string {
	v := m.GetString(ctx, key)
	m.Remove(ctx, key)
	return v
}

// PopInt returns the int under key and removes it.
func (m *Manager) PopInt(ctx context.Context, key string) int {
	v := m.GetInt(ctx, key)
	m.Remove(ctx, key)
	return v
}

// PopBool returns the bool under key and removes it.
func (m *Manager) PopBool(ctx context.Context, key string) bool {
	v := m.GetBool(ctx, key)
	m.Remove(ctx, key)
	return v
}

// Remove deletes key from the session. Removing a missing key changes
// nothing and costs no write.
func (m *Manager) Remove(ctx context.Context, key string) {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, ok := st.lookup(key); !ok {
		return
	}
	st.warnIfCommitted("remove")
	delete(st.change(key), key)
}

// Clear removes every value, keeping the session and its ID.
func (m *Manager) Clear(ctx context.Context) {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	for k := range st.change("") {
		st.change(k)
	}
	clear(st.values)
}

// Exists reports whether the session holds a value under key.
func (m *Manager) Exists(ctx context.Context, key string) bool {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	_, ok := st.lookup(key)
	return ok
}

// Keys returns the session's keys, sorted.
func (m *Manager) Keys(ctx context.Context) []string {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	keys := make([]string, 0, len(st.values)+len(st.loaded))
	for k := range st.values {
		keys = append(keys, k)
	}
	for k := range st.loaded {
		if strings.HasPrefix(k, "d:") {
			keys = append(keys, k[2:])
		}
	}
	sort.Strings(keys)
	return keys
}

// UserID returns the user the session belongs to, "" if anonymous.
func (m *Manager) UserID(ctx context.Context) string {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.userID
}

// Info returns the metadata of the request's session; ok is false when the
// session is not stored yet.
func (m *Manager) Info(ctx context.Context) (info Info, ok bool) {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.info, st.id != ""
}

// RememberMe makes the cookie persistent (true: it expires at the session's
// absolute deadline) or a browser-session cookie (false).
func (m *Manager) RememberMe(ctx context.Context, v bool) {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.warnIfCommitted("remember me")
	st.persist, st.persistDirty = v, true
}

// RenewToken gives the session a new ID now (Store.Rotate), keeping its
// values; the new cookie goes out with the response. Call it on privilege
// change. For a session not stored yet it does nothing: it will get a fresh
// ID when saved. It fails after the response is committed.
func (m *Manager) RenewToken(ctx context.Context) error {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.committed {
		return errCommitted
	}
	if st.id == "" {
		return nil
	}
	id, err := m.store.Rotate(ctx, st.id)
	if err != nil {
		return err
	}
	st.id, st.setCookie, st.clearCookie = id, true, false
	st.info.Handle = hashToken(id)
	return nil
}

// Login binds the session to userID under a new ID, keeping its values:
// call it when a user signs in. For the same user it is RenewToken. For
// another user (or an anonymous session) the values move to a new session
// in the user's slot and the old one is deleted: two Redis calls, since
// the two live in different hash slots.
func (m *Manager) Login(ctx context.Context, userID string) error {
	if userID == "" {
		return errors.New("session: login: empty user ID")
	}
	st := m.state(ctx)
	st.mu.Lock()
	if st.committed {
		st.mu.Unlock()
		return errCommitted
	}
	if st.id != "" && st.userID == userID {
		st.mu.Unlock()
		return m.RenewToken(ctx)
	}
	defer st.mu.Unlock()
	old := st.id
	if err := st.createLocked(ctx, userID); err != nil {
		return err
	}
	if old != "" {
		if _, err := m.store.Delete(ctx, old); err != nil {
			return err
		}
	}
	return nil
}

// Destroy deletes the session now and tells the client to drop its cookie.
// Values put afterwards start a new anonymous session.
func (m *Manager) Destroy(ctx context.Context) error {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.committed {
		return errCommitted
	}
	if st.id != "" {
		if _, err := m.store.Delete(ctx, st.id); err != nil {
			return err
		}
	}
	st.resetLocked()
	return nil
}

// LogoutEverywhere deletes every session of the request's user (all
// devices), including this one, and returns how many there were.
func (m *Manager) LogoutEverywhere(ctx context.Context) (int, error) {
	st := m.state(ctx)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.committed {
		return 0, errCommitted
	}
	if st.userID == "" {
		return 0, errors.New("session: logout everywhere: anonymous session")
	}
	n, err := m.store.DeleteByUser(ctx, st.userID)
	if err != nil {
		return 0, err
	}
	st.resetLocked()
	return n, nil
}
