package session

import (
	"errors"
	"testing"
)

// FuzzStoredSession feeds the read path of Get — metadata, device info,
// value envelopes, then the codec — with parts of a stored session another
// client could have planted. load either fails with ErrCorrupt or yields a session
// whose every value decodes or fails with ErrCorrupt; nothing panics.
func FuzzStoredSession(f *testing.F) {
	good := "1700000000000,1700000000000,1800000,1700086400000,3,1"
	for _, s := range [][4]string{
		{good, "alice", packDevice("10.0.0.1", "ua"), "\x01{\"a\":1}"},
		{good, "", "", "\x01[1,2,3]"},
		{good, "u", "9:short", "\x01"},
		{good, "u", "-1:x", "\x02{}"},
		{"1,2,3,4,5,2", "u", "0:", "\x01null"},
		{"99999999999999999999,1,1,1,1,0", "u", "", ""},
		{"-1,-1,-1,-1,-1,0", "u", "3:abc", "\x01\"\\ud800\""},
		{",,,,,", "u", ":", "\x01{"},
		{good, "\x00", "18446744073709551616:x", "\x01" + "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	st := &Store{opts: Options{Codec: JSONCodec{}}}
	f.Fuzz(func(t *testing.T, m, u, x, d string) {
		s, err := st.load("id", "handle", JoinStored(m, u, x, "v", d))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("load error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if s.Info().UserID != u {
			t.Fatalf("user %q loaded as %q", u, s.Info().UserID)
		}
		if err := sealed(d).check(); err != nil {
			t.Fatalf("load accepted a value without envelope: %q", d)
		}
		for _, dst := range []any{new(any), new(map[string]int), new([]string), new(int64)} {
			if err := s.Decode("v", dst); err != nil && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Decode error %v does not wrap ErrCorrupt", err)
			}
		}
		_ = s.String()
		_ = s.Keys()
	})
}

// FuzzStoredForm feeds the parser of the stored form with any bytes: it
// fails with ErrCorrupt or yields a record whose every value carries an
// envelope; nothing panics.
func FuzzStoredForm(f *testing.F) {
	f.Add(JoinStored("1,1,1,1,1,0", "u", "0:", "k", "\x01{}"))
	f.Add("\x02\n")
	f.Add("\x021,1,1,1,1,0\n1:u2:0:1:k")
	f.Add("\x02\n99999999999:x")
	f.Fuzz(func(t *testing.T, raw string) {
		var md metadata
		r, _, err := parseRecord(raw, "", nil, &md)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("parseRecord error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		r.eachValue(func(k string, v sealed) {
			if v.check() != nil {
				t.Fatalf("value %q without envelope accepted", k)
			}
		})
	})
}
