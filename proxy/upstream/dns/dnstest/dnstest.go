// Package dnstest serves DNS on loopback for tests: A and AAAA records set
// by the test, with a TTL it can change, over UDP.
package dnstest

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// Server answers queries for the names set with Set; other names get
// NXDOMAIN. Safe for concurrent use.
type Server struct {
	conn    net.PacketConn
	done    chan struct{}
	queries atomic.Int64

	mu      sync.Mutex
	records map[string]record // by lower-case name, no trailing dot
	fail    bool
}

type record struct {
	ttl   time.Duration
	addrs []netip.Addr
}

// Start serves on 127.0.0.1 (a free port) until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartAt(t, "127.0.0.1:0")
}

// StartAt serves on addr until the test ends.
func StartAt(t testing.TB, addr string) *Server {
	t.Helper()
	conn, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{conn: conn, done: make(chan struct{}), records: map[string]record{}}
	go s.serve()
	t.Cleanup(func() { conn.Close(); <-s.done })
	return s
}

// Addr is the server's ip:port.
func (s *Server) Addr() string { return s.conn.LocalAddr().String() }

// Queries is how many queries the server has answered.
func (s *Server) Queries() int64 { return s.queries.Load() }

// Set makes name resolve to addrs with ttl (none: the name exists without
// addresses).
func (s *Server) Set(name string, ttl time.Duration, addrs ...string) {
	r := record{ttl: ttl}
	for _, a := range addrs {
		r.addrs = append(r.addrs, netip.MustParseAddr(a))
	}
	s.mu.Lock()
	s.records[strings.ToLower(strings.TrimSuffix(name, "."))] = r
	s.mu.Unlock()
}

// Fail makes the server answer SERVFAIL (true) or normally (false).
func (s *Server) Fail(fail bool) {
	s.mu.Lock()
	s.fail = fail
	s.mu.Unlock()
}

func (s *Server) serve() {
	defer close(s.done)
	buf := make([]byte, 512)
	for {
		n, from, err := s.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		var q dnsmessage.Message
		if q.Unpack(buf[:n]) != nil || len(q.Questions) != 1 {
			continue
		}
		s.queries.Add(1)
		if out, err := s.answer(&q).Pack(); err == nil {
			s.conn.WriteTo(out, from)
		}
	}
}

func (s *Server) answer(q *dnsmessage.Message) *dnsmessage.Message {
	qq := q.Questions[0]
	m := &dnsmessage.Message{Header: dnsmessage.Header{ID: q.Header.ID, Response: true, Authoritative: true,
		RecursionDesired: q.Header.RecursionDesired}, Questions: q.Questions}
	s.mu.Lock()
	r, ok := s.records[strings.ToLower(strings.TrimSuffix(qq.Name.String(), "."))]
	fail := s.fail
	s.mu.Unlock()
	switch {
	case fail:
		m.Header.RCode = dnsmessage.RCodeServerFailure
		return m
	case !ok:
		m.Header.RCode = dnsmessage.RCodeNameError
		return m
	}
	h := dnsmessage.ResourceHeader{Name: qq.Name, Class: dnsmessage.ClassINET, TTL: uint32(r.ttl / time.Second)}
	for _, a := range r.addrs {
		switch {
		case a.Is4() && qq.Type == dnsmessage.TypeA:
			h.Type = dnsmessage.TypeA
			m.Answers = append(m.Answers, dnsmessage.Resource{Header: h, Body: &dnsmessage.AResource{A: a.As4()}})
		case a.Is6() && qq.Type == dnsmessage.TypeAAAA:
			h.Type = dnsmessage.TypeAAAA
			m.Answers = append(m.Answers, dnsmessage.Resource{Header: h, Body: &dnsmessage.AAAAResource{AAAA: a.As16()}})
		}
	}
	return m
}
