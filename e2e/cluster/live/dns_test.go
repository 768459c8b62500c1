package live

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// dnsServer answers A queries over UDP on loopback for the names a test sets (the
// waypoint's --dns-resolver in the world); other names get NXDOMAIN.
type dnsServer struct {
	conn net.PacketConn

	mu      sync.Mutex
	records map[string]dnsRecord // by lower-case name, no trailing dot
}

type dnsRecord struct {
	ttl   time.Duration
	addrs []netip.Addr
}

// dnsAddr is the world's name server address, which the waypoint is started with.
func (w *world) dnsAddr() string { return w.net + ".2:53" }

// dns serves DNS on the world's name server address until the test ends; it is also
// w.dnsSrv.
func (w *world) dns() *dnsServer {
	w.t.Helper()
	conn, err := net.ListenPacket("udp", w.dnsAddr())
	if err != nil {
		w.t.Fatal(err)
	}
	s := &dnsServer{conn: conn, records: map[string]dnsRecord{}}
	done := make(chan struct{})
	go func() { defer close(done); s.serve() }()
	w.t.Cleanup(func() { conn.Close(); <-done })
	w.dnsSrv = s
	return s
}

// set makes name resolve to the IPv4 addrs with ttl.
func (s *dnsServer) set(name string, ttl time.Duration, addrs ...string) {
	r := dnsRecord{ttl: ttl}
	for _, a := range addrs {
		r.addrs = append(r.addrs, netip.MustParseAddr(a))
	}
	s.mu.Lock()
	s.records[strings.ToLower(name)] = r
	s.mu.Unlock()
}

func (s *dnsServer) serve() {
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
		qq := q.Questions[0]
		m := dnsmessage.Message{Header: dnsmessage.Header{ID: q.Header.ID, Response: true, Authoritative: true}, Questions: q.Questions}
		s.mu.Lock()
		r, ok := s.records[strings.ToLower(strings.TrimSuffix(qq.Name.String(), "."))]
		s.mu.Unlock()
		if !ok {
			m.Header.RCode = dnsmessage.RCodeNameError
		}
		for _, a := range r.addrs {
			if qq.Type == dnsmessage.TypeA && a.Is4() {
				m.Answers = append(m.Answers, dnsmessage.Resource{
					Header: dnsmessage.ResourceHeader{Name: qq.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: uint32(r.ttl / time.Second)},
					Body:   &dnsmessage.AResource{A: a.As4()}})
			}
		}
		if out, err := m.Pack(); err == nil {
			s.conn.WriteTo(out, from)
		}
	}
}
