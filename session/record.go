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

// field is one value of a session.
type field struct {
	key string
	v   sealed
}

// record is a session as stored: its metadata line, user and device, and
// its values in stored order.
type record struct {
	meta, user, device string
	vals               []field
}

// parseRecord reads a stored session. Every value's envelope is checked,
// so a value that was not written by this package is ErrCorrupt at once,
// not when decoded.
func parseRecord(raw string) (record, error) { return parseRecordInto(raw, nil) }

// parseRecordInto is parseRecord appending the values to vals (a buffer of
// the caller's, so a small session costs no allocation of its own).
func parseRecordInto(raw string, vals []field) (record, error) {
	r := record{vals: vals}
	if len(raw) == 0 || raw[0] != formatV2 {
		return r, fmt.Errorf("%w: unknown session format", ErrCorrupt)
	}
	nl := strings.IndexByte(raw, '\n')
	if nl < 0 {
		return r, fmt.Errorf("%w: no metadata", ErrCorrupt)
	}
	r.meta = raw[1:nl]
	rest := raw[nl+1:]
	var ok bool
	if r.user, rest, ok = cutNetstring(rest); !ok {
		return r, fmt.Errorf("%w: user", ErrCorrupt)
	}
	if r.device, rest, ok = cutNetstring(rest); !ok {
		return r, fmt.Errorf("%w: device info", ErrCorrupt)
	}
	for rest != "" {
		var k, v string
		if k, rest, ok = cutNetstring(rest); !ok {
			return r, fmt.Errorf("%w: value name", ErrCorrupt)
		}
		if v, rest, ok = cutNetstring(rest); !ok {
			return r, fmt.Errorf("%w: value %q", ErrCorrupt, k)
		}
		if err := sealed(v).check(); err != nil {
			return r, fmt.Errorf("value %q: %w", k, err)
		}
		r.vals = append(r.vals, field{k, sealed(v)})
	}
	return r, nil
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
	j := 0
	for j < len(s) && s[j] != sep {
		j++
	}
	if j == 0 || j == len(s) || j > max {
		return 0, "", false
	}
	d, neg := s[:j], false
	if d[0] == '+' || d[0] == '-' {
		d, neg = d[1:], d[0] == '-'
	}
	if len(d) == 0 || len(d) > 18 { // 18 digits cannot overflow
		v, err := strconv.ParseInt(s[:j], 10, 64)
		return v, s[j+1:], err == nil
	}
	for i := 0; i < len(d); i++ {
		c := d[i] - '0'
		if c > 9 {
			return 0, "", false
		}
		n = n*10 + int64(c)
	}
	if neg {
		n = -n
	}
	return n, s[j+1:], true
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

// recordOf is the record of a session just created with values.
func recordOf(user, device string, values map[string]sealed) record {
	r := record{user: user, device: device, vals: make([]field, 0, len(values))}
	for k, v := range values {
		r.vals = append(r.vals, field{k, v})
	}
	return r
}

// value returns the sealed value under key.
func (r record) value(key string) (sealed, bool) {
	for _, f := range r.vals {
		if f.key == key {
			return f.v, true
		}
	}
	return "", false
}

// eachValue calls fn with every value, in stored order.
func (r record) eachValue(fn func(key string, v sealed)) {
	for _, f := range r.vals {
		fn(f.key, f.v)
	}
}

// keys returns the names of the values, sorted.
func (r record) keys() []string {
	keys := make([]string, len(r.vals))
	for i, f := range r.vals {
		keys[i] = f.key
	}
	sort.Strings(keys)
	return keys
}

// decode reads the metadata of the session named by handle.
func (r record) decode(handle string) (info Info, version int64, err error) {
	info.Handle = handle
	if version, err = parseMeta(r.meta, &info); err != nil {
		return info, 0, err
	}
	info.UserID = r.user
	if info.IP, info.UserAgent, err = unpackDevice(r.device); err != nil {
		return info, 0, err
	}
	return info, version, nil
}

// appendValues appends the key/value pairs of values to script arguments.
func appendValues(args []any, values map[string]sealed) []any {
	for k, v := range values {
		args = append(args, k, string(v))
	}
	return args
}

// parseMeta reads the metadata line "created,last-seen,idle,deadline,
// version,persist" into info and returns the version.
func parseMeta(m string, info *Info) (int64, error) {
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
	info.CreatedAt = time.UnixMilli(n[0])
	info.IdleTimeout = time.Duration(n[2]) * time.Millisecond
	info.Deadline = time.UnixMilli(n[3])
	info.seen(time.UnixMilli(n[1]))
	info.Persist = rest == "1"
	return n[4], nil
}

// seen sets LastSeen to t and ExpiresAt to what follows from it.
func (info *Info) seen(t time.Time) {
	info.LastSeen = t
	info.ExpiresAt = t.Add(info.IdleTimeout)
	if info.Deadline.Before(info.ExpiresAt) {
		info.ExpiresAt = info.Deadline
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
