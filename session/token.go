package session

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
)

// Token layout: base64url (no padding) of 48 bytes:
//
//	tag[16] || secret[32]
//
// tag is the user's slot tag (a keyed hash of the user ID, or 16 random bytes
// for an anonymous session); secret is 32 bytes from crypto/rand. The whole
// token therefore carries at least 256 bits of randomness, and always 384 bits
// for anonymous sessions. 48 bytes encode to exactly 64 characters.
const (
	tagLen      = 16
	secretLen   = 32
	rawTokenLen = tagLen + secretLen
	// TokenLen is the length in characters of every session ID.
	TokenLen = rawTokenLen / 3 * 4
)

// b64Alphabet is base64url's alphabet (RFC 4648 §5). b64 encodes with it,
// and tokenShape and locate read it: one alphabet for all three.
const b64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

var b64 = base64.NewEncoding(b64Alphabet).WithPadding(base64.NoPadding)

// parsed is a syntactically valid token split into the parts the store
// needs. tag and handle are substrings of key, so parsing a token costs one
// allocation.
type parsed struct {
	key    string // <prefix>{<tag>}:s:<handle>: the session hash
	tag    string // base64url of the 16-byte tag: goes inside {…} in keys
	handle string // base64url of sha256(token): the session's public handle
}

const (
	tagB64Len    = (tagLen*8 + 5) / 6      // 22
	handleB64Len = (sha256.Size*8 + 5) / 6 // 43
)

// parseToken validates the shape of a session ID without touching Redis:
// exactly TokenLen characters of the base64url alphabet, which always
// decode to 48 bytes. Anything else is ErrMalformedToken. The key is built
// with prefix.
func parseToken(prefix, tok string) (parsed, error) {
	if !tokenShape(tok) {
		return parsed{}, ErrMalformedToken
	}
	return locate(prefix, tok), nil
}

// b64Value is the value of each byte in the base64url alphabet, 0xff for a
// byte outside it.
var b64Value = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i := range len(b64Alphabet) {
		t[b64Alphabet[i]] = byte(i)
	}
	return t
}()

// tokenShape reports whether tok is TokenLen characters of the base64url
// alphabet. 64 characters carry exactly 48 bytes, with no trailing bits,
// so such a string is the one canonical encoding of its bytes and two
// different strings never name the same session (FuzzParseToken checks
// that this accepts exactly what decoding accepts).
func tokenShape(tok string) bool {
	if len(tok) != TokenLen {
		return false
	}
	var bad byte
	for i := range TokenLen {
		bad |= b64Value[tok[i]]
	}
	return bad&0xc0 == 0
}

// locate builds the session key of the well-shaped token tok in one
// allocation. The tag's base64url is tok's first 21 characters and a 22nd
// holding the tag's last two bits: tok's 22nd with the four bits that
// belong to the secret cleared. The key ends with tok's handle.
func locate(prefix, tok string) parsed {
	var h [handleB64Len]byte
	tokenHandle(&h, tok)
	var b strings.Builder
	b.Grow(len(prefix) + 1 + tagB64Len + 4 + handleB64Len)
	b.WriteString(prefix)
	b.WriteByte('{')
	b.WriteString(tok[:tagB64Len-1])
	b.WriteByte(b64Alphabet[b64Value[tok[tagB64Len-1]]&0x30])
	b.WriteString("}:s:")
	b.Write(h[:])
	key := b.String()
	n := len(prefix)
	return parsed{key: key, tag: key[n+1 : n+1+tagB64Len], handle: key[len(key)-handleB64Len:]}
}

// tokenHandle writes into h the handle of the well-shaped token tok, the
// key material stored in Redis in place of the token: the base64url of its
// SHA-256, hashed from a copy on the stack.
func tokenHandle(h *[handleB64Len]byte, tok string) {
	var src [TokenLen]byte
	copy(src[:], tok)
	sum := sha256.Sum256(src[:])
	b64.Encode(h[:], sum[:])
}

// hashToken is tokenHandle as a string.
func hashToken(tok string) string {
	var h [handleB64Len]byte
	tokenHandle(&h, tok)
	return string(h[:])
}

// newToken returns a fresh token for the given 16-byte tag, and its parts
// with the key built with prefix.
func newToken(prefix string, tag []byte) (string, parsed, error) {
	var raw [rawTokenLen]byte
	copy(raw[:tagLen], tag)
	if _, err := rand.Read(raw[tagLen:]); err != nil {
		return "", parsed{}, fmt.Errorf("session: reading crypto/rand: %w", err)
	}
	tok := b64.EncodeToString(raw[:])
	return tok, locate(prefix, tok), nil
}

// userTag derives the 16-byte slot tag of a user. With a key it is
// HMAC-SHA256(key, userID); without one it is a domain-separated SHA-256.
// Either way the user ID never appears in a key, so no user ID can inject
// braces, glob characters or another user's tag.
func (s *Store) userTag(userID string) []byte {
	var sum []byte
	if len(s.opts.UserKey) > 0 {
		m := hmac.New(sha256.New, s.opts.UserKey)
		m.Write([]byte(userID))
		sum = m.Sum(nil)
	} else {
		h := sha256.New()
		h.Write([]byte("rediskit/session/user/v1\x00"))
		h.Write([]byte(userID))
		sum = h.Sum(nil)
	}
	return sum[:tagLen]
}

// anonTag returns a random tag for a session without a user.
func anonTag() ([]byte, error) {
	t := make([]byte, tagLen)
	if _, err := rand.Read(t); err != nil {
		return nil, fmt.Errorf("session: reading crypto/rand: %w", err)
	}
	return t, nil
}

// ValidToken reports whether tok has the shape of a session ID. It does not
// say whether such a session exists.
func ValidToken(tok string) bool { return tokenShape(tok) }
