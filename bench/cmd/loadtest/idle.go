package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// idleDialers is how many idle streams are being opened at once.
const idleDialers = 64

// idleConns holds the idle scenario's open connections.
type idleConns struct {
	mu     sync.Mutex
	conns  []net.Conn // guarded by mu
	failed int        // guarded by mu
	first  error      // the first failure; guarded by mu
}

// openIdle opens n connections to addr, exchanging one byte on each
// (written, then read back from the echo), idleDialers at a time. Failed
// ones are counted, not retried. Its goroutines end before it returns;
// the caller closes the connections with closeAll.
func openIdle(ctx context.Context, addr string, n int) *idleConns {
	ic := &idleConns{conns: make([]net.Conn, 0, n)}
	work := make(chan struct{})
	var wg sync.WaitGroup
	for range min(idleDialers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				c, err := openOne(ctx, addr)
				ic.mu.Lock()
				if err != nil {
					ic.failed++
					if ic.first == nil {
						ic.first = err
					}
				} else {
					ic.conns = append(ic.conns, c)
				}
				ic.mu.Unlock()
			}
		}()
	}
	for range n {
		if ctx.Err() != nil {
			break
		}
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	return ic
}

func openOne(ctx context.Context, addr string) (net.Conn, error) {
	c, err := localDialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("idle: dialing %s: %w", addr, err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	b := []byte{'x'}
	if _, err := c.Write(b); err != nil {
		c.Close()
		return nil, fmt.Errorf("idle: writing to %s: %w", addr, err)
	}
	if _, err := io.ReadFull(c, b); err != nil {
		c.Close()
		return nil, fmt.Errorf("idle: reading the echo through %s: %w", addr, err)
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

func (ic *idleConns) open() int {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	return len(ic.conns)
}

// closeAll resets every connection (no TIME_WAIT on the harness's side,
// whose ports the next round needs).
func (ic *idleConns) closeAll() {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	for _, c := range ic.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
	}
	ic.conns = nil
}
