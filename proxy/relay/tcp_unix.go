//go:build unix

package relay

import (
	"net"
	"os"
	"syscall"
)

// WaitRead blocks until the socket has input or the peer's FIN, without a
// buffer: it peeks one byte, non-blocking, and waits in the runtime's
// poller while there is none (ReadWaiter). A socket error seen while
// peeking (a reset) is returned, since the kernel reports it only once.
func (c TCP) WaitRead() error {
	rc, err := c.TCPConn.SyscallConn()
	if err != nil {
		return nil
	}
	var perr error
	err = rc.Read(func(fd uintptr) bool {
		var one [1]byte
		_, _, e := syscall.Recvfrom(int(fd), one[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch e {
		case syscall.EAGAIN, syscall.EINTR:
			return false
		case nil:
		default:
			perr = os.NewSyscallError("recvfrom", e)
		}
		return true
	})
	if perr != nil {
		return &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: perr}
	}
	return err
}
