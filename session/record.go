package session

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The storage format of a session: this file and the scripts in scripts.go
// are the only code that knows it. A session is one hash:
//
//	m        metadata "created,last-seen,idle,deadline,version,persist"
//	         (times and idle in ms, persist 0 or 1)
//	u        the user ID ("" for an anonymous session)
//	x        device info: len(ip) ":" ip user-agent
//	d:<key>  one value: the envelope byte, then the codec's bytes
//
// Values travel sealed (envelope included) from the moment they are
// encoded until they reach Redis, and from Redis until they are decoded:
// nothing between strips or re-adds the envelope.
const (
	fieldMeta   = "m"
	fieldUser   = "u"
	fieldDevice = "x"
	valuePrefix = "d:"
)

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

// record is a session hash as read from Redis, field by field. Get keeps
// the map go-redis made, so a value is copied only when decoded.
type record map[string]string

// recordFromReply reads the flat field, value, ... reply of a script.
func recordFromReply(res []any) record {
	r := make(record, len(res)/2)
	for i := 0; i+1 < len(res); i += 2 {
		k, _ := res[i].(string)
		v, _ := res[i+1].(string)
		r[k] = v
	}
	return r
}

// value returns the sealed value under key.
func (r record) value(key string) (sealed, bool) {
	v, ok := r[valuePrefix+key]
	return sealed(v), ok
}

// setValue stores the sealed value under key.
func (r record) setValue(key string, v sealed) { r[valuePrefix+key] = string(v) }

// eachValue calls fn with every value, in no particular order.
func (r record) eachValue(fn func(key string, v sealed)) {
	for k, v := range r {
		if key, ok := strings.CutPrefix(k, valuePrefix); ok {
			fn(key, sealed(v))
		}
	}
}

// keys returns the names of the values, sorted.
func (r record) keys() []string {
	keys := make([]string, 0, len(r))
	r.eachValue(func(k string, _ sealed) { keys = append(keys, k) })
	sort.Strings(keys)
	return keys
}

// decode checks the hash of the session named by handle and reads its
// metadata. Values stay as stored; only their envelopes are checked, so a
// value that was not written by this package is ErrCorrupt at once, not
// when decoded.
func (r record) decode(handle string) (info Info, version int64, err error) {
	info.Handle = handle
	m, ok := r[fieldMeta]
	if !ok {
		return info, 0, fmt.Errorf("%w: no metadata", ErrCorrupt)
	}
	if version, err = parseMeta(m, &info); err != nil {
		return info, 0, err
	}
	if info.UserID, ok = r[fieldUser]; !ok {
		return info, 0, fmt.Errorf("%w: no user field", ErrCorrupt)
	}
	if x, ok := r[fieldDevice]; ok {
		if info.IP, info.UserAgent, err = unpackDevice(x); err != nil {
			return info, 0, err
		}
	}
	r.eachValue(func(k string, v sealed) {
		if cerr := v.check(); cerr != nil && err == nil {
			err = fmt.Errorf("value %q: %w", k, cerr)
		}
	})
	return info, version, err
}

// appendValues appends the field/value pairs of values to script
// arguments.
func appendValues(args []any, values map[string]sealed) []any {
	for k, v := range values {
		args = append(args, valuePrefix+k, string(v))
	}
	return args
}

// appendValueFields appends the field names of keys to script arguments.
func appendValueFields(args []any, keys []string) []any {
	for _, k := range keys {
		args = append(args, valuePrefix+k)
	}
	return args
}

// parseMeta reads the packed metadata field "created,last-seen,idle,
// deadline,version,persist" into info and returns the version.
func parseMeta(m string, info *Info) (int64, error) {
	var n [5]int64
	rest := m
	for i := range n {
		j := strings.IndexByte(rest, ',')
		if j < 0 {
			return 0, fmt.Errorf("%w: metadata", ErrCorrupt)
		}
		v, err := strconv.ParseInt(rest[:j], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%w: metadata", ErrCorrupt)
		}
		n[i], rest = v, rest[j+1:]
	}
	if rest != "0" && rest != "1" {
		return 0, fmt.Errorf("%w: metadata", ErrCorrupt)
	}
	info.CreatedAt = time.UnixMilli(n[0])
	info.LastSeen = time.UnixMilli(n[1])
	info.IdleTimeout = time.Duration(n[2]) * time.Millisecond
	info.Deadline = time.UnixMilli(n[3])
	info.ExpiresAt = info.LastSeen.Add(info.IdleTimeout)
	if info.Deadline.Before(info.ExpiresAt) {
		info.ExpiresAt = info.Deadline
	}
	info.Persist = rest == "1"
	return n[4], nil
}

// packDevice stores IP and user agent in one field: len(ip) ":" ip ua.
func packDevice(ip, ua string) string { return strconv.Itoa(len(ip)) + ":" + ip + ua }

func unpackDevice(x string) (ip, ua string, err error) {
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
