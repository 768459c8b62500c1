package route

import (
	"errors"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/gowaypoint/waypoint/internal/pbcheck"
)

var clusterNotFoundCodes = map[routev3.RouteAction_ClusterNotFoundResponseCode]int{
	routev3.RouteAction_SERVICE_UNAVAILABLE:   503,
	routev3.RouteAction_NOT_FOUND:             404,
	routev3.RouteAction_INTERNAL_SERVER_ERROR: 500,
}

// route compiles one route of vh, whose retry policy (nil if none) is the
// default. It returns the route-level mutations and per-filter configs
// apart, for the caller to combine with the other levels. Errors are
// relative to pb.
func (c *compiler) route(pb *routev3.Route, vh *virtualHost, vhRetry *RetryPolicy) (*Route, level, error) {
	var lv level
	r := &Route{
		name:            pb.GetName(),
		vhost:           vh,
		clusterNotFound: 503,
		timeout:         DefaultTimeout,
		retry:           vhRetry,
		metadata:        pb.GetMetadata(),
		decorator:       pb.GetDecorator(),
	}
	if pb.GetMatch() == nil {
		return nil, lv, pbcheck.ErrAt("match", "required")
	}
	var err error
	if r.match, err = compileRouteMatch(pb.GetMatch()); err != nil {
		return nil, lv, pbcheck.At("match", err)
	}
	switch a := pb.GetAction().(type) {
	case *routev3.Route_Route:
		if err := c.routeAction(r, a.Route); err != nil {
			return nil, lv, pbcheck.At("route", err)
		}
	case *routev3.Route_Redirect:
		r.action = ActionRedirect
		if r.redirect, err = compileRedirect(a.Redirect); err != nil {
			return nil, lv, pbcheck.At("redirect", err)
		}
	case *routev3.Route_DirectResponse:
		r.action = ActionDirectResponse
		if r.direct, err = c.directResponse(a.DirectResponse); err != nil {
			return nil, lv, pbcheck.At("direct_response", err)
		}
	default:
		return nil, lv, errors.New("one of route, redirect or direct_response is required")
	}
	if lv.req, err = compileHeaderMutation(pb.GetRequestHeadersToAdd(), pb.GetRequestHeadersToRemove(), "request_headers_to_add", "request_headers_to_remove"); err != nil {
		return nil, lv, err
	}
	if lv.resp, err = compileHeaderMutation(pb.GetResponseHeadersToAdd(), pb.GetResponseHeadersToRemove(), "response_headers_to_add", "response_headers_to_remove"); err != nil {
		return nil, lv, err
	}
	if lv.perFilter, err = c.perFilterConfigs(pb.GetTypedPerFilterConfig()); err != nil {
		return nil, lv, err
	}
	return r, lv, nil
}

// routeAction decodes a RouteAction into r; errors are relative to pb.
func (c *compiler) routeAction(r *Route, pb *routev3.RouteAction) error {
	var err error
	switch s := pb.GetClusterSpecifier().(type) {
	case *routev3.RouteAction_Cluster:
		r.action, r.cluster = ActionCluster, s.Cluster
		if err := c.checkCluster(s.Cluster); err != nil {
			return pbcheck.At("cluster", err)
		}
	case *routev3.RouteAction_ClusterHeader:
		r.action, r.clusterHeader = ActionClusterHeader, toLower(s.ClusterHeader)
	case *routev3.RouteAction_WeightedClusters:
		r.action = ActionWeightedClusters
		if r.weighted, err = compileWeightedClusters(s.WeightedClusters, c); err != nil {
			return pbcheck.At("weighted_clusters", err)
		}
	default:
		return errors.New("one of cluster, cluster_header or weighted_clusters is required")
	}
	code, ok := clusterNotFoundCodes[pb.GetClusterNotFoundResponseCode()]
	if !ok {
		return pbcheck.ErrAt("cluster_not_found_response_code", "unknown code %v", pb.GetClusterNotFoundResponseCode())
	}
	r.clusterNotFound = code

	r.prefixRewrite = pb.GetPrefixRewrite()
	if rw := pb.GetRegexRewrite(); rw != nil {
		if r.prefixRewrite != "" {
			return pbcheck.ErrAt("regex_rewrite", "only one of prefix_rewrite and regex_rewrite may be set")
		}
		if r.regexRewrite, err = compileRegexRewrite(rw); err != nil {
			return pbcheck.At("regex_rewrite", err)
		}
	}
	switch h := pb.GetHostRewriteSpecifier().(type) {
	case *routev3.RouteAction_HostRewriteLiteral:
		if h.HostRewriteLiteral != "" {
			r.hostRewrite = []byte(h.HostRewriteLiteral)
		}
	case *routev3.RouteAction_AutoHostRewrite:
		r.autoHostRewrite = h.AutoHostRewrite.GetValue()
	case *routev3.RouteAction_HostRewriteHeader:
		r.hostRewriteHeader = toLower(h.HostRewriteHeader)
	}

	if r.timeout, err = duration(pb.GetTimeout(), DefaultTimeout); err != nil {
		return pbcheck.At("timeout", err)
	}
	if pb.GetIdleTimeout() != nil {
		r.hasIdleTimeout = true
		if r.idleTimeout, err = duration(pb.GetIdleTimeout(), 0); err != nil {
			return pbcheck.At("idle_timeout", err)
		}
	}
	if err := r.grpcTimeouts(pb); err != nil {
		return err
	}
	if pb.GetRetryPolicy() != nil {
		if r.retry, err = compileRetryPolicy(pb.GetRetryPolicy()); err != nil {
			return pbcheck.At("retry_policy", err)
		}
	}
	for i, hp := range pb.GetHashPolicy() {
		p, err := compileHashPolicy(hp)
		if err != nil {
			return pbcheck.At(pbcheck.Idx("hash_policy", i), err)
		}
		r.hash = append(r.hash, p)
	}
	if r.mirrors, err = c.compileMirrorPolicies(pb.GetRequestMirrorPolicies()); err != nil {
		return err
	}
	return nil
}

// grpcTimeouts decodes max_stream_duration, or without it the older
// max_grpc_timeout and grpc_timeout_offset.
func (r *Route) grpcTimeouts(pb *routev3.RouteAction) error {
	var err error
	if msd := pb.GetMaxStreamDuration(); msd != nil {
		if msd.GetMaxStreamDuration() != nil {
			r.hasMaxStreamDur = true
			if r.maxStreamDuration, err = duration(msd.GetMaxStreamDuration(), 0); err != nil {
				return pbcheck.At("max_stream_duration.max_stream_duration", err)
			}
		}
		if msd.GetGrpcTimeoutHeaderMax() != nil {
			r.honorGRPCTimeout = true
			if r.grpcTimeoutMax, err = duration(msd.GetGrpcTimeoutHeaderMax(), 0); err != nil {
				return pbcheck.At("max_stream_duration.grpc_timeout_header_max", err)
			}
		}
		if r.grpcTimeoutOffset, err = duration(msd.GetGrpcTimeoutHeaderOffset(), 0); err != nil {
			return pbcheck.At("max_stream_duration.grpc_timeout_header_offset", err)
		}
		return nil
	}
	if pb.GetMaxGrpcTimeout() != nil {
		r.honorGRPCTimeout = true
		if r.grpcTimeoutMax, err = duration(pb.GetMaxGrpcTimeout(), 0); err != nil {
			return pbcheck.At("max_grpc_timeout", err)
		}
	}
	if r.grpcTimeoutOffset, err = duration(pb.GetGrpcTimeoutOffset(), 0); err != nil {
		return pbcheck.At("grpc_timeout_offset", err)
	}
	return nil
}

func compileRedirect(pb *routev3.RedirectAction) (*Redirect, error) {
	rd := &Redirect{
		Host:          pb.GetHostRedirect(),
		Port:          pb.GetPortRedirect(),
		Path:          pb.GetPathRedirect(),
		PrefixRewrite: pb.GetPrefixRewrite(),
		StripQuery:    pb.GetStripQuery(),
	}
	switch s := pb.GetSchemeRewriteSpecifier().(type) {
	case *routev3.RedirectAction_HttpsRedirect:
		if s.HttpsRedirect {
			rd.Scheme = "https"
		}
	case *routev3.RedirectAction_SchemeRedirect:
		rd.Scheme = toLower(s.SchemeRedirect)
	}
	code, ok := redirectCodes[pb.GetResponseCode()]
	if !ok {
		return nil, pbcheck.ErrAt("response_code", "unknown code %v", pb.GetResponseCode())
	}
	rd.Status = code
	if rw := pb.GetRegexRewrite(); rw != nil {
		var err error
		if rd.regexRewrite, err = compileRegexRewrite(rw); err != nil {
			return nil, pbcheck.At("regex_rewrite", err)
		}
	}
	return rd, nil
}

func (c *compiler) directResponse(pb *routev3.DirectResponseAction) (*DirectResponse, error) {
	d := &DirectResponse{Status: int(pb.GetStatus())}
	if d.Status < 200 || d.Status > 599 {
		return nil, pbcheck.ErrAt("status", "%d is not in [200, 599]", d.Status)
	}
	if b := pb.GetBody(); b != nil {
		switch b.GetSpecifier().(type) {
		case *corev3.DataSource_InlineString:
			d.Body = b.GetInlineString()
		case *corev3.DataSource_InlineBytes:
			d.Body = string(b.GetInlineBytes())
		default:
			return nil, pbcheck.ErrAt("body", "inline_string or inline_bytes required")
		}
		if len(d.Body) > c.maxBody {
			return nil, pbcheck.ErrAt("body", "%d bytes exceed max_direct_response_body_size_bytes %d", len(d.Body), c.maxBody)
		}
	}
	return d, nil
}
