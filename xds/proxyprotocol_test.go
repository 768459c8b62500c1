package xds

import (
	"testing"
)

func TestDecodeClusterProxyProtocol(t *testing.T) {
	const (
		raw      = `{name: raw_buffer, typed_config: {"@type": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer}}`
		ppType   = `"@type": type.googleapis.com/envoy.extensions.transport_sockets.proxy_protocol.v3.ProxyProtocolUpstreamTransport`
		internal = `"@type": type.googleapis.com/envoy.extensions.transport_sockets.internal_upstream.v3.InternalUpstreamTransport`
	)
	for _, tc := range []struct {
		name      string
		ts        string
		transport Transport
		pp        ProxyProtocolVersion
		err       string
	}{
		{"none", raw, TransportPlaintext, ProxyProtocolNone, ""},
		{"inside internal_upstream, as istiod writes it (config: {}: V1)",
			`{name: internal_upstream, typed_config: {` + internal + `, passthrough_metadata: [{kind: {host: {}}, name: istio}],
			  transport_socket: {name: envoy.transport_sockets.upstream_proxy_protocol, typed_config: {` + ppType + `, config: {}, transport_socket: ` + raw + `}}}}`,
			transportInternal, ProxyProtocolV1, ""},
		{"V2 around raw_buffer",
			`{name: pp, typed_config: {` + ppType + `, config: {version: V2}, transport_socket: ` + raw + `}}`,
			TransportPlaintext, ProxyProtocolV2, ""},
		{"TLVs", `{name: pp, typed_config: {` + ppType + `, config: {version: V2, pass_through_tlvs: {match_type: INCLUDE_ALL}}, transport_socket: ` + raw + `}}`,
			0, 0, "transport_socket.typed_config.config.pass_through_tlvs: not supported yet"},
		{"nothing wrapped", `{name: pp, typed_config: {` + ppType + `, config: {version: V1}}}`,
			0, 0, "transport_socket.typed_config: invalid ProxyProtocolUpstreamTransport.TransportSocket: value is required"},
		{"an unsupported socket wrapped", `{name: pp, typed_config: {` + ppType + `, config: {}, transport_socket: {name: x, typed_config: {"@type": type.googleapis.com/envoy.extensions.transport_sockets.proxy_protocol.v3.ProxyProtocolUpstreamTransport, config: {}, transport_socket: ` + raw + `}}}}`,
			0, 0, `transport_socket.typed_config.transport_socket: unsupported transport socket "x"...`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := decodeClusterYAML(t, `{name: c, transport_socket: `+tc.ts+`}`)
			if tc.err != "" {
				if err == nil || !errorMatches(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Transport != tc.transport || c.ProxyProtocol != tc.pp {
				t.Errorf("transport %v, PROXY protocol %d; want %v, %d", c.Transport, c.ProxyProtocol, tc.transport, tc.pp)
			}
		})
	}
}
