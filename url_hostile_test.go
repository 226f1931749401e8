package rediskit

import (
	"errors"
	"strings"
	"testing"
)

// TestParseURLHostile: URLs that are malformed in ways a typo or an
// attacker-controlled variable produces are refused with a *ConfigError
// that never holds the password, rather than read as some other address.
func TestParseURLHostile(t *testing.T) {
	const secret = "s3cret-Pa55"
	for _, u := range []string{
		"redis://:" + secret + "@[::1/0",        // unclosed IPv6 bracket: was read as [::1]:6379
		"redis://:" + secret + "@::1]:6379/0",   // unopened bracket
		"redis://:" + secret + "@local\nhost/0", // control characters in the host
		"redis://:" + secret + "@host\x00:6379/0",
		"redis://:" + secret + "@host\t:6379/0",
		"redis-cluster://:" + secret + "@a:1,b\r:2",
		"redis://:" + secret + "@h:6379?addr=x\ny:1",
	} {
		c, err := ParseURL(u)
		var ce *ConfigError
		if !errors.As(err, &ce) {
			t.Errorf("ParseURL(%q) = %v, %v; want a *ConfigError", u, c, err)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("ParseURL(%q) error holds the password: %v", u, err)
		}
	}
	// Still accepted: bracketed IPv6 with and without a port.
	for u, want := range map[string]string{
		"redis://[::1]:7000/0": "[::1]:7000",
		"redis://[::1]/0":      "[::1]:6379",
	} {
		if c, err := ParseURL(u); err != nil || c.Addr != want {
			t.Errorf("ParseURL(%q) = %q, %v; want %q", u, c.Addr, err, want)
		}
	}
}
