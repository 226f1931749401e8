package session

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// FuzzParseToken: any input either fails with ErrMalformedToken or is a
// 64-character base64url token whose parts re-encode to itself; every
// 64 characters that base64url decodes to 48 bytes are accepted.
func FuzzParseToken(f *testing.F) {
	good, _, _ := newToken("", make([]byte, tagLen))
	for _, s := range []string{"", "x", good, good[:63], good + "A", strings.Repeat("=", 64),
		strings.Repeat("*", 64), good[:60] + "{}:*", good[:63] + "+", "\x00" + good[1:]} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		p, err := parseToken("p:", tok)
		if err != nil {
			if err != ErrMalformedToken {
				t.Fatalf("unexpected error %v", err)
			}
			if raw, err := b64.DecodeString(tok); err == nil && len(tok) == TokenLen && len(raw) == rawTokenLen {
				t.Fatalf("rejected well-formed %q", tok)
			}
			return
		}
		if len(tok) != TokenLen || strings.ContainsAny(tok, "{}*?[]\\=+/:") {
			t.Fatalf("accepted %q", tok)
		}
		raw, err := b64.DecodeString(tok)
		if err != nil || b64.EncodeToString(raw) != tok {
			t.Fatalf("accepted non-canonical %q", tok)
		}
		if p.tag != b64.EncodeToString(raw[:tagLen]) || p.handle != hashToken(tok) ||
			p.key != "p:{"+p.tag+"}:s:"+p.handle {
			t.Fatalf("bad parts for %q", tok)
		}
	})
}

// FuzzCookieHeader: whatever Cookie header lines a client sends (one per
// "\n" of the input), the manager finds exactly the cookie r.Cookie finds,
// and never panics.
func FuzzCookieHeader(f *testing.F) {
	good, _, _ := newToken("", make([]byte, tagLen))
	for _, s := range []string{"", "session=" + good, "session=" + good + "; other=1", "session=\"" + good + "\"",
		"session=", "session=a; session=" + good, "=;;;", "session=" + good[:10] + "{}", "SESSION=" + good,
		"session=\"a\\\"; session=" + good, "x=1\nsession=" + good, " session = " + good + " ;", "session=\"",
		strings.Repeat("a=1;", 70) + "session=" + good} {
		f.Add(s)
	}
	m := &Manager{opts: ManagerOptions{Cookie: CookieOptions{Name: "session"}}, scan: true}
	f.Fuzz(func(t *testing.T, header string) {
		r := &http.Request{Header: http.Header{"Cookie": strings.Split(header, "\n")}}
		v, present := m.cookieValue(r)
		c, err := r.Cookie("session")
		if present != (err == nil) || present && v != c.Value {
			t.Fatalf("%q: value %q, present %v; r.Cookie: %v, %v", header, v, present, c, err)
		}
	})
}

// FuzzFastJSON: whatever the allocation-free decoding of the typed getters
// accepts, encoding/json decodes to the same value.
func FuzzFastJSON(f *testing.F) {
	for _, s := range []string{`"abc"`, `"a\"b"`, `12`, `-7`, `+7`, `007`, `true`, `false`, `"é"`, `1e3`, `""`, `"\u0041"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		v := sealed(string(rune(envelopeV1)) + p)
		check := func(got any, ok bool, dst any) {
			if !ok {
				return
			}
			if err := json.Unmarshal([]byte(p), dst); err != nil {
				t.Fatalf("fast path accepted %q, json: %v", p, err)
			}
			if want := reflect.ValueOf(dst).Elem().Interface(); want != got {
				t.Fatalf("%q: fast %v, json %v", p, got, want)
			}
		}
		s, ok := fastJSON[string](JSONCodec{}, v)
		check(s, ok, new(string))
		i, ok := fastJSON[int](JSONCodec{}, v)
		check(i, ok, new(int))
		i64, ok := fastJSON[int64](JSONCodec{}, v)
		check(i64, ok, new(int64))
		b, ok := fastJSON[bool](JSONCodec{}, v)
		check(b, ok, new(bool))
	})
}

// FuzzCutDec: cutDec, which reads the numbers of a stored session, splits
// and parses exactly as strings.Cut and strconv.ParseInt would.
func FuzzCutDec(f *testing.F) {
	for _, s := range []string{"12,rest", "-5,", "+7,x", "0,", ",", "12", "", "1a,", "99999999999999999999,",
		"9223372036854775807,", "-9223372036854775808,", "-,", "007:abc", "1234567890123456789,"} {
		f.Add(s, byte(','), 30)
	}
	f.Fuzz(func(t *testing.T, s string, sep byte, max int) {
		n, rest, ok := cutDec(s, sep, max)
		num, after, found := strings.Cut(s, string([]byte{sep}))
		v, err := strconv.ParseInt(num, 10, 64)
		want := found && len(num) > 0 && len(num) <= max && err == nil
		if ok != want || ok && (n != v || rest != after) {
			t.Fatalf("cutDec(%q, %q, %d) = %d, %q, %v; want %d, %q, %v", s, sep, max, n, rest, ok, v, after, want)
		}
	})
}
