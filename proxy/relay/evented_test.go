package relay

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"
)

// evPipe is an in-memory byte stream between two evEnds, evented like an
// HTTP/2 stream: the reading end is notified of each arrival.
type evEnd struct {
	mu      sync.Mutex
	cond    sync.Cond
	inbox   []byte
	eof     bool  // the peer closed its write half
	err     error // aborted
	notify  func()
	peer    *evEnd
	closed  bool
	aborted bool
}

func evPipe() (a, b *evEnd) {
	a, b = new(evEnd), new(evEnd)
	a.cond.L, b.cond.L = &a.mu, &b.mu
	a.peer, b.peer = b, a
	return a, b
}

// arrive changes e's receive state under its lock, then notifies.
func (e *evEnd) arrive(f func()) {
	e.mu.Lock()
	f()
	e.cond.Broadcast()
	fn := e.notify
	e.mu.Unlock()
	if fn != nil {
		fn()
	}
}

func (e *evEnd) readLocked(p []byte) (int, error) {
	switch {
	case e.err != nil:
		return 0, e.err
	case len(e.inbox) > 0:
		n := copy(p, e.inbox)
		e.inbox = e.inbox[n:]
		return n, nil
	case e.eof:
		return 0, io.EOF
	}
	return 0, nil
}

func (e *evEnd) Read(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for len(e.inbox) == 0 && !e.eof && e.err == nil {
		e.cond.Wait()
	}
	return e.readLocked(p)
}

func (e *evEnd) TryRead(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.readLocked(p)
}

func (e *evEnd) SetReadNotify(fn func()) {
	e.mu.Lock()
	e.notify = fn
	ready := len(e.inbox) > 0 || e.eof || e.err != nil
	e.mu.Unlock()
	if fn != nil && ready {
		fn()
	}
}

func (e *evEnd) Write(p []byte) (int, error) {
	e.mu.Lock()
	err := e.err
	e.mu.Unlock()
	if err != nil {
		return 0, err
	}
	e.peer.arrive(func() { e.peer.inbox = append(e.peer.inbox, p...) })
	return len(p), nil
}

func (e *evEnd) CloseWrite() error {
	e.peer.arrive(func() { e.peer.eof = true })
	return nil
}

func (e *evEnd) Close() error {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	return e.CloseWrite()
}

var errReset = errors.New("reset")

func (e *evEnd) Abort() {
	e.mu.Lock()
	e.aborted = true
	e.mu.Unlock()
	e.arrive(func() { e.err = errReset })
	e.peer.arrive(func() { e.peer.err = errReset })
}

// evSetup wires client <-> [down | Start | up] <-> backend.
func evSetup(t *testing.T, opts Options) (client, backend, down, up *evEnd, result <-chan Result) {
	client, down = evPipe()
	up, backend = evPipe()
	ch := make(chan Result, 1)
	Start(down, up, opts, nil, func(r Result) { ch <- r })
	return client, backend, down, up, ch
}

func readN(t *testing.T, e *evEnd, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(e, b); err != nil {
		t.Fatalf("reading %d bytes: %v", n, err)
	}
	return b
}

func TestStartEventedBothWaysWithHalfClose(t *testing.T) {
	client, backend, down, up, result := evSetup(t, Options{IdleTimeout: time.Minute})
	req := bytes.Repeat([]byte("q"), 100<<10)
	client.Write(req)
	if got := readN(t, backend, len(req)); !bytes.Equal(got, req) {
		t.Fatal("request bytes differ")
	}
	client.CloseWrite()
	if n, err := backend.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("backend after the client's half-close: %d, %v; want EOF", n, err)
	}
	backend.Write([]byte("response"))
	if got := readN(t, client, 8); string(got) != "response" {
		t.Fatalf("client got %q", got)
	}
	backend.CloseWrite()
	select {
	case r := <-result:
		if r.Err != nil || r.DownstreamToUpstream != int64(len(req)) || r.UpstreamToDownstream != 8 {
			t.Fatalf("result %+v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("relay did not end after both half-closes")
	}
	if !down.closed || !up.closed || down.aborted || up.aborted {
		t.Fatalf("sides: down closed %v aborted %v, up closed %v aborted %v", down.closed, down.aborted, up.closed, up.aborted)
	}
}

func TestStartEventedResetPropagates(t *testing.T) {
	client, backend, _, up, result := evSetup(t, Options{})
	client.Write([]byte("x"))
	readN(t, backend, 1)
	backend.Abort()
	select {
	case r := <-result:
		if !errors.Is(r.Err, errReset) {
			t.Fatalf("result error %v, want the reset", r.Err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("relay did not end after the backend's reset")
	}
	if _, err := client.Read(make([]byte, 1)); !errors.Is(err, errReset) {
		t.Fatalf("client read %v after the backend's reset, want a reset", err)
	}
	if !up.aborted {
		t.Fatal("upstream side not aborted")
	}
}

func TestStartEventedIdleTimeout(t *testing.T) {
	_, _, _, _, result := evSetup(t, Options{IdleTimeout: 50 * time.Millisecond})
	select {
	case r := <-result:
		if r.Err != ErrIdleTimeout {
			t.Fatalf("result error %v, want ErrIdleTimeout", r.Err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("idle timeout did not fire")
	}
}

// TestStartEventedIdleHoldsNoGoroutine opens many relays, moves a byte
// through each, and checks that, idle, they hold no goroutine; then that
// each still works.
func TestStartEventedIdleHoldsNoGoroutine(t *testing.T) {
	const n = 200
	base := runtime.NumGoroutine()
	type relay struct {
		client, backend *evEnd
		result          <-chan Result
	}
	relays := make([]relay, n)
	for i := range relays {
		c, b, _, _, r := evSetup(t, Options{})
		relays[i] = relay{c, b, r}
		c.Write([]byte{'a'})
		readN(t, b, 1)
		b.Write([]byte{'b'})
		readN(t, c, 1)
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > base {
		t.Fatalf("%d idle relays hold %d goroutines", n, g-base)
	}
	for _, r := range relays {
		r.client.Write([]byte("again"))
		if got := readN(t, r.backend, 5); string(got) != "again" {
			t.Fatalf("backend got %q", got)
		}
		r.client.CloseWrite()
		r.backend.CloseWrite()
		if res := <-r.result; res.Err != nil || res.DownstreamToUpstream != 6 {
			t.Fatalf("result %+v", res)
		}
	}
}
