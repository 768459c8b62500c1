// Package benchio has the byte pumps the data-path benchmarks share: a
// writer that sends fixed chunks and waits for a one-byte acknowledgement
// of each, and the sink that acknowledges them.
package benchio

import (
	"io"
	"testing"
)

// AckSink reads chunks of n bytes from c and answers one byte per chunk,
// until c fails.
func AckSink(c io.ReadWriter, n int) {
	buf := make([]byte, n)
	for {
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		if _, err := c.Write([]byte{1}); err != nil {
			return
		}
	}
}

// Pump writes one chunk of n bytes per benchmark op into c and waits for
// its acknowledgement, reporting bytes and allocations.
func Pump(b *testing.B, c io.ReadWriter, n int) {
	buf := make([]byte, n)
	ack := make([]byte, 1)
	b.SetBytes(int64(n))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, ack); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
}
