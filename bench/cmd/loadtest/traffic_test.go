package main

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// echoServer is a TCP echo on an ephemeral port of 127.0.40.252.
func echoServer(t *testing.T) string {
	t.Helper()
	s, err := listenTCP("127.0.40.252:0", func(c net.Conn) {
		buf := make([]byte, 512)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				c.Write(buf[:n])
			}
			if err != nil {
				return
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	return s.ln.Addr().String()
}

func TestBulkSendDeliversEverything(t *testing.T) {
	for _, streams := range []int{1, 4} {
		var total atomic.Int64
		sink, err := newSink("127.0.40.252:0", &total)
		if err != nil {
			t.Fatal(err)
		}
		written, err := bulkSend(context.Background(), sink.ln.Addr().String(), streams, 200*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		// bulkSend returns once the sink has closed every stream, so all
		// the bytes have been read.
		if written < bulkChunk || total.Load() != written {
			t.Errorf("%d streams: wrote %d, sink read %d; want equal and at least one chunk", streams, written, total.Load())
		}
		sink.close()
	}
}

func TestBulkSendStopsOnCancel(t *testing.T) {
	var total atomic.Int64
	sink, err := newSink("127.0.40.252:0", &total)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.close()
	// An hour of writing: only the cancellation can end it.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := bulkSend(ctx, sink.ln.Addr().String(), 2, time.Hour); err == nil {
		t.Error("cancelled run: want an error")
	}
}

func TestBulkSendDialFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.40.252:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if _, err := bulkSend(context.Background(), addr, 1, time.Second); err == nil || !strings.Contains(err.Error(), addr) {
		t.Errorf("err = %v, want a dial error naming %s", err, addr)
	}
}

func TestOpenIdle(t *testing.T) {
	addr := echoServer(t)
	ic := openIdle(context.Background(), addr, 200)
	defer ic.closeAll()
	if ic.open() != 200 || ic.failed != 0 {
		t.Fatalf("open %d, failed %d (%v); want 200 and 0", ic.open(), ic.failed, ic.first)
	}
	// The connections are held, not closed: each still echoes.
	c := ic.conns[123]
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("y")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := c.Read(b); err != nil || b[0] != 'y' {
		t.Fatalf("held connection: read %q, %v", b, err)
	}
	ic.closeAll()
	if ic.open() != 0 {
		t.Errorf("%d open after closeAll", ic.open())
	}
}

func TestOpenIdleCountsFailures(t *testing.T) {
	// A server that closes without echoing.
	s, err := listenTCP("127.0.40.252:0", func(c net.Conn) {})
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	ic := openIdle(context.Background(), s.ln.Addr().String(), 10)
	defer ic.closeAll()
	if ic.open() != 0 || ic.failed != 10 || ic.first == nil || !strings.Contains(ic.first.Error(), "echo") {
		t.Errorf("open %d, failed %d, first %v; want 0, 10 and an error about the echo", ic.open(), ic.failed, ic.first)
	}
}
