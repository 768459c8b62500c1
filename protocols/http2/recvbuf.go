package http2

import "sync"

// recvBuf holds a stream's received DATA until its reader takes it: a
// list of chunks from size-tiered pools (1, 4 and 16 KiB), so that a
// stream holds memory only for what is buffered, at most its receive
// window. Not safe for concurrent use; the stream's mutex guards it.
type recvBuf struct {
	chunks []*[]byte
	r      int // read offset in chunks[0]
	n      int // bytes buffered
	inline [4]*[]byte
}

var chunkPools = [...]struct {
	size int
	pool sync.Pool
}{{size: 1 << 10}, {size: 4 << 10}, {size: 16 << 10}}

func getChunk(want int) *[]byte {
	i := 0
	for i < len(chunkPools)-1 && chunkPools[i].size < want {
		i++
	}
	if p, ok := chunkPools[i].pool.Get().(*[]byte); ok {
		*p = (*p)[:0]
		return p
	}
	b := make([]byte, 0, chunkPools[i].size)
	return &b
}

func putChunk(p *[]byte) {
	for i := range chunkPools {
		if cap(*p) == chunkPools[i].size {
			chunkPools[i].pool.Put(p)
			return
		}
	}
}

// write appends p.
func (b *recvBuf) write(p []byte) {
	b.n += len(p)
	if k := len(b.chunks); k > 0 {
		last := b.chunks[k-1]
		m := copy((*last)[len(*last):cap(*last)], p)
		*last = (*last)[:len(*last)+m]
		p = p[m:]
	}
	if b.chunks == nil {
		b.chunks = b.inline[:0]
	}
	for len(p) > 0 {
		c := getChunk(len(p))
		m := copy((*c)[:cap(*c)], p)
		*c = (*c)[:m]
		p = p[m:]
		b.chunks = append(b.chunks, c)
	}
}

// appendChunks takes over chunks holding n bytes, each full to its length;
// the slice itself stays the caller's.
func (b *recvBuf) appendChunks(chunks []*[]byte, n int) {
	if b.chunks == nil {
		b.chunks = b.inline[:0]
	}
	b.chunks = append(b.chunks, chunks...)
	b.n += n
	for i := range chunks {
		chunks[i] = nil
	}
}

// read moves up to len(p) bytes into p.
func (b *recvBuf) read(p []byte) int {
	n := 0
	for n < len(p) && len(b.chunks) > 0 {
		c := b.chunks[0]
		m := copy(p[n:], (*c)[b.r:])
		n += m
		b.r += m
		if b.r == len(*c) {
			b.dropFirst()
		}
	}
	b.n -= n
	return n
}

// takeFirst removes the first chunk, with what is left of it unread.
func (b *recvBuf) takeFirst() Chunk {
	c := b.chunks[0]
	ch := Chunk{b: (*c)[b.r:], ref: c}
	k := copy(b.chunks, b.chunks[1:])
	b.chunks[k] = nil
	b.chunks = b.chunks[:k]
	b.r = 0
	b.n -= len(ch.b)
	return ch
}

// Chunk is received data handed over without a copy (TryReadChunk): the
// caller owns it until Release, which gives its memory back to the
// receive-buffer pools. The zero Chunk is empty; Release on it is a no-op.
type Chunk struct {
	b   []byte
	ref *[]byte
}

// ChunkOf wraps b, which the caller keeps owning, as a Chunk whose Release
// does nothing: data of another source handed where chunks are taken.
func ChunkOf(b []byte) Chunk { return Chunk{b: b} }

// Bytes is the chunk's data, valid until Release.
func (c Chunk) Bytes() []byte { return c.b }

// Release returns the chunk's memory; call it once, after the last use of
// Bytes.
func (c Chunk) Release() {
	if c.ref != nil {
		putChunk(c.ref)
	}
}

func (b *recvBuf) dropFirst() {
	putChunk(b.chunks[0])
	k := copy(b.chunks, b.chunks[1:])
	b.chunks[k] = nil
	b.chunks = b.chunks[:k]
	b.r = 0
}

// reset drops everything buffered and returns how many bytes it held.
func (b *recvBuf) reset() int {
	n := b.n
	for len(b.chunks) > 0 {
		b.dropFirst()
	}
	b.n = 0
	return n
}
