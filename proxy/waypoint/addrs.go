package waypoint

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Wildcards are the wildcard addresses a pod with addresses ips listens
// on at port, as istiod and Istio's agent choose a proxy's from its
// INSTANCE_IPS: 0.0.0.0 when they are all IPv4 (or there are none), [::]
// when they are all IPv6, both when they are of both families (the first
// address's family first).
func Wildcards(ips []netip.Addr, port uint16) []netip.AddrPort {
	v4 := netip.AddrPortFrom(netip.IPv4Unspecified(), port)
	v6 := netip.AddrPortFrom(netip.IPv6Unspecified(), port)
	var has4, has6 bool
	for _, ip := range ips {
		if ip.Unmap().Is4() {
			has4 = true
		} else {
			has6 = true
		}
	}
	switch {
	case has4 && has6 && !ips[0].Unmap().Is4():
		return []netip.AddrPort{v6, v4}
	case has4 && has6:
		return []netip.AddrPort{v4, v6}
	case has6:
		return []netip.AddrPort{v6}
	default:
		return []netip.AddrPort{v4}
	}
}

// ParseAddrs parses one ip:port, or several separated by commas.
func ParseAddrs(s string) ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	for _, f := range strings.Split(s, ",") {
		ap, err := netip.ParseAddrPort(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("%q: want ip:port (IPv6 in brackets), or several separated by commas", s)
		}
		out = append(out, ap)
	}
	return out, nil
}

// JoinAddrs renders addrs as ParseAddrs reads them.
func JoinAddrs(addrs []netip.AddrPort) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}

func addrsString(addrs []net.Addr) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}
