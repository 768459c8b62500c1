package xds

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	proxyprotocolv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/proxy_protocol/v3"
)

// ProxyProtocolVersion is the PROXY protocol header a cluster's upstream
// connections start with (envoy.transport_sockets.upstream_proxy_protocol,
// what istiod writes for a DestinationRule's trafficPolicy.proxyProtocol).
type ProxyProtocolVersion uint8

const (
	// ProxyProtocolNone: no header.
	ProxyProtocolNone ProxyProtocolVersion = iota
	// ProxyProtocolV1 is the text header ("PROXY TCP4 ...\r\n").
	ProxyProtocolV1
	// ProxyProtocolV2 is the binary header.
	ProxyProtocolV2
)

// unwrapProxyProtocol returns the transport socket an
// upstream_proxy_protocol socket wraps and the header's version, or ts
// itself and ProxyProtocolNone for any other socket. TLVs (pass_through_tlvs,
// added_tlvs) are refused by the allowlist. Errors are relative to ts.
func unwrapProxyProtocol(ts *corev3.TransportSocket) (*corev3.TransportSocket, ProxyProtocolVersion, error) {
	var pp proxyprotocolv3.ProxyProtocolUpstreamTransport
	if ts.GetTypedConfig().MessageName() != nameOf(&pp) {
		return ts, ProxyProtocolNone, nil
	}
	if err := unpack(ts.GetTypedConfig(), &pp); err != nil {
		return nil, 0, at("typed_config", err)
	}
	v := ProxyProtocolV1
	if pp.GetConfig().GetVersion() == corev3.ProxyProtocolConfig_V2 {
		v = ProxyProtocolV2
	}
	return pp.GetTransportSocket(), v, nil // required by the proto's rules
}
