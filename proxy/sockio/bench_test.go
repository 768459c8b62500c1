package sockio

import (
	"io"
	"net"
	"testing"
)

// BenchmarkPingPong sends 1 KiB and reads it back from an echo, per op,
// through a wrapped connection, and through the plain TCPConn as the
// reference (same sockets, same poller; only the system call path differs).
func BenchmarkPingPong(b *testing.B) {
	for _, bc := range []struct {
		name string
		conn func(c *Conn) io.ReadWriter
	}{
		{"sockio", func(c *Conn) io.ReadWriter { return c }},
		{"net-reference", func(c *Conn) io.ReadWriter { return c.TCPConn }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c, peer := pair(b)
			go io.Copy(peer, Wrap(peer))
			rw := bc.conn(c)
			msg := make([]byte, 1024)
			buf := make([]byte, 1024)
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := rw.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(rw, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

var _ net.Conn = (*Conn)(nil)
