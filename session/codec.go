package session

import (
	"encoding/json"
)

// Codec turns session values into bytes and back. The store wraps the bytes
// in a one-byte versioned envelope (record.go), so a Codec never sees it.
type Codec interface {
	// Marshal encodes v.
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data into the value pointed to by v.
	Unmarshal(data []byte, v any) error
}

// JSONCodec is the default Codec: encoding/json. The cache package's codec
// has the same name.
type JSONCodec struct{}

// JSON is the former name of JSONCodec.
//
// Deprecated: use JSONCodec.
type JSON = JSONCodec

// Marshal encodes v as JSON.
func (JSONCodec) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal decodes JSON data into v.
func (JSONCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
