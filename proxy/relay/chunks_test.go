package relay

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/gowaypoint/waypoint/protocols/http2"
)

// chunkEnd is an evEnd whose input is taken as chunks (ChunkReader, 16 KiB
// at most each) and whose output accepts batches of buffers (VecWriter),
// recording each batch's size.
type chunkEnd struct {
	*evEnd
	mu      sync.Mutex
	batches []int
}

func (c *chunkEnd) TryReadChunk() (http2.Chunk, error) {
	b := make([]byte, 16<<10)
	n, err := c.TryRead(b)
	return http2.ChunkOf(b[:n]), err
}

func (c *chunkEnd) WriteVec(bufs [][]byte) (int, error) {
	c.mu.Lock()
	c.batches = append(c.batches, len(bufs))
	c.mu.Unlock()
	var all []byte
	for _, b := range bufs {
		all = append(all, b...)
	}
	return c.Write(all)
}

// TestStartChunksBatched relays, between two chunk-capable sides, more
// than maxVecChunks chunks that are all waiting at once: they must arrive
// whole and in order, handed to WriteVec in batches of several chunks
// and never more than maxVecChunks.
func TestStartChunksBatched(t *testing.T) {
	client, d := evPipe()
	u, backend := evPipe()
	down, up := &chunkEnd{evEnd: d}, &chunkEnd{evEnd: u}
	data := make([]byte, 150<<10) // 10 chunks of 16 KiB at most
	for i := range data {
		data[i] = byte(i * 7)
	}
	client.Write(data) // waiting before the relay starts
	result := make(chan Result, 1)
	Start(down, up, Options{IdleTimeout: time.Minute}, nil, func(r Result) { result <- r })
	if got := readN(t, backend, len(data)); !bytes.Equal(got, data) {
		t.Fatal("bytes relayed differ")
	}
	client.CloseWrite()
	backend.CloseWrite()
	select {
	case r := <-result:
		if r.Err != nil || r.DownstreamToUpstream != int64(len(data)) {
			t.Fatalf("result %+v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("relay did not end after both half-closes")
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	most := 0
	for _, n := range up.batches {
		if n > maxVecChunks || n == 0 {
			t.Fatalf("a WriteVec of %d chunks (batches %v)", n, up.batches)
		}
		most = max(most, n)
	}
	if most < 2 {
		t.Fatalf("no batch of several chunks: %v", up.batches)
	}
}
