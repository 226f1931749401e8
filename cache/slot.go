package cache

import (
	"strconv"
	"strings"
	"sync"
)

// Redis Cluster hashes a key to one of 16384 slots with CRC16 (XMODEM) of the
// key, or of its hash tag: the text between the first '{' and the first '}'
// after it, when that text is not empty. go-redis keeps its implementation in
// an internal package, so it is repeated here (about 30 lines).
const numSlots = 16384

var crc16tab = func() (t [256]uint16) {
	for i := range t {
		crc := uint16(i) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
		t[i] = crc
	}
	return t
}()

func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc = crc<<8 ^ crc16tab[byte(crc>>8)^s[i]]
	}
	return crc
}

// keySlot returns the cluster slot of key.
func keySlot(key string) int {
	if s := strings.IndexByte(key, '{'); s >= 0 {
		if e := strings.IndexByte(key[s+1:], '}'); e > 0 {
			key = key[s+1 : s+1+e]
		}
	}
	return int(crc16(key) % numSlots)
}

// slotTags returns, for every slot, a short brace-free string that hashes to
// it. A lease key carries the tag of its value key's slot, so a Lua script can
// touch both on Cluster whatever braces the user's key contains.
var slotTags = sync.OnceValue(func() *[numSlots]string {
	var t [numSlots]string
	left := numSlots
	for i := 0; left > 0; i++ {
		s := strconv.FormatInt(int64(i), 36)
		if sl := crc16(s) % numSlots; t[sl] == "" {
			t[sl] = s
			left--
		}
	}
	return &t
})
