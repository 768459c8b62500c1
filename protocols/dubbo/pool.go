package dubbo

import "sync"

// Frames live in size-tiered pools, as grpc-go's mem.BufferPool keeps its
// buffers: a frame takes the smallest tier that holds it, so that memory
// held is at most four times what is used, and frames larger than the top
// tier (only possible with MaxBodyBytes above the default) are allocated
// for the occasion and left to the garbage collector. sync.Pool drops what
// stays unused across two collections, so a burst of large frames is not
// kept for good.
var frameTiers = [...]struct {
	size int
	pool sync.Pool
}{
	{size: 256}, {size: 1 << 10}, {size: 4 << 10}, {size: 16 << 10},
	{size: 64 << 10}, {size: 256 << 10}, {size: 1 << 20}, {size: 4 << 20},
	{size: DefaultMaxBodyBytes + HeaderLen},
}

// getFrame returns a frame whose buffer holds n bytes, Raw of length n.
func getFrame(n int) *Frame {
	for i := range frameTiers {
		t := &frameTiers[i]
		if n > t.size {
			continue
		}
		f, _ := t.pool.Get().(*Frame)
		if f == nil {
			f = &Frame{buf: make([]byte, t.size), tier: int8(i)}
		}
		f.Raw = f.buf[:n:n]
		return f
	}
	b := make([]byte, n)
	return &Frame{buf: b, tier: -1, Raw: b}
}

// putFrame returns f to its tier.
func putFrame(f *Frame) {
	f.Raw, f.Header = nil, Header{}
	if f.tier >= 0 {
		frameTiers[f.tier].pool.Put(f)
	}
}

// Read buffers of the default size are pooled: a Reader returns its own
// on Close, so idle connections closed in numbers give theirs back.
var readBufPool = sync.Pool{New: func() any {
	b := make([]byte, DefaultReadBufferSize)
	return &b
}}
