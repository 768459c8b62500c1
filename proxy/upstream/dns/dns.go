// Package dns resolves the host names of DNS clusters (STRICT_DNS and
// LOGICAL_DNS) with one name server, as Envoy's c-ares resolver does with
// the first server of /etc/resolv.conf: A and AAAA queries over UDP
// (TCP when the answer is truncated), the answer's addresses and its
// smallest TTL (for respect_dns_ttl). Names are queried as given, fully
// qualified: no search list.
package dns

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/gowaypoint/waypoint/xds"
)

// DefaultTimeout bounds one query when the context has no deadline
// (c-ares's default is 5 s).
const DefaultTimeout = 5 * time.Second

// Client queries one name server. The zero value queries the system's
// (SystemServer). Safe for concurrent use.
type Client struct {
	// Server is the name server's ip:port; empty: SystemServer().
	Server string
	// Timeout bounds one query; 0: DefaultTimeout.
	Timeout time.Duration
}

// ErrServer is wrapped by the errors of a server that answered with a
// failure (SERVFAIL, REFUSED...), as opposed to a name that has no address.
var ErrServer = errors.New("DNS server failure")

// resolvConf is read by SystemServer.
var resolvConf = "/etc/resolv.conf"

// SystemServer returns the first nameserver of /etc/resolv.conf as
// ip:53, or 127.0.0.1:53 when it names none (as the C library does).
func SystemServer() string {
	f, err := os.Open(resolvConf)
	if err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) >= 2 && fs[0] == "nameserver" {
				if ip, err := netip.ParseAddr(fs[1]); err == nil {
					return netip.AddrPortFrom(ip.WithZone(""), 53).String()
				}
			}
		}
	}
	return "127.0.0.1:53"
}

// Lookup resolves name's addresses of family and returns them (IPv4 ones
// first under DNSAll) with the smallest TTL of the records used. A name
// without addresses of the family is no error: it has no addresses (nil,
// 0). Errors are the server's failures and network errors.
func (c *Client) Lookup(ctx context.Context, name string, family xds.DNSLookupFamily) ([]netip.Addr, time.Duration, error) {
	switch family {
	case xds.DNSV4Only:
		return c.query(ctx, name, dnsmessage.TypeA)
	case xds.DNSV6Only:
		return c.query(ctx, name, dnsmessage.TypeAAAA)
	case xds.DNSAuto, xds.DNSV4Preferred:
		first, second := dnsmessage.TypeAAAA, dnsmessage.TypeA
		if family == xds.DNSV4Preferred {
			first, second = second, first
		}
		addrs, ttl, err := c.query(ctx, name, first)
		if err != nil || len(addrs) > 0 {
			return addrs, ttl, err
		}
		return c.query(ctx, name, second)
	case xds.DNSAll:
		v4, ttl4, err := c.query(ctx, name, dnsmessage.TypeA)
		if err != nil {
			return nil, 0, err
		}
		v6, ttl6, err := c.query(ctx, name, dnsmessage.TypeAAAA)
		if err != nil {
			return nil, 0, err
		}
		switch {
		case len(v4) == 0:
			return v6, ttl6, nil
		case len(v6) == 0:
			return v4, ttl4, nil
		}
		return append(v4, v6...), min(ttl4, ttl6), nil
	}
	return nil, 0, fmt.Errorf("dns: lookup family %v", family)
}

// query asks for name's records of type t.
func (c *Client) query(ctx context.Context, name string, t dnsmessage.Type) ([]netip.Addr, time.Duration, error) {
	server := c.Server
	if server == "" {
		server = SystemServer()
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	qname, err := dnsmessage.NewName(strings.TrimSuffix(name, ".") + ".")
	if err != nil {
		return nil, 0, fmt.Errorf("dns: %q: %w", name, err)
	}
	id := uint16(rand.Uint32())
	q := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: id, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: qname, Type: t, Class: dnsmessage.ClassINET}},
	}
	req, err := q.Pack()
	if err != nil {
		return nil, 0, err
	}
	resp, err := exchangeUDP(ctx, server, req, id)
	if err == nil && resp.Header.Truncated {
		resp, err = exchangeTCP(ctx, server, req, id)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("dns: %s %v at %s: %w", name, t, server, err)
	}
	switch resp.Header.RCode {
	case dnsmessage.RCodeSuccess, dnsmessage.RCodeNameError:
	default:
		return nil, 0, fmt.Errorf("dns: %s %v at %s: %w: %v", name, t, server, ErrServer, resp.Header.RCode)
	}
	var addrs []netip.Addr
	var ttl uint32
	for _, rr := range resp.Answers {
		var a netip.Addr
		switch b := rr.Body.(type) {
		case *dnsmessage.AResource:
			if t != dnsmessage.TypeA {
				continue
			}
			a = netip.AddrFrom4(b.A)
		case *dnsmessage.AAAAResource:
			if t != dnsmessage.TypeAAAA {
				continue
			}
			a = netip.AddrFrom16(b.AAAA)
		default: // CNAMEs: the answer holds the records of the chain's end
			continue
		}
		if len(addrs) == 0 || rr.Header.TTL < ttl {
			ttl = rr.Header.TTL
		}
		addrs = append(addrs, a)
	}
	return addrs, time.Duration(ttl) * time.Second, nil
}

// exchangeUDP sends req and returns the first answer with its id.
func exchangeUDP(ctx context.Context, server string, req []byte, id uint16) (*dnsmessage.Message, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", server)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := conn.Write(req); err != nil {
		return nil, ctxErr(ctx, err)
	}
	buf := make([]byte, 1232)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return nil, ctxErr(ctx, err)
		}
		var m dnsmessage.Message
		if m.Unpack(buf[:n]) != nil || m.Header.ID != id || !m.Header.Response {
			continue // not our answer: keep waiting
		}
		return &m, nil
	}
}

// exchangeTCP sends req over TCP (length-prefixed) and reads the answer.
func exchangeTCP(ctx context.Context, server string, req []byte, id uint16) (*dnsmessage.Message, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", server)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	msg := binary.BigEndian.AppendUint16(nil, uint16(len(req)))
	if _, err := conn.Write(append(msg, req...)); err != nil {
		return nil, ctxErr(ctx, err)
	}
	var l [2]byte
	if _, err := io.ReadFull(conn, l[:]); err != nil {
		return nil, ctxErr(ctx, err)
	}
	buf := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(conn, buf); err != nil {
		return nil, ctxErr(ctx, err)
	}
	var m dnsmessage.Message
	if err := m.Unpack(buf); err != nil {
		return nil, err
	}
	if m.Header.ID != id {
		return nil, errors.New("answer for another query")
	}
	return &m, nil
}

// ctxErr prefers the context's error to the deadline error it caused.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
