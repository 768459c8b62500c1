package xds

import (
	"net/netip"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// socketAddress decodes an Address holding a socket_address with an IP
// literal and a port_value (the allowlist has already refused pipes, internal
// addresses, named ports and UDP). Port 0 is accepted only if zeroPort.
// Errors are relative to the Address.
func socketAddress(a *corev3.Address, zeroPort bool) (netip.AddrPort, error) {
	sa := a.GetSocketAddress()
	if sa == nil {
		return netip.AddrPort{}, at("socket_address", errRequired)
	}
	ip, err := netip.ParseAddr(sa.GetAddress())
	if err != nil || ip.Zone() != "" {
		return netip.AddrPort{}, errAt("socket_address.address",
			"%q is not an IP address (hostnames are not supported yet)", sa.GetAddress())
	}
	port := sa.GetPortValue()
	switch {
	case port > 65535:
		return netip.AddrPort{}, errAt("socket_address.port_value", "%d is not a port", port)
	case port == 0 && !zeroPort:
		return netip.AddrPort{}, errAt("socket_address.port_value", "must be > 0")
	}
	return netip.AddrPortFrom(ip, uint16(port)), nil
}

// cidr decodes an address_prefix and prefix_len pair (of Envoy's or xds's
// CidrRange) into a masked prefix. As in Envoy, an absent prefix_len is 0 and
// host bits are cleared. Errors are relative to the CidrRange.
func cidr(address string, length *wrapperspb.UInt32Value) (netip.Prefix, error) {
	ip, err := netip.ParseAddr(address)
	if err != nil || ip.Zone() != "" {
		return netip.Prefix{}, errAt("address_prefix", "%q is not an IP address", address)
	}
	bits := length.GetValue()
	if bits > uint32(ip.BitLen()) {
		return netip.Prefix{}, errAt("prefix_len", "%d is longer than an IPv%d address", bits, ipVersion(ip))
	}
	p, err := ip.Prefix(int(bits))
	if err != nil {
		return netip.Prefix{}, errAt("prefix_len", "%v", err)
	}
	return p, nil
}

func ipVersion(ip netip.Addr) int {
	if ip.Is4() {
		return 4
	}
	return 6
}
