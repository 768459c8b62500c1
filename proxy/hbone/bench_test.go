package hbone

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"testing"

	"github.com/gowaypoint/waypoint/internal/benchio"
	"github.com/gowaypoint/waypoint/proxy/certs"
	"github.com/gowaypoint/waypoint/proxy/relay"
)

const benchChunk = 1 << 20

// tcpAckSink serves ackSink on a loopback TCP listener.
func tcpAckSink(b *testing.B, ip string) string {
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				benchio.AckSink(c, benchChunk)
			}()
		}
	}()
	return ln.Addr().String()
}

// BenchmarkTLSReference is the floor for HBONE: 1 MiB per op over one plain
// TLS 1.3 connection with the same certificates, no HTTP/2, no relay.
func BenchmarkTLSReference(b *testing.B) {
	m := newMesh(b)
	server, client := m.source(b, serverID), m.source(b, clientID)
	ln, err := tls.Listen("tcp", "127.0.7.30:0", server.ServerTLSConfig())
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		benchio.AckSink(c, benchChunk)
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), client.ClientTLSConfig(certs.PeerExpectation{ID: serverID}))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	benchio.Pump(b, c, benchChunk)
}

// BenchmarkHBONERelay is the L4 relay path over one HBONE hop: 1 MiB per op
// written into a CONNECT stream, which the server relays to a TCP sink.
func BenchmarkHBONERelay(b *testing.B) {
	m := newMesh(b)
	sinkAddr := tcpAckSink(b, "127.0.7.31")
	relayToSink := HandlerFunc(func(ctx context.Context, st *ServerStream) {
		up, err := net.Dial("tcp", sinkAddr)
		if err != nil {
			st.Refuse(503, err.Error())
			return
		}
		down, err := st.Accept()
		if err != nil {
			up.Close()
			return
		}
		relay.Run(down, relay.NewTCP(up.(*net.TCPConn)), relay.Options{}, nil)
	})
	_, addr := startServer(b, m, "127.0.7.31", relayToSink, nil)
	p := newPool(b, nil)
	st, err := p.Connect(context.Background(), dest(m.source(b, clientID), addr, certs.PeerExpectation{ID: serverID}))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	benchio.Pump(b, st, benchChunk)
}

// BenchmarkHBONEStreamSetup opens a CONNECT stream on a warm pooled
// connection, exchanges one byte and closes it, per op.
func BenchmarkHBONEStreamSetup(b *testing.B) {
	m := newMesh(b)
	_, addr := startServer(b, m, "127.0.7.32", echo, nil)
	p := newPool(b, nil)
	d := dest(m.source(b, clientID), addr, certs.PeerExpectation{ID: serverID})
	one := []byte{1}
	buf := make([]byte, 1)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		st, err := p.Connect(context.Background(), d)
		if err != nil {
			b.Fatal(err)
		}
		st.Write(one)
		if _, err := io.ReadFull(st, buf); err != nil {
			b.Fatal(err)
		}
		st.CloseWrite()
		io.Copy(io.Discard, st)
		st.Close()
	}
}

// BenchmarkTCPConnectReference is the reference for stream setup: a new
// loopback TCP connection, one byte each way, closed, per op.
func BenchmarkTCPConnectReference(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.7.33:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	one := []byte{1}
	buf := make([]byte, 1)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		c.Write(one)
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
		c.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, c)
		c.Close()
	}
}
