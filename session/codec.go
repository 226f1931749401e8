package session

import (
	"encoding/json"
	"fmt"
)

// Codec turns session values into bytes and back. The store wraps the bytes
// in a one-byte versioned envelope, so a Codec never sees the envelope.
type Codec interface {
	// Marshal encodes v.
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data into the value pointed to by v.
	Unmarshal(data []byte, v any) error
}

// JSON is the default Codec: encoding/json.
type JSON struct{}

// Marshal encodes v as JSON.
func (JSON) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal decodes JSON data into v.
func (JSON) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// envelopeV1 is the first byte of every stored value. A value that does not
// start with a known envelope byte is ErrCorrupt: it was not written by this
// package (or was written by a future version that a rollback cannot read).
const envelopeV1 = 0x01

func seal(codec Codec, v any) ([]byte, error) {
	b, err := codec.Marshal(v)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+len(b))
	out[0] = envelopeV1
	copy(out[1:], b)
	return out, nil
}

// open strips and checks the envelope, without copying.
func open(stored string) (string, error) {
	if len(stored) == 0 || stored[0] != envelopeV1 {
		return "", fmt.Errorf("%w: unknown value envelope", ErrCorrupt)
	}
	return stored[1:], nil
}
