package relay

import (
	"net"
	"testing"

	"github.com/gowaypoint/waypoint/internal/benchio"
)

// sink accepts one connection on 127.0.5.2 and acknowledges each chunk.
func sink(b *testing.B) (addr string, stop func()) {
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
		benchio.AckSink(c, chunk)
	}()
	return ln.Addr().String(), func() { ln.Close(); <-done }
}

const chunk = 1 << 20

// BenchmarkDirectTCP is the reference: the same bytes over one loopback
// TCP connection, no relay.
func BenchmarkDirectTCP(b *testing.B) {
	addr, stop := sink(b)
	defer stop()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	benchio.Pump(b, c, chunk)
}

// BenchmarkRelayTCP moves 1 MiB per op through Run between two loopback TCP
// connections (client -> relay -> sink).
func BenchmarkRelayTCP(b *testing.B) {
	addr, stop := sink(b)
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
		Run(NewTCP(down.(*net.TCPConn)), NewTCP(up.(*net.TCPConn)), Options{}, nil)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	benchio.Pump(b, c, chunk)
	b.StopTimer()
	c.Close()
	<-done
}
