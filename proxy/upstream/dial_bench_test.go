package upstream

import (
	"context"
	"net"
	"testing"
)

// BenchmarkConnectTCP opens a plaintext connection to an endpoint through
// Clusters.ConnectTCP: "one-address" is an endpoint without
// additional_addresses, which pays nothing for dual stack (its budget is
// that of a plain dial); "dual-stack" one whose primary refuses and whose
// additional address (::1) answers (a reference, not gated).
func BenchmarkConnectTCP(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.9.50:0")
	if err != nil {
		b.Fatal(err)
	}
	ln6, err6 := net.Listen("tcp", "[::1]:0")
	done := make(chan struct{})
	accept := func(ln net.Listener) {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}
	go func() { defer close(done); accept(ln) }()
	if err6 == nil {
		go accept(ln6)
		defer ln6.Close()
	}
	defer func() { ln.Close(); <-done }()

	run := func(b *testing.B, primary string, extra ...string) {
		snap := dualSnapshot(b, primary, extra...)
		c := NewClusters(NewDialer(nil, nil))
		c.Update(snap)
		defer c.Close()
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			conn, _, end, err := c.ConnectTCP(ctx, snap, "c0")
			if err != nil {
				b.Fatal(err)
			}
			conn.Close()
			end()
		}
	}
	b.Run("one-address", func(b *testing.B) { run(b, ln.Addr().String()) })
	b.Run("dual-stack", func(b *testing.B) {
		if err6 != nil {
			b.Skip("no ::1")
		}
		run(b, "127.0.9.51:1", ln6.Addr().String())
	})
}
