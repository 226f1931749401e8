package session

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The storage format of a session: this file and the scripts in scripts.go
// are the only code that knows it. A session is one string key, so a Get is
// one GET, the cheapest read Redis has (BenchmarkSessionGet in bench/ puts
// it beside a bare GET of the same bytes):
//
//	0x02 meta "\n" user device (key value)...
//
// meta is "created,last-seen,idle,deadline,version,persist" (times and idle
// in ms, persist 0 or 1); user (the user ID, "" for an anonymous session),
// device (len(ip) ":" ip user-agent) and every key and value are
// netstrings: the decimal byte length, ":", the bytes. A value is sealed:
// the envelope byte, then the codec's bytes.
//
// Values travel sealed (envelope included) from the moment they are
// encoded until they reach Redis, and from Redis until they are decoded:
// nothing between strips or re-adds the envelope. A record is read in
// place: its fields are substrings of the one string Redis returned.
//
// The first version stored a hash (fields m, u, x and d:<key>). The
// scripts convert such a session to this form the first time they touch it
// (TestUpgradeFromHash); a Get that meets one runs the Get script, which
// does.
const formatV2 = 0x02

// envelopeV1 is the first byte of every stored value. A value that does not
// start with a known envelope byte is ErrCorrupt: it was not written by this
// package (or was written by a future version that a rollback cannot read).
const envelopeV1 = 0x01

// sealed is a stored value: the envelope byte, then the codec's bytes.
type sealed string

// seal encodes v with codec into a sealed value, in one allocation beyond
// the codec's.
func seal(codec Codec, v any) (sealed, error) {
	b, err := codec.Marshal(v)
	if err != nil {
		return "", err
	}
	var sb strings.Builder
	sb.Grow(1 + len(b))
	sb.WriteByte(envelopeV1)
	sb.Write(b)
	return sealed(sb.String()), nil
}

// check reports whether v carries a known envelope.
func (v sealed) check() error {
	if len(v) == 0 || v[0] != envelopeV1 {
		return fmt.Errorf("%w: unknown value envelope", ErrCorrupt)
	}
	return nil
}

// payload returns the codec's bytes, without copying. v must have passed
// check (every value of a decoded record has).
func (v sealed) payload() string { return string(v[1:]) }

// decode decodes v into dst; key names it in the error.
func (v sealed) decode(codec Codec, key string, dst any) error {
	if err := codec.Unmarshal([]byte(v.payload()), dst); err != nil {
		return fmt.Errorf("%w: value %q: %v", ErrCorrupt, key, err)
	}
	return nil
}

// loc locates a substring of a record's src.
type loc struct{ off, n uint32 }

// field is one value of a session: its key and its sealed value, located
// in the record's src. Offsets, not strings: a Session keeps a buffer of
// fields, which every request's state carries, and half the bytes are
// half the garbage.
type field struct{ k, v loc }

// record is the values of a session, in stored order.
type record struct {
	src  string // the string the fields locate
	vals []field
}

// at returns the substring of src that l locates.
func (r *record) at(l loc) string { return r.src[l.off : l.off+l.n] }

// parseRecord reads the stored session raw, named by handle: its metadata
// into md, its values into the record, appended to vals (a buffer of the
// caller's, so a small session costs no allocation of its own). It returns
// the version. Every value's envelope is checked, so a value that was not
// written by this package is ErrCorrupt at once, not when decoded.
func parseRecord(raw, handle string, vals []field, md *metadata) (r record, version int64, err error) {
	r = record{src: raw, vals: vals}
	if len(raw) == 0 || raw[0] != formatV2 {
		return r, 0, fmt.Errorf("%w: unknown session format", ErrCorrupt)
	}
	nl := strings.IndexByte(raw, '\n')
	if nl < 0 {
		return r, 0, fmt.Errorf("%w: no metadata", ErrCorrupt)
	}
	if version, err = parseMeta(raw[1:nl], md); err != nil {
		return r, 0, err
	}
	rest := raw[nl+1:]
	var ok bool
	if md.user, rest, ok = cutNetstring(rest); !ok {
		return r, 0, fmt.Errorf("%w: user", ErrCorrupt)
	}
	if md.device, rest, ok = cutNetstring(rest); !ok {
		return r, 0, fmt.Errorf("%w: device info", ErrCorrupt)
	}
	if _, _, err = unpackDevice(md.device); err != nil {
		return r, 0, err
	}
	md.handle = handle
	// Where a substring just cut ends: raw holds at most 512 MB (a Redis
	// string), so offsets fit in 32 bits.
	end := func() uint32 { return uint32(len(raw) - len(rest)) }
	for rest != "" {
		var k, v string
		if k, rest, ok = cutNetstring(rest); !ok {
			return r, 0, fmt.Errorf("%w: value name", ErrCorrupt)
		}
		ks := loc{end() - uint32(len(k)), uint32(len(k))}
		if v, rest, ok = cutNetstring(rest); !ok {
			return r, 0, fmt.Errorf("%w: value %q", ErrCorrupt, k)
		}
		if err := sealed(v).check(); err != nil {
			return r, 0, fmt.Errorf("value %q: %w", k, err)
		}
		r.vals = append(r.vals, field{ks, loc{end() - uint32(len(v)), uint32(len(v))}})
	}
	return r, version, nil
}

// cutNetstring splits "len:bytes rest" into bytes and rest. len has at
// most 10 characters.
func cutNetstring(s string) (v, rest string, ok bool) {
	n, rest, ok := cutDec(s, ':', 10)
	if !ok || n < 0 || n > int64(len(rest)) {
		return "", "", false
	}
	return rest[:n], rest[n:], true
}

// cutDec splits "number<sep>rest" at the first sep within max+1 bytes and
// parses the number as strconv.ParseInt(number, 10, 64) does (an optional
// sign, then digits), without its generality: reading a session parses
// nine of them (FuzzCutDec checks the two agree).
func cutDec(s string, sep byte, max int) (n int64, rest string, ok bool) {
	i, neg := 0, false
	for ; i < len(s) && s[i] != sep; i++ { // one pass: split and parse
		switch c := s[i] - '0'; {
		case c <= 9:
			n = n*10 + int64(c)
		case i == 0 && (s[0] == '+' || s[0] == '-'):
			neg = s[0] == '-'
		default:
			return 0, "", false
		}
	}
	digits := i
	if s != "" && (s[0] == '+' || s[0] == '-') {
		digits--
	}
	if i == len(s) || i > max || digits <= 0 {
		return 0, "", false
	}
	if digits > 18 { // 18 digits cannot overflow
		v, err := strconv.ParseInt(s[:i], 10, 64)
		return v, s[i+1:], err == nil
	}
	if neg {
		n = -n
	}
	return n, s[i+1:], true
}

// appendNetstring appends v as a netstring.
func appendNetstring(b []byte, v string) []byte {
	b = strconv.AppendInt(b, int64(len(v)), 10)
	b = append(b, ':')
	return append(b, v...)
}

// body encodes what follows the metadata line of a new session: user,
// device and values. Create sends it, and the script puts the metadata in
// front.
func body(user, device string, values map[string]sealed) string {
	n := len(user) + len(device) + 8
	for k, v := range values {
		n += len(k) + len(v) + 12
	}
	b := make([]byte, 0, n)
	b = appendNetstring(b, user)
	b = appendNetstring(b, device)
	for k, v := range values {
		b = appendNetstring(b, k)
		b = appendNetstring(b, string(v))
	}
	return string(b)
}

// recordOf is the record of a session just created with values: its
// src holds the keys and values one after the other.
func recordOf(values map[string]sealed) record {
	n := 0
	for k, v := range values {
		n += len(k) + len(v)
	}
	src := make([]byte, 0, n)
	r := record{vals: make([]field, 0, len(values))}
	for k, v := range values {
		ks := loc{uint32(len(src)), uint32(len(k))}
		src = append(src, k...)
		r.vals = append(r.vals, field{ks, loc{uint32(len(src)), uint32(len(v))}})
		src = append(src, v...)
	}
	r.src = string(src)
	return r
}

// value returns the sealed value under key.
func (r *record) value(key string) (sealed, bool) {
	for _, f := range r.vals {
		if r.at(f.k) == key {
			return sealed(r.at(f.v)), true
		}
	}
	return "", false
}

// eachValue calls fn with every value, in stored order.
func (r *record) eachValue(fn func(key string, v sealed)) {
	for _, f := range r.vals {
		fn(r.at(f.k), sealed(r.at(f.v)))
	}
}

// keys returns the names of the values, sorted.
func (r *record) keys() []string {
	keys := make([]string, len(r.vals))
	for i, f := range r.vals {
		keys[i] = r.at(f.k)
	}
	sort.Strings(keys)
	return keys
}

// appendValues appends the key/value pairs of values to script arguments.
func appendValues(args []any, values map[string]sealed) []any {
	for k, v := range values {
		args = append(args, k, string(v))
	}
	return args
}

// parseMeta reads the metadata line "created,last-seen,idle,deadline,
// version,persist" into md and returns the version.
func parseMeta(m string, md *metadata) (int64, error) {
	var n [5]int64
	rest := m
	for i := range n {
		v, r, ok := cutDec(rest, ',', len(rest))
		if !ok {
			return 0, fmt.Errorf("%w: metadata", ErrCorrupt)
		}
		n[i], rest = v, r
	}
	if rest != "0" && rest != "1" {
		return 0, fmt.Errorf("%w: metadata", ErrCorrupt)
	}
	md.created, md.idle, md.deadline = n[0], n[2], n[3]
	md.seen(n[1])
	md.persist = rest == "1"
	return n[4], nil
}

// metadata is a loaded session's Info as stored, times in Unix ms: a
// Session holds no time.Time, and Info builds them when asked. A request's
// state carries one, and every byte of it is allocated per request.
type metadata struct {
	handle, user string
	device       string // as stored: packDevice's
	// created, lastSeen, expires and deadline are Unix ms; idle is ms.
	created, lastSeen, expires, deadline, idle int64
	persist                                    bool
}

// seen sets last-seen to ms and the expiry that follows from it.
func (md *metadata) seen(ms int64) {
	md.lastSeen = ms
	md.expires = min(ms+md.idle, md.deadline)
}

// info returns md as an Info; the zero metadata (no session) gives the
// zero Info, with zero times.
func (md *metadata) info() Info {
	if *md == (metadata{}) {
		return Info{}
	}
	ip, ua, _ := unpackDevice(md.device) // checked when read
	return Info{
		Handle: md.handle, UserID: md.user, IP: ip, UserAgent: ua,
		CreatedAt: time.UnixMilli(md.created), LastSeen: time.UnixMilli(md.lastSeen),
		ExpiresAt: time.UnixMilli(md.expires), Deadline: time.UnixMilli(md.deadline),
		IdleTimeout: time.Duration(md.idle) * time.Millisecond, Persist: md.persist,
	}
}

// packDevice stores IP and user agent in one string: len(ip) ":" ip ua.
func packDevice(ip, ua string) string { return strconv.Itoa(len(ip)) + ":" + ip + ua }

func unpackDevice(x string) (ip, ua string, err error) {
	if x == "" {
		return "", "", nil
	}
	j := strings.IndexByte(x, ':')
	if j < 0 {
		return "", "", fmt.Errorf("%w: device info", ErrCorrupt)
	}
	n, perr := strconv.Atoi(x[:j])
	if perr != nil || n < 0 || n > len(x)-j-1 {
		return "", "", fmt.Errorf("%w: device info", ErrCorrupt)
	}
	return x[j+1 : j+1+n], x[j+1+n:], nil
}
