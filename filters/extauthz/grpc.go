package extauthz

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/internal/pbcheck"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

// checkPath is the gRPC method of the authorization service.
const checkPath = "/envoy.service.auth.v3.Authorization/Check"

// maxCheckResponse bounds what is read of the service's answer.
const maxCheckResponse = 1 << 20

// checkGRPC asks the gRPC service: one unary call, an HTTP/2 request with
// gRPC's framing sent through the stream's Upstream to the cluster.
func (f *Filter) checkGRPC(ctx context.Context, s *filters.Stream, pr *PerRoute, body []byte, bs *BodySettings) (decision, error) {
	out, err := f.svc.check(ctx, f.upstreamOf(s), f.checkRequest(s, pr, body, bs))
	if err != nil {
		return decision{}, err
	}
	return grpcDecision(out), nil
}

// grpcService is a grpc_service.envoy_grpc: the cluster and :authority of
// the calls, their timeout and initial_metadata.
type grpcService struct {
	cluster, authority string
	timeout            time.Duration
	initialMetadata    []kv
}

func newGRPCService(g *corev3.GrpcService) (grpcService, error) {
	eg := g.GetEnvoyGrpc()
	if eg == nil || eg.GetClusterName() == "" {
		return grpcService{}, pbcheck.ErrAt("envoy_grpc.cluster_name", "required")
	}
	svc := grpcService{cluster: eg.GetClusterName(), authority: eg.GetAuthority()}
	if svc.authority == "" {
		svc.authority = svc.cluster
	}
	var err error
	if svc.timeout, err = pbcheck.Duration(g.GetTimeout(), DefaultTimeout); err != nil {
		return grpcService{}, pbcheck.At("timeout", err)
	}
	for _, h := range g.GetInitialMetadata() {
		svc.initialMetadata = append(svc.initialMetadata, kv{h.GetKey(), h.GetValue()})
	}
	return svc, nil
}

// check makes one Check call: a unary gRPC call, an HTTP/2 request with
// gRPC's framing sent through up to the cluster. ctx bounds it.
func (g *grpcService) check(ctx context.Context, up filters.Upstream, cr *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	msg, err := proto.Marshal(cr)
	if err != nil {
		return nil, err
	}
	frame := make([]byte, 5+len(msg))
	binary.BigEndian.PutUint32(frame[1:5], uint32(len(msg)))
	copy(frame[5:], msg)

	req := &l7.Request{Method: "POST", Scheme: "http", Authority: []byte(g.authority), Path: []byte(checkPath),
		Body: bytes.NewReader(frame), ContentLength: int64(len(frame)), Proto: l7.HTTP2}
	req.Header.Set("content-type", "application/grpc")
	req.Header.Set("te", "trailers")
	req.Header.Set("grpc-timeout", strconv.FormatInt(g.timeout.Milliseconds(), 10)+"m")
	for _, h := range g.initialMetadata {
		req.Header.Add(h.key, h.value)
	}
	deadline, _ := ctx.Deadline()
	var out authv3.CheckResponse
	err = filters.CallWhole(ctx, up, &filters.UpstreamRequest{Cluster: g.cluster, Request: req, Deadline: deadline}, maxCheckResponse,
		func(resp *l7.Response, data []byte) error {
			if resp.Status != 200 {
				return fmt.Errorf("HTTP status %d", resp.Status)
			}
			gs, ok := resp.Trailer.Get("grpc-status")
			if !ok {
				gs, ok = resp.Header.Get("grpc-status")
			}
			if !ok || string(gs) != "0" {
				return fmt.Errorf("grpc-status %q %s", gs, resp.Trailer.GetString("grpc-message"))
			}
			if len(data) < 5 || data[0] != 0 || int(binary.BigEndian.Uint32(data[1:5])) != len(data)-5 {
				return fmt.Errorf("malformed gRPC message (%d bytes)", len(data))
			}
			return proto.Unmarshal(data[5:], &out)
		})
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	return &out, nil
}

// grpcDecision reads a CheckResponse: status OK allows (with the
// OkHttpResponse's header changes), anything else denies (with the
// DeniedHttpResponse's status, 403 by default, headers and body).
func grpcDecision(cr *authv3.CheckResponse) decision {
	if cr.GetStatus().GetCode() == 0 {
		d := decision{kind: kindOK}
		okr := cr.GetOkResponse()
		for _, h := range okr.GetHeaders() {
			if appends(h, false) {
				d.appendHeaders = append(d.appendHeaders, kv{strings.ToLower(h.GetHeader().GetKey()), h.GetHeader().GetValue()})
			} else {
				d.setHeaders = append(d.setHeaders, kv{strings.ToLower(h.GetHeader().GetKey()), h.GetHeader().GetValue()})
			}
		}
		for _, n := range okr.GetHeadersToRemove() {
			d.removeHeaders = append(d.removeHeaders, strings.ToLower(n))
		}
		return d
	}
	dr := cr.GetDeniedResponse()
	d := decision{kind: kindDenied, status: 403, body: dr.GetBody()}
	if c := dr.GetStatus().GetCode(); c != 0 {
		d.status = int(c)
	}
	for _, h := range dr.GetHeaders() {
		d.clientHeaders = append(d.clientHeaders, kv{strings.ToLower(h.GetHeader().GetKey()), h.GetHeader().GetValue()})
	}
	return d
}

// appends says whether a HeaderValueOption adds a value rather than
// replacing the header; def is the message's default for append.
func appends(h *corev3.HeaderValueOption, def bool) bool {
	if h.GetAppend() != nil {
		return h.GetAppend().GetValue()
	}
	switch h.GetAppendAction() {
	case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD, corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
		return false
	case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
		return def
	}
	return def
}

// checkRequest describes the request as Envoy's CheckRequest does: the
// peers (the caller's identity as principal), and the HTTP request with
// its headers (pseudo-headers included, repeated values joined with ",").
func (f *Filter) checkRequest(s *filters.Stream, pr *PerRoute, body []byte, bs *BodySettings) *authv3.CheckRequest {
	r := s.Request
	// Path is the request target as received, query included; Envoy
	// leaves Query empty.
	hr := &authv3.AttributeContext_HttpRequest{
		Method:   r.Method,
		Path:     string(r.Path),
		Host:     string(r.Authority),
		Scheme:   r.Scheme,
		Protocol: r.Proto.String(),
		Size:     r.ContentLength,
		Headers:  make(map[string]string, r.Header.Len()+4),
		Id:       r.Header.GetString("x-request-id"),
	}
	if hr.Scheme == "" {
		hr.Scheme = "http"
	}
	if hr.Size < 0 {
		hr.Size = -1
	}
	for _, p := range []struct{ name, value string }{{":authority", hr.Host}, {":method", hr.Method}, {":path", hr.Path}, {":scheme", hr.Scheme}} {
		if f.requestHeaderAllowed([]byte(p.name)) {
			hr.Headers[p.name] = p.value
		}
	}
	for _, fl := range r.Header.Fields() {
		if !f.requestHeaderAllowed(fl.Name) {
			continue
		}
		n := string(fl.Name)
		if v, ok := hr.Headers[n]; ok {
			hr.Headers[n] = v + "," + string(fl.Value)
		} else {
			hr.Headers[n] = string(fl.Value)
		}
	}
	if body != nil {
		if bs != nil && bs.AsBytes {
			hr.RawBody = body
		} else {
			hr.Body = string(body)
		}
		hr.Headers["x-envoy-auth-partial-body"] = strconv.FormatBool(r.ContentLength > int64(len(body)))
	}
	ac := &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Time: timestamppb.New(time.Now()), Http: hr}}
	if d := s.Downstream; d != nil {
		ac.Source, ac.Destination = peers(d, s.TrustedRemoteAddr())
	}
	if pr != nil && len(pr.ContextExtensions) > 0 {
		ac.ContextExtensions = pr.ContextExtensions
	}
	return &authv3.CheckRequest{Attributes: ac}
}

// peers are the source (the caller's address and identity) and the
// destination (the original destination and the waypoint's identity).
func peers(d *filters.Downstream, remote netip.AddrPort) (src, dst *authv3.AttributeContext_Peer) {
	to := d.Destination
	if !to.IsValid() {
		to = d.LocalAddr
	}
	return &authv3.AttributeContext_Peer{Address: address(remote), Principal: d.PeerURI},
		&authv3.AttributeContext_Peer{Address: address(to), Principal: d.LocalURI}
}

func address(a netip.AddrPort) *corev3.Address {
	if !a.IsValid() {
		return nil
	}
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: a.Addr().String(), PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(a.Port())}}}}
}
