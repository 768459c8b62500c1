// Package park holds accepted connections that have not sent anything yet
// outside the Go runtime: no goroutine and no entry in the runtime's poller
// per connection, until the connection has input.
//
// Why: a connection waiting in the runtime's poller holds a goroutine and
// a poll descriptor, and the runtime never frees either (goroutine
// descriptors stay on its free lists, poll descriptors come from memory it
// never returns): a burst of connections that send nothing (an attacker's
// pending handshakes) leaves the process about 1.2 KiB larger per
// connection for good. A Parker keeps each one as a descriptor in its own
// epoll instance, one goroutine for all of them, a few dozen bytes each,
// and gives memory back when they leave.
//
// Ownership: Park takes the connection (it closes the net.Conn and keeps a
// duplicate of its descriptor); from then on the Parker owns the socket,
// until it gives it back to the connection's Owner (Ready: a new net.Conn on
// the same socket, with every byte the peer sent still unread) or closes
// it (Gone: the peer left without sending anything, the deadline passed or
// the Parker closed). The Owner's methods run on the Parker's goroutine.
//
// Linux only (epoll); elsewhere New returns errors.ErrUnsupported and the
// caller waits as it would without a Parker.
package park

import (
	"errors"
	"net"
	"os"
)

// Owner is the owner of a parked connection: once Park has taken it, the
// Parker calls exactly one of its methods, once, on the Parker's goroutine. Neither may block (start
// a goroutine for any work that waits): every other parked connection
// waits meanwhile.
type Owner interface {
	// Ready is called when the connection has input: c is a new
	// connection on the same socket, registered in the runtime's poller,
	// none of whose input has been read (its FIN or reset, if any, comes
	// after it). Ready owns c. c's RemoteAddr may be nil if the peer reset
	// the connection meanwhile: keep the address it was parked with.
	Ready(c net.Conn)
	// Gone is called when the Parker closed the connection: err is io.EOF
	// when the peer closed it without sending anything, the socket's
	// error when it reset it (syscall.ECONNRESET), ErrDeadline when the
	// deadline passed first, ErrClosed when the Parker was closed, or the
	// error that kept the Parker from giving it back (no descriptor left
	// for a new net.Conn). Closing those costs no goroutine: a burst of
	// peers that leave after sending nothing stays in the Parker.
	Gone(err error)
}

var (
	// ErrDeadline is Gone's error when a connection's deadline passed
	// before it had input. It is os.ErrDeadlineExceeded: a net.Error
	// whose Timeout is true, as a read past a socket's deadline returns.
	ErrDeadline = os.ErrDeadlineExceeded
	// ErrClosed is Park's error after Close, and Gone's for the
	// connections Close closed.
	ErrClosed = errors.New("park: parker closed")
	// ErrReady is Park's error for a connection that has input or its
	// peer's FIN already: it is left to the caller, to serve at once.
	ErrReady = errors.New("park: connection has input")
)
