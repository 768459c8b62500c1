package relay

import (
	"net"

	"github.com/gowaypoint/waypoint/proxy/sockio"
)

// TCP adapts a TCP connection to Conn, with reads and writes by raw system
// calls (sockio) and Abort sending a reset (SO_LINGER 0) instead of a FIN.
type TCP struct{ *sockio.Conn }

// NewTCP wraps c.
func NewTCP(c *net.TCPConn) TCP { return TCP{sockio.Wrap(c)} }

// Abort closes the connection with a TCP RST.
func (c TCP) Abort() {
	c.SetLinger(0)
	c.TCPConn.Close()
}
