package hbone

import (
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"

	"github.com/gowaypoint/waypoint/proxy/sockio"
)

// crypto/tls writes each record of a Write with its own write to the
// socket: a 64 KiB flush of HTTP/2 frames is four 16 KiB records, four
// syscalls and four loopback or NIC packets. recordBatcher gathers the
// records of one Write into one socket write instead.

// maxRecordBatch bounds the records gathered for one socket write: one
// HTTP/2 write buffer (64 KiB) of records and their overhead.
const maxRecordBatch = 68 << 10

var recordBatchPool = sync.Pool{New: func() any { b := make([]byte, 0, maxRecordBatch); return &b }}

// recordSocket sits under a tls.Conn: while a batch is open, what TLS
// writes is gathered in a pooled buffer and written out when the batch
// closes (or the buffer fills); otherwise writes go straight through
// (handshake, alerts, a key update sent by the reading side). Writes are
// serialized by mu so that gathered and direct records keep their order.
type recordSocket struct {
	net.Conn
	// hello is set once a server has read the client's whole ClientHello
	// (its handshake timeout is then a handshake's, not a ClientHello's).
	hello atomic.Bool
	mu    sync.Mutex
	open  bool
	buf   *[]byte // gathered records; nil when none
}

func (r *recordSocket) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.open {
		if err := r.flushLocked(); err != nil {
			return 0, err
		}
		return r.Conn.Write(p)
	}
	if r.buf != nil && len(*r.buf)+len(p) > cap(*r.buf) {
		if err := r.flushLocked(); err != nil {
			return 0, err
		}
	}
	if len(p) > maxRecordBatch {
		return r.Conn.Write(p)
	}
	if r.buf == nil {
		r.buf = recordBatchPool.Get().(*[]byte)
	}
	*r.buf = append(*r.buf, p...)
	return len(p), nil
}

func (r *recordSocket) begin() {
	r.mu.Lock()
	r.open = true
	r.mu.Unlock()
}

func (r *recordSocket) end() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.open = false
	return r.flushLocked()
}

func (r *recordSocket) flushLocked() error {
	if r.buf == nil {
		return nil
	}
	b := r.buf
	r.buf = nil
	_, err := r.Conn.Write(*b)
	*b = (*b)[:0]
	recordBatchPool.Put(b)
	return err
}

// batchedTLS is a TLS connection whose every Write leaves in one socket
// write, whatever number of records it makes. It is what the HTTP/2
// engine is given: each of its flushes is one Write.
type batchedTLS struct {
	*tls.Conn
	sock *recordSocket
}

// tlsServer and tlsClient wrap raw like tls.Server and tls.Client, with
// the records of each Write batched into one socket write, and a TCP
// socket read and written by raw system calls (sockio).
func tlsServer(raw net.Conn, cfg *tls.Config) *batchedTLS {
	s := &recordSocket{Conn: sockio.WrapConn(raw)} // raw may be wrapped already
	return &batchedTLS{Conn: tls.Server(s, cfg), sock: s}
}

func tlsClient(raw net.Conn, cfg *tls.Config) *batchedTLS {
	s := &recordSocket{Conn: sockio.WrapConn(raw)}
	return &batchedTLS{Conn: tls.Client(s, cfg), sock: s}
}

func (b *batchedTLS) Write(p []byte) (int, error) {
	b.sock.begin()
	n, err := b.Conn.Write(p)
	if ferr := b.sock.end(); err == nil && ferr != nil {
		// The records are sealed and counted by TLS; their loss breaks
		// the connection, which the caller sees as this error.
		return 0, ferr
	}
	return n, err
}
