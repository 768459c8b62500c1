// Package sockio reads and writes TCP sockets with raw system calls
// inside the Go runtime's poller, for the proxy's hot paths.
//
// Why by hand: every syscall.Syscall (what net.Conn's Read and Write use)
// enters the runtime's syscall state, and when the scheduler's monitor
// thread (sysmon) has gone to sleep because every P was idle, entering it
// wakes that thread with a futex. A proxy under a steady, moderate load
// goes idle between requests, so each request paid one futex wake-up and
// a few sleeps of the monitor thread: about a third of the context
// switches the load harness counted per request. A socket of the poller
// is non-blocking, so its read and write calls return at once
// (EAGAIN when they would block) and need no syscall state: Conn makes
// them with syscall.RawSyscall inside syscall.RawConn's Read and Write,
// which wait in the poller as net.Conn does and honour its deadlines.
//
// The trade-off: sysmon also preempts goroutines that run too long, and
// it now sleeps until the next timer while the proxy's syscalls go by. A
// goroutine that computes for long without yielding keeps its P for up to
// that long (the proxy's connections keep timers of seconds); the proxy's
// request work is short and bounded, and other Ps, the GC's preemption and
// every blocking call are unaffected.
package sockio

import (
	"io"
	"net"
	"syscall"
	"unsafe"
)

// Conn is a *net.TCPConn whose Read and Write use raw system calls. Every
// other method (deadlines, CloseWrite, Close, ReadFrom for splice) is the
// TCPConn's. Safe for one reader and one writer at a time, as net.Conn.
// Reads and writes allocate nothing: the callbacks the poller runs are
// bound once, and their arguments and results live in the Conn.
type Conn struct {
	*net.TCPConn
	rc      syscall.RawConn
	rd, wr  call
	readFn  func(fd uintptr) bool
	writeFn func(fd uintptr) bool
	peekFn  func(fd uintptr) bool
}

// call is one Read's or Write's buffer and outcome.
type call struct {
	p     []byte
	n     int
	errno syscall.Errno
	one   [1]byte // WaitRead's peek
}

// Wrap returns c with raw reads and writes; c's own when its raw
// connection is unavailable (never for an open TCP socket).
func Wrap(c *net.TCPConn) *Conn {
	w := &Conn{TCPConn: c}
	if rc, err := c.SyscallConn(); err == nil {
		w.rc = rc
		w.readFn, w.writeFn, w.peekFn = w.rd.read, w.wr.write, w.rd.peek
	}
	return w
}

// Read reads like net.Conn.Read: at least one byte, or io.EOF, or an
// error (a deadline's included).
func (c *Conn) Read(p []byte) (int, error) {
	if c.rc == nil {
		return c.TCPConn.Read(p)
	}
	if len(p) == 0 {
		return 0, nil
	}
	c.rd = call{p: p}
	err := c.rc.Read(c.readFn)
	n, errno := c.rd.n, c.rd.errno
	c.rd.p = nil
	switch {
	case err != nil:
		return 0, opError("read", c, err)
	case errno != 0:
		return 0, opError("read", c, errno)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// read is the poller's callback for Read: false to wait for input.
func (r *call) read(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&r.p[0])), uintptr(len(r.p)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		r.n, r.errno = int(n), e
		return true
	}
}

// WaitRead blocks until the socket has input or the peer's FIN, without a
// buffer: it peeks one byte and waits in the poller while there is none
// (relay.ReadWaiter). A socket error seen while peeking (a reset) is
// returned, since the kernel reports it only once. It uses the reader's
// state: not concurrently with Read.
func (c *Conn) WaitRead() error {
	if c.rc == nil {
		return nil
	}
	c.rd.errno = 0
	err := c.rc.Read(c.peekFn)
	switch {
	case err != nil:
		return opError("read", c, err)
	case c.rd.errno != 0:
		return opError("read", c, c.rd.errno)
	}
	return nil
}

// peek is the poller's callback for WaitRead: false to wait for input.
func (r *call) peek(fd uintptr) bool {
	for {
		_, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&r.one[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		r.errno = e
		return true
	}
}

// Write writes all of p, waiting in the poller while the socket buffer
// is full, like net.Conn.Write.
func (c *Conn) Write(p []byte) (int, error) {
	if c.rc == nil {
		return c.TCPConn.Write(p)
	}
	if len(p) == 0 {
		return 0, nil
	}
	c.wr = call{p: p}
	err := c.rc.Write(c.writeFn)
	n, errno := c.wr.n, c.wr.errno
	c.wr.p = nil
	switch {
	case err != nil:
		return n, opError("write", c, err)
	case errno != 0:
		return n, opError("write", c, errno)
	}
	return n, nil
}

// write is the poller's callback for Write: false to wait for room.
func (w *call) write(fd uintptr) bool {
	for w.n < len(w.p) {
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&w.p[w.n])), uintptr(len(w.p)-w.n))
		switch e {
		case 0:
			w.n += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			w.errno = e
			return true
		}
	}
	return true
}

func opError(op string, c *Conn, err error) error {
	if _, ok := err.(*net.OpError); ok {
		return err
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// Raw is the connection's syscall.RawConn (nil if it had none).
func (c *Conn) Raw() syscall.RawConn { return c.rc }

// WrapConn wraps c when it is a *net.TCPConn and returns it as it is
// otherwise.
func WrapConn(c net.Conn) net.Conn {
	if tc, ok := c.(*net.TCPConn); ok {
		return Wrap(tc)
	}
	return c
}
