package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// bulkChunk is the size of each write of the bulk client.
const bulkChunk = 64 << 10

// drainTimeout bounds how long a bulk stream waits, after its last write,
// for the sink to have read everything and closed.
const drainTimeout = 15 * time.Second

// localDialer dials from the harness's own loopback address.
var localDialer = net.Dialer{
	LocalAddr: &net.TCPAddr{IP: net.ParseIP(ipHarness)},
	Timeout:   10 * time.Second,
}

// bulkSend opens streams connections to addr and writes into each for d,
// then half-closes them and waits until the far end has closed each one
// (all bytes delivered). It returns the bytes written. Its goroutines, one
// per stream, end before it returns.
func bulkSend(ctx context.Context, addr string, streams int, d time.Duration) (int64, error) {
	conns := make([]net.Conn, 0, streams)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range streams {
		c, err := localDialer.DialContext(ctx, "tcp", addr)
		if err != nil {
			return 0, fmt.Errorf("bulk: dialing %s: %w", addr, err)
		}
		conns = append(conns, c)
	}
	end := time.Now().Add(d)
	written := make([]int64, streams)
	errs := make([]error, streams)
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			written[i], errs[i] = bulkStream(ctx, c.(*net.TCPConn), end)
		}()
	}
	wg.Wait()
	var total int64
	for i := range conns {
		total += written[i]
	}
	return total, errors.Join(errs...)
}

// bulkStream writes to c until end, half-closes it and reads until the far
// end closes.
func bulkStream(ctx context.Context, c *net.TCPConn, end time.Time) (int64, error) {
	buf := make([]byte, bulkChunk)
	for i := range buf {
		buf[i] = byte(i)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	c.SetWriteDeadline(end)
	var n int64
	for {
		m, err := c.Write(buf)
		n += int64(m)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			return n, fmt.Errorf("bulk: writing to %s after %d bytes: %w", c.RemoteAddr(), n, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return n, err
	}
	if err := c.CloseWrite(); err != nil {
		return n, fmt.Errorf("bulk: half-closing: %w", err)
	}
	c.SetReadDeadline(time.Now().Add(drainTimeout))
	if _, err := io.Copy(io.Discard, c); err != nil {
		return n, fmt.Errorf("bulk: waiting for the sink to close after %d bytes: %w", n, err)
	}
	return n, nil
}
