package upstream

import (
	"encoding/binary"
	"net/netip"
	"strconv"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/xds"
)

// A cluster whose connections start with a PROXY protocol header
// (xds.Cluster.ProxyProtocol) carries in it the downstream's source and
// original destination, so its connections are not shared: each request
// (each TCP stream) has its own, closed after it. Envoy shares one among the
// requests of one downstream connection; the upstream sees the same headers,
// on more connections.

// proxyHeader returns the PROXY protocol header of version v for a
// connection from down's remote address to its original destination (its
// local address when it has none), as Envoy's upstream_proxy_protocol
// socket writes it: v1 "PROXY TCP4 src dst sport dport\r\n" (TCP6 for
// IPv6, UNKNOWN when the addresses are not two of one family); v2 binary,
// the LOCAL command without addresses in that case. nil for
// xds.ProxyProtocolNone.
func proxyHeader(v xds.ProxyProtocolVersion, down *filters.Downstream) []byte {
	if v == xds.ProxyProtocolNone {
		return nil
	}
	var src, dst netip.AddrPort
	if down != nil {
		src, dst = down.RemoteAddr, down.Destination
		if !dst.IsValid() {
			dst = down.LocalAddr
		}
	}
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	known := src.IsValid() && dst.IsValid() && src.Addr().Is4() == dst.Addr().Is4()
	if v == xds.ProxyProtocolV1 {
		if !known {
			return []byte("PROXY UNKNOWN\r\n")
		}
		b := []byte("PROXY TCP4 ")
		if src.Addr().Is6() {
			b = []byte("PROXY TCP6 ")
		}
		b = src.Addr().AppendTo(b)
		b = append(b, ' ')
		b = dst.Addr().AppendTo(b)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(src.Port()), 10)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(dst.Port()), 10)
		return append(b, "\r\n"...)
	}
	b := []byte("\r\n\r\n\x00\r\nQUIT\n")
	if !known {
		return append(b, 0x20, 0x00, 0x00, 0x00) // LOCAL, unspecified, no addresses
	}
	if src.Addr().Is4() {
		b = append(b, 0x21, 0x11, 0x00, 12) // PROXY, TCP over IPv4
	} else {
		b = append(b, 0x21, 0x21, 0x00, 36) // PROXY, TCP over IPv6
	}
	b = append(b, src.Addr().AsSlice()...)
	b = append(b, dst.Addr().AsSlice()...)
	b = binary.BigEndian.AppendUint16(b, src.Port())
	return binary.BigEndian.AppendUint16(b, dst.Port())
}
