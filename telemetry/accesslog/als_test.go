package accesslog

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	grpcv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

// alsServer is a gRPC access log service keeping every message of every stream.
type alsServer struct {
	alsv3.UnimplementedAccessLogServiceServer
	mu      sync.Mutex
	streams [][]*alsv3.StreamAccessLogsMessage
}

func (a *alsServer) StreamAccessLogs(st grpc.ClientStreamingServer[alsv3.StreamAccessLogsMessage, alsv3.StreamAccessLogsResponse]) error {
	a.mu.Lock()
	i := len(a.streams)
	a.streams = append(a.streams, nil)
	a.mu.Unlock()
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return st.SendAndClose(&alsv3.StreamAccessLogsResponse{})
		}
		if err != nil {
			return err
		}
		a.mu.Lock()
		a.streams[i] = append(a.streams[i], m)
		a.mu.Unlock()
	}
}

// istiod's envoyHttpAls and envoyTcpAls, as it renders them.
func alsEntry(t *testing.T, m proto.Message) *accesslogv3.AccessLog {
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return &accesslogv3.AccessLog{Name: "als", ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: a}}
}

func alsCommon(logName string) *grpcv3.CommonGrpcAccessLogConfig {
	return &grpcv3.CommonGrpcAccessLogConfig{LogName: logName, TransportApiVersion: corev3.ApiVersion_V3,
		GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{
			ClusterName: "outbound|9001||als", Authority: "als.istio-system.svc.cluster.local"}}},
		FilterStateObjectsToLog: []string{"upstream_peer", "downstream_peer"}}
}

// TestGRPCAccessLogs: an HTTP and a TCP logger stream their entries to the service, each
// stream's first message naming the node and the log name; HTTP entries carry the request's
// method, authority, path, headers logged, the response's code and flags, the peers' filter
// state; TCP entries the bytes.
func TestGRPCAccessLogs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	als := &alsServer{}
	alsv3.RegisterAccessLogServiceServer(srv, als)
	go srv.Serve(ln)
	defer srv.Stop()

	ls, err := Decode([]*accesslogv3.AccessLog{
		alsEntry(t, &grpcv3.HttpGrpcAccessLogConfig{CommonConfig: alsCommon("http_envoy_accesslog"), AdditionalRequestHeadersToLog: []string{"X-User"}}),
		alsEntry(t, &grpcv3.TcpGrpcAccessLogConfig{CommonConfig: alsCommon("tcp_envoy_accesslog")}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if g := ls[0].ALS; g == nil || g.TCP || g.LogName != "http_envoy_accesslog" || g.BufferBytes != 16<<10 || g.FlushInterval != time.Second ||
		g.RequestHeaders[0] != "x-user" || !NeedsPeers(ls) {
		t.Fatalf("decoded %+v", ls[0].ALS)
	}
	node := &corev3.Node{Id: "waypoint~127.0.0.1~waypoint.ns~ns.svc.cluster.local", Cluster: "waypoint.ns"}
	s := &Sinks{Node: node, Dial: func(ctx context.Context, cluster string) (net.Conn, error) {
		if cluster != "outbound|9001||als" {
			t.Errorf("dialed %q", cluster)
		}
		return (&net.Dialer{}).DialContext(ctx, "tcp", ln.Addr().String())
	}}
	down := &filters.Downstream{RemoteAddr: netip.MustParseAddrPort("127.0.0.7:40000"), LocalAddr: netip.MustParseAddrPort("127.0.0.9:15008"),
		Destination: netip.MustParseAddrPort("10.0.0.5:9080"), PeerURI: "spiffe://cluster.local/ns/ns/sa/productpage"}
	peer := func(f string) string { return map[string]string{"app": "reviews", "namespace": "ns"}[f] }
	for _, p := range []string{"/a", "/b"} {
		req := &l7.Request{Method: "GET", Proto: l7.HTTP11, Authority: []byte("reviews:9080"), Path: []byte(p)}
		req.Header.Set("x-user", "jason")
		s.Emit(ls[:1], &Record{Start: time.Now(), Duration: time.Millisecond, Request: req, Response: &l7.Response{Status: 503},
			Downstream: down, Code: 503, Flags: filters.FlagUF | filters.FlagURX, Cluster: "inbound-vip|9080|http|reviews",
			Host: netip.MustParseAddrPort("10.1.0.1:9080"), Destination: peer})
	}
	s.Emit(ls[1:], &Record{Start: time.Now(), Downstream: down, BytesIn: 5, BytesOut: 7, Cluster: "c"})
	s.Close() // sends what is pending
	als.mu.Lock()
	defer als.mu.Unlock()
	var http, tcp []*alsv3.StreamAccessLogsMessage
	for _, st := range als.streams {
		if len(st) == 0 {
			t.Fatal("an empty stream")
		}
		id := st[0].GetIdentifier()
		if !proto.Equal(id.GetNode(), node) {
			t.Errorf("identifier %v", id)
		}
		for _, m := range st[1:] {
			if m.GetIdentifier() != nil {
				t.Errorf("identifier on a later message")
			}
		}
		switch id.GetLogName() {
		case "http_envoy_accesslog":
			http = st
		case "tcp_envoy_accesslog":
			tcp = st
		}
	}
	var entries []*datav3.HTTPAccessLogEntry
	for _, m := range http {
		entries = append(entries, m.GetHttpLogs().GetLogEntry()...)
	}
	if len(entries) != 2 {
		t.Fatalf("%d HTTP entries", len(entries))
	}
	e := entries[1]
	c := e.GetCommonProperties()
	if e.GetRequest().GetPath() != "/b" || e.GetRequest().GetAuthority() != "reviews:9080" || e.GetRequest().GetRequestMethod() != corev3.RequestMethod_GET ||
		e.GetRequest().GetRequestHeaders()["x-user"] != "jason" || e.GetRequest().GetPort().GetValue() != 9080 ||
		e.GetResponse().GetResponseCode().GetValue() != 503 || e.GetProtocolVersion() != datav3.HTTPAccessLogEntry_HTTP11 ||
		!c.GetResponseFlags().GetUpstreamConnectionFailure() || !c.GetResponseFlags().GetUpstreamRetryLimitExceeded() ||
		c.GetUpstreamCluster() != "inbound-vip|9080|http|reviews" || c.GetUpstreamRemoteAddress().GetSocketAddress().GetAddress() != "10.1.0.1" ||
		c.GetDownstreamLocalAddress().GetSocketAddress().GetPortValue() != 9080 ||
		c.GetTlsProperties().GetPeerCertificateProperties().GetSubjectAltName()[0].GetUri() != down.PeerURI {
		t.Errorf("HTTP entry %v", e)
	}
	var st structpb.Struct
	if err := c.GetFilterStateObjects()["upstream_peer"].UnmarshalTo(&st); err != nil || st.GetFields()["app"].GetStringValue() != "reviews" {
		t.Errorf("upstream_peer %v %v", &st, err)
	}
	if _, ok := c.GetFilterStateObjects()["downstream_peer"]; ok {
		t.Errorf("downstream_peer without a source")
	}
	if len(tcp) != 1 || len(tcp[0].GetTcpLogs().GetLogEntry()) != 1 {
		t.Fatalf("TCP stream %v", tcp)
	}
	if cp := tcp[0].GetTcpLogs().GetLogEntry()[0].GetConnectionProperties(); cp.GetReceivedBytes() != 5 || cp.GetSentBytes() != 7 {
		t.Errorf("TCP entry %v", cp)
	}
}

// TestGRPCAccessLogsDropped: past ALSMaxPending entries waiting (a service that cannot be
// reached), new ones are dropped and counted, and Close does not wait for the service.
func TestGRPCAccessLogsDropped(t *testing.T) {
	ls, err := Decode([]*accesslogv3.AccessLog{alsEntry(t, &grpcv3.TcpGrpcAccessLogConfig{CommonConfig: alsCommon("tcp")})})
	if err != nil {
		t.Fatal(err)
	}
	block := make(chan struct{})
	s := &Sinks{Dial: func(ctx context.Context, _ string) (net.Conn, error) {
		select {
		case <-block:
		case <-ctx.Done():
		}
		return nil, errors.New("unreachable")
	}}
	before := counterValue(alsDropped)
	for range ALSMaxPending + 5000 { // the sender holds its first batch (16 KiB) while it cannot connect
		s.Emit(ls, &Record{Start: time.Now()})
	}
	if n := counterValue(alsDropped) - before; n < 10 {
		t.Errorf("%v dropped, want at least 10", n)
	}
	close(block)
	s.Close()
}

func TestGRPCAccessLogsRefused(t *testing.T) {
	for _, c := range []struct {
		m    proto.Message
		want string
	}{
		{&grpcv3.HttpGrpcAccessLogConfig{}, "common_config: required"},
		{&grpcv3.TcpGrpcAccessLogConfig{CommonConfig: &grpcv3.CommonGrpcAccessLogConfig{TransportApiVersion: corev3.ApiVersion_V3, LogName: "x"}}, "envoy_grpc.cluster_name: required"},
		{&grpcv3.HttpGrpcAccessLogConfig{CommonConfig: func() *grpcv3.CommonGrpcAccessLogConfig {
			c := alsCommon("x")
			c.GrpcStreamRetryPolicy = &corev3.RetryPolicy{}
			return c
		}()}, "grpc_stream_retry_policy"},
	} {
		_, err := Decode([]*accesslogv3.AccessLog{alsEntry(t, c.m)})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.m, err, c.want)
		}
	}
}

func counterValue(c interface{ Write(*dto.Metric) error }) float64 {
	var m dto.Metric
	c.Write(&m)
	return m.GetCounter().GetValue()
}
