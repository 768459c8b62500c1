package relay

import (
	"io"
	"net"
	"testing"
)

// sink accepts one connection on 127.0.5.2 and discards what it reads,
// answering one byte per chunk of n bytes, so the writer can wait for each
// chunk to have crossed.
func sink(b *testing.B, n int) (addr string, stop func()) {
	ln, err := net.Listen("tcp", "127.0.5.2:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, n)
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				return
			}
			c.Write([]byte{1})
		}
	}()
	return ln.Addr().String(), func() { ln.Close(); <-done }
}

const chunk = 1 << 20

func pump(b *testing.B, c net.Conn) {
	buf := make([]byte, chunk)
	ack := make([]byte, 1)
	b.SetBytes(chunk)
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
}

// BenchmarkDirectTCP is the reference: the same bytes over one loopback
// TCP connection, no relay.
func BenchmarkDirectTCP(b *testing.B) {
	addr, stop := sink(b, chunk)
	defer stop()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	pump(b, c)
}

// BenchmarkRelayTCP moves 1 MiB per op through Run between two loopback TCP
// connections (client -> relay -> sink).
func BenchmarkRelayTCP(b *testing.B) {
	addr, stop := sink(b, chunk)
	defer stop()
	ln, err := net.Listen("tcp", "127.0.5.2:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		down, err := ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", addr)
		if err != nil {
			down.Close()
			return
		}
		Run(TCP{down.(*net.TCPConn)}, TCP{up.(*net.TCPConn)}, Options{}, nil)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	pump(b, c)
	b.StopTimer()
	c.Close()
	<-done
}
