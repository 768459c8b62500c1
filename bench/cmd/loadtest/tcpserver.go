package main

import (
	"net"
	"sync"
	"sync/atomic"
)

// tcpServer accepts connections on one address and runs handle on each in
// a goroutine of its own. It owns its accept goroutine and the handlers:
// close stops accepting, closes every open connection and waits for them.
type tcpServer struct {
	ln     net.Listener
	handle func(net.Conn)

	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{} // open; guarded by mu
}

func listenTCP(addr string, handle func(net.Conn)) (*tcpServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &tcpServer{ln: ln, handle: handle, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

func (s *tcpServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				c.Close()
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
			s.handle(c)
		}()
	}
}

func (s *tcpServer) close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// newSink is the bulk scenario's backend: it reads each connection to its
// end, counting the bytes in total, then closes it.
func newSink(addr string, total *atomic.Int64) (*tcpServer, error) {
	return listenTCP(addr, func(c net.Conn) {
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			total.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
}
