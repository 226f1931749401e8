package cache

import (
	"encoding/json"

	"github.com/vmihailenco/msgpack/v5"
)

// Codec turns values into payload bytes and back. ID is stored in every
// value's header, so a value written with another codec is detected (counted
// as a decode failure, deleted, read as a miss) rather than misread. Ids 0–15
// are reserved for rediskit; user codecs take 16–255.
type Codec interface {
	ID() byte
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// JSONCodec encodes with encoding/json. It is Typed's default.
type JSONCodec struct{}

// ID returns 1, the id of JSON values.
func (JSONCodec) ID() byte { return codecJSON }

// Marshal encodes v as JSON.
func (JSONCodec) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal decodes JSON data into v.
func (JSONCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// MsgpackCodec encodes with github.com/vmihailenco/msgpack/v5: smaller and
// faster than JSON for most structs.
type MsgpackCodec struct{}

// ID returns 2, the id of msgpack values.
func (MsgpackCodec) ID() byte { return codecMsgpack }

// Marshal encodes v as MessagePack.
func (MsgpackCodec) Marshal(v any) ([]byte, error) { return msgpack.Marshal(v) }

// Unmarshal decodes MessagePack data into v. Data whose lengths run past
// its end or that nests deeper than 10000 levels is refused before
// decoding (see checkMsgpack).
func (MsgpackCodec) Unmarshal(data []byte, v any) error {
	if err := checkMsgpack(data); err != nil {
		return err
	}
	return msgpack.Unmarshal(data, v)
}
