package relay

import "net"

// TCP adapts a *net.TCPConn to Conn, with Abort sending a reset (SO_LINGER 0)
// instead of a FIN.
type TCP struct{ *net.TCPConn }

// Abort closes the connection with a TCP RST.
func (c TCP) Abort() {
	c.SetLinger(0)
	c.TCPConn.Close()
}
