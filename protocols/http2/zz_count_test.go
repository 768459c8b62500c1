package http2

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync/atomic"
	"testing"
)

type cntConn struct {
	net.Conn
	r, w *atomic.Int64
}

func (c cntConn) Read(p []byte) (int, error)  { c.r.Add(1); return c.Conn.Read(p) }
func (c cntConn) Write(p []byte) (int, error) { c.w.Add(1); return c.Conn.Write(p) }

func TestZZCount(t *testing.T) {
	var sr, sw, cr, cw atomic.Int64
	ln, _ := net.Listen("tcp", testHost+":0")
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, _ := ln.Accept()
		ServeConn(context.Background(), cntConn{c, &sr, &sw}, Config{}, unaryHandler)
	}()
	nc, _ := net.Dial("tcp", ln.Addr().String())
	cc, _ := NewClientConn(cntConn{nc, &cr, &cw}, Config{})
	req := newRequest("POST", "example.com", "/unary")
	do := func() {
		req.Body, req.ContentLength = bytes.NewReader(payload1K), 1024
		resp, err := cc.RoundTrip(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
	}
	for i := 0; i < 10; i++ {
		do()
	}
	sr.Store(0); sw.Store(0); cr.Store(0); cw.Store(0)
	for i := 0; i < 1000; i++ {
		do()
	}
	t.Logf("per op: server reads %.2f writes %.2f; client reads %.2f writes %.2f", float64(sr.Load())/1000, float64(sw.Load())/1000, float64(cr.Load())/1000, float64(cw.Load())/1000)
	cc.Close()
	<-done
}
