// Package acceptor runs accept loops and the goroutines that serve their
// connections, and drains them: the one owner of every listener goroutine
// and connection goroutine of a server.
package acceptor

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/gowaypoint/waypoint/proxy/internal/shrink"
)

// Acceptor owns listeners and the connections accepted on them. The zero
// value is ready to use. Safe for concurrent use.
type Acceptor struct {
	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     shrink.Set[net.Conn] // its buckets follow it down after a burst
	draining  bool
	wg        sync.WaitGroup // accept loops and connection goroutines
}

// ErrDraining is returned by Serve once Drain has begun.
var ErrDraining = errors.New("acceptor: draining")

// Serve accepts on ln until ln is closed or Drain begins, running handle in
// a new goroutine per connection; handle owns the connection, which is
// closed after it returns. Serve closes ln before it returns. Temporary
// accept errors (too many open files) are retried after a back-off.
func (a *Acceptor) Serve(ln net.Listener, handle func(net.Conn)) error {
	return a.ServeHold(ln, nil, handle)
}

// ServeHold is Serve with hold (nil: none) called on the accept loop for
// each accepted connection, before any goroutine of its own: hold
// returning true has taken the connection (closed it, or passed its
// socket on to a park.Parker, whose owner may give it back through
// Adopt), which the Acceptor then neither serves nor tracks; false leaves
// it to handle, as Serve does. hold must not block: the next accept waits
// for it. A connection that waits for its first bytes this way costs no
// goroutine, and a burst of them leaves none behind (the runtime keeps
// the most goroutines it ever had).
func (a *Acceptor) ServeHold(ln net.Listener, hold func(net.Conn) bool, handle func(net.Conn)) error {
	a.mu.Lock()
	if a.draining {
		a.mu.Unlock()
		ln.Close()
		return ErrDraining
	}
	if a.listeners == nil {
		a.listeners = map[net.Listener]struct{}{}
	}
	a.listeners[ln] = struct{}{}
	a.wg.Add(1)
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.listeners, ln)
		a.mu.Unlock()
		ln.Close()
		a.wg.Done()
	}()

	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if a.isDraining() {
				return ErrDraining
			}
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		backoff = 0
		if hold != nil && hold(c) {
			continue
		}
		if !a.Adopt(c, handle) {
			c.Close()
		}
	}
}

// Adopt serves c, a connection that left the goroutine that served it and
// came back (proxy/sockio/park hands back a parked socket as a new
// net.Conn), as Serve serves an accepted one: handle runs in a new
// goroutine and owns c, which is closed after it returns; Drain waits for
// it and closes c when its context ends. Once Drain has begun it returns
// false and leaves c to the caller, who closes it.
func (a *Acceptor) Adopt(c net.Conn, handle func(net.Conn)) bool {
	if !a.track(c) {
		return false
	}
	go func() {
		defer a.untrack(c)
		defer c.Close()
		handle(c)
	}()
	return true
}

func (a *Acceptor) isDraining() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.draining
}

func (a *Acceptor) track(c net.Conn) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.draining {
		return false
	}
	a.conns.Add(c)
	a.wg.Add(1)
	return true
}

func (a *Acceptor) untrack(c net.Conn) {
	a.mu.Lock()
	a.conns.Delete(c)
	a.mu.Unlock()
	a.wg.Done()
}

// StopAccepting closes every listener; connections go on.
func (a *Acceptor) StopAccepting() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.draining = true
	for ln := range a.listeners {
		ln.Close()
	}
}

// Drain stops accepting, then waits for the connections in flight until
// ctx is done; then it closes those left and waits for their goroutines.
// It returns ctx.Err() when it had to close connections.
func (a *Acceptor) Drain(ctx context.Context) error {
	a.StopAccepting()
	done := make(chan struct{})
	go func() {
		a.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	a.mu.Lock()
	for c := range a.conns.All() {
		c.Close()
	}
	a.mu.Unlock()
	<-done
	return ctx.Err()
}

// Addrs returns the addresses being listened on.
func (a *Acceptor) Addrs() []net.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]net.Addr, 0, len(a.listeners))
	for ln := range a.listeners {
		out = append(out, ln.Addr())
	}
	return out
}
