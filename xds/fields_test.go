package xds

import (
	"time"

	httpinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	internalupstreamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/internal_upstream/v3"
	proxyprotocolv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/proxy_protocol/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"testing"

	xdsmatcherv3 "github.com/cncf/xds/go/xds/type/matcher/v3"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	originaldstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	networkinputsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/matching/common_inputs/network/v3"
	ipv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/matching/input_matchers/ip/v3"
	rawbufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestCheckSupported(t *testing.T) {
	unknown := &listenerv3.Listener{Name: "x"}
	unknown.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 4242, protowire.VarintType), 7))

	onMatch := &xdsmatcherv3.Matcher_OnMatch{KeepMatching: true}
	tests := []struct {
		name string
		msg  proto.Message
		want string // "" for no error
	}{
		{
			name: "allowed fields only",
			msg:  &listenerv3.Listener{Name: "x", StatPrefix: "s", UseOriginalDst: wrapperspb.Bool(false)},
		},
		{
			name: "opaque field contents are not inspected",
			msg: &listenerv3.Listener{Name: "x", Metadata: &corev3.Metadata{
				FilterMetadata:      map[string]*structpb.Struct{"anything": {}},
				TypedFilterMetadata: nil,
			}},
		},
		{
			name: "field not allowed",
			msg:  &listenerv3.Listener{Name: "x", Freebind: wrapperspb.Bool(true)},
			want: "freebind: not supported yet",
		},
		{
			name: "path into a list",
			msg: &listenerv3.Listener{FilterChains: []*listenerv3.FilterChain{
				{Name: "ok"},
				{Name: "tls", TransportSocketConnectTimeout: durationpb.New(time.Second)},
			}},
			want: "filter_chains[1].transport_socket_connect_timeout: not supported yet",
		},
		{
			name: "path into a map, first key first",
			msg: &xdsmatcherv3.Matcher_MatcherTree_MatchMap{Map: map[string]*xdsmatcherv3.Matcher_OnMatch{
				"b": onMatch, "a": onMatch, "c": {},
			}},
			want: `map["a"].keep_matching: not supported yet`,
		},
		{
			name: "unknown field",
			msg:  unknown,
			want: "unknown field number 4242 in envoy.config.listener.v3.Listener (from a newer API?)",
		},
		{
			name: "message type without an allowlist entry",
			msg:  &corev3.Pipe{Path: "/tmp/x"},
			want: "message type envoy.config.core.v3.Pipe is not supported yet",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkSupported(tc.msg.ProtoReflect())
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("checkSupported = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestAllowlistIsConsistent checks that every allowlisted field exists, and
// that every message type reachable through allowed fields from the types
// the decoders check has an allowlist entry (otherwise a config using it
// would be refused with an unhelpful "message type ... not supported").
func TestAllowlistIsConsistent(t *testing.T) {
	roots := []proto.Message{
		&bootstrapv3.Bootstrap{}, &listenerv3.Listener{}, &clusterv3.Cluster{},
		&endpointv3.ClusterLoadAssignment{}, &tcpproxyv3.TcpProxy{}, &originaldstv3.OriginalDst{},
		&rawbufferv3.RawBuffer{}, &tlsv3.UpstreamTlsContext{}, &xdsmatcherv3.IPMatcher{}, &ipv3.Ip{},
		&networkinputsv3.DestinationIPInput{}, &networkinputsv3.DestinationPortInput{},
		&networkinputsv3.SourceIPInput{}, &networkinputsv3.SourcePortInput{},
		&networkinputsv3.ApplicationProtocolInput{}, &httpinspectorv3.HttpInspector{},
		&internalupstreamv3.InternalUpstreamTransport{}, &tlsv3.DownstreamTlsContext{},
		&proxyprotocolv3.ProxyProtocolUpstreamTransport{}, &tlsv3.Secret{},
	}
	var descs []protoreflect.MessageDescriptor
	for _, r := range roots {
		descs = append(descs, r.ProtoReflect().Descriptor())
	}
	for _, err := range allowlist.Verify(descs...) {
		t.Error(err)
	}
}
