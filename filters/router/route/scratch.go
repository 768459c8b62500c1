package route

import (
	"sync"
	"unsafe"
)

// maxPooledScratch bounds the buffers kept in scratchPool, so that one huge
// header does not pin memory forever.
const maxPooledScratch = 64 << 10

// scratchPool holds byte buffers for joining repeated header values and
// composing rewritten paths. A buffer is used within one call and put back
// before the call returns.
var scratchPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func getScratch() *[]byte { return scratchPool.Get().(*[]byte) }

func putScratch(b *[]byte) {
	if cap(*b) > maxPooledScratch {
		return
	}
	*b = (*b)[:0]
	scratchPool.Put(b)
}

// transientString returns a string that aliases b, for passing to a
// function that copies it before returning (l7.Header.Add and Set) and
// keeps no reference. It exists so that formatted header values, built in
// a pooled buffer, reach the header arena without a second allocation; b
// must not change while the string is in use.
func transientString(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}
