package session

import "strings"

// SplitStored splits the stored form of a session (record.go) for tests
// that plant bad data: the metadata line, user, device, then key, value,
// key, value... ok is false when raw does not have the form.
func SplitStored(raw string) (meta, user, device string, kv []string, ok bool) {
	if len(raw) == 0 || raw[0] != formatV2 {
		return "", "", "", nil, false
	}
	nl := strings.IndexByte(raw, '\n')
	if nl < 0 {
		return "", "", "", nil, false
	}
	rest := raw[nl+1:]
	if user, rest, ok = cutNetstring(rest); !ok {
		return
	}
	if device, rest, ok = cutNetstring(rest); !ok {
		return
	}
	for rest != "" {
		var v string
		if v, rest, ok = cutNetstring(rest); !ok {
			return
		}
		kv = append(kv, v)
	}
	return raw[1:nl], user, device, kv, len(kv)%2 == 0
}

// JoinStored builds the stored form from its parts, whatever they hold.
func JoinStored(meta, user, device string, kv ...string) string {
	b := []byte{formatV2}
	b = append(b, meta...)
	b = append(b, '\n')
	for _, s := range append([]string{user, device}, kv...) {
		b = appendNetstring(b, s)
	}
	return string(b)
}

// ParseAndLoad is the client-side work of a Get that finds raw stored:
// parse and hash the token, then parse the stored form.
func (s *Store) ParseAndLoad(id, raw string) (*Session, error) {
	p, err := parseToken(s.opts.Prefix, id)
	if err != nil {
		return nil, err
	}
	return s.load(id, p.handle, raw)
}

// StoredKey returns the Redis key of session id.
func (s *Store) StoredKey(id string) string {
	p, _ := parseToken(s.opts.Prefix, id)
	return p.key
}
