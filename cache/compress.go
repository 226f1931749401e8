package cache

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"sync"
)

var (
	flateWriters = sync.Pool{New: func() any {
		w, _ := flate.NewWriter(nil, flate.BestSpeed)
		return w
	}}
	flateReaders = sync.Pool{New: func() any { return flate.NewReader(nil) }}
)

// compressTo appends the flate-compressed p to dst.
func compressTo(dst []byte, p []byte) []byte {
	buf := bytes.NewBuffer(dst)
	w := flateWriters.Get().(*flate.Writer)
	w.Reset(buf)
	_, _ = w.Write(p) // writes to a bytes.Buffer cannot fail
	_ = w.Close()
	flateWriters.Put(w)
	return buf.Bytes()
}

// decompress inflates p, refusing output longer than limit (a bomb or a
// corrupt value).
func decompress(p []byte, limit int) ([]byte, error) {
	r := flateReaders.Get().(io.ReadCloser)
	defer flateReaders.Put(r)
	if err := r.(flate.Resetter).Reset(bytes.NewReader(p), nil); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	out, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("%w: inflate: %v", ErrCorrupt, err)
	}
	if len(out) > limit {
		return nil, fmt.Errorf("%w: inflates past %d bytes", ErrCorrupt, limit)
	}
	return out, nil
}
