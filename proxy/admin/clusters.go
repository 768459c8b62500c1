package admin

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func (src Sources) clusters(w http.ResponseWriter, r *http.Request) {
	if src.Clusters == nil {
		http.NotFound(w, r)
		return
	}
	cs := src.Clusters()
	switch r.URL.Query().Get("format") {
	case "json":
		marshal.write(w, cs)
	case "", "text":
		writeText(w, ClustersText(cs))
	default:
		http.Error(w, "usage: /clusters?format=(text|json)", http.StatusBadRequest)
	}
}

// ClustersText renders /clusters as Envoy's text format: one
// "cluster::[host::]key::value" line per fact.
func ClustersText(cs *adminv3.Clusters) string {
	var b strings.Builder
	for _, c := range cs.GetClusterStatuses() {
		name := c.GetName()
		obs := c.GetObservabilityName()
		if obs == "" {
			obs = name
		}
		fmt.Fprintf(&b, "%s::observability_name::%s\n", name, obs)
		for _, t := range c.GetCircuitBreakers().GetThresholds() {
			prio := "default_priority"
			if t.GetPriority() == corev3.RoutingPriority_HIGH {
				prio = "high_priority"
			}
			fmt.Fprintf(&b, "%s::%s::max_connections::%d\n", name, prio, t.GetMaxConnections().GetValue())
			fmt.Fprintf(&b, "%s::%s::max_pending_requests::%d\n", name, prio, t.GetMaxPendingRequests().GetValue())
			fmt.Fprintf(&b, "%s::%s::max_requests::%d\n", name, prio, t.GetMaxRequests().GetValue())
			fmt.Fprintf(&b, "%s::%s::max_retries::%d\n", name, prio, t.GetMaxRetries().GetValue())
		}
		fmt.Fprintf(&b, "%s::added_via_api::%t\n", name, c.GetAddedViaApi())
		for _, h := range c.GetHostStatuses() {
			host := hostString(h.GetAddress())
			for _, s := range h.GetStats() {
				fmt.Fprintf(&b, "%s::%s::%s::%d\n", name, host, s.GetName(), s.GetValue())
			}
			fmt.Fprintf(&b, "%s::%s::hostname::%s\n", name, host, h.GetHostname())
			fmt.Fprintf(&b, "%s::%s::health_flags::%s\n", name, host, HealthFlags(h.GetHealthStatus()))
			fmt.Fprintf(&b, "%s::%s::weight::%d\n", name, host, h.GetWeight())
			fmt.Fprintf(&b, "%s::%s::region::%s\n", name, host, h.GetLocality().GetRegion())
			fmt.Fprintf(&b, "%s::%s::zone::%s\n", name, host, h.GetLocality().GetZone())
			fmt.Fprintf(&b, "%s::%s::sub_zone::%s\n", name, host, h.GetLocality().GetSubZone())
			fmt.Fprintf(&b, "%s::%s::canary::false\n", name, host)
			fmt.Fprintf(&b, "%s::%s::priority::%d\n", name, host, h.GetPriority())
			fmt.Fprintf(&b, "%s::%s::success_rate::%s\n", name, host, rate(h.GetSuccessRate()))
			fmt.Fprintf(&b, "%s::%s::local_origin_success_rate::%s\n", name, host, rate(h.GetLocalOriginSuccessRate()))
		}
	}
	return b.String()
}

// rate is a success rate as Envoy prints it: -1 when not computed.
func rate(p *typev3.Percent) string {
	if p == nil || p.GetValue() < 0 {
		return "-1"
	}
	return strconv.FormatFloat(p.GetValue(), 'f', -1, 64)
}

// hostString renders an address as Envoy's text formats do: ip:port, or
// envoy://listener/endpoint_id for an internal address.
func hostString(a *corev3.Address) string {
	if sa := a.GetSocketAddress(); sa != nil {
		ip := sa.GetAddress()
		if strings.Contains(ip, ":") {
			ip = "[" + ip + "]"
		}
		return ip + ":" + strconv.Itoa(int(sa.GetPortValue()))
	}
	if in := a.GetEnvoyInternalAddress(); in != nil {
		return "envoy://" + in.GetServerListenerName() + "/" + in.GetEndpointId()
	}
	if p := a.GetPipe(); p != nil {
		return "unix://" + p.GetPath()
	}
	return ""
}

// HealthFlags renders a host's health as Envoy's health_flags: "healthy",
// or the failures joined by "/" (/failed_outlier_check, /failed_eds_health,
// /eds_status_draining, /degraded_eds_health, ...).
func HealthFlags(h *adminv3.HostHealthStatus) string {
	var flags []string
	if h.GetFailedActiveHealthCheck() {
		flags = append(flags, "/failed_active_hc")
	}
	if h.GetFailedOutlierCheck() {
		flags = append(flags, "/failed_outlier_check")
	}
	switch h.GetEdsHealthStatus() {
	case corev3.HealthStatus_UNHEALTHY, corev3.HealthStatus_TIMEOUT:
		flags = append(flags, "/failed_eds_health")
	case corev3.HealthStatus_DEGRADED:
		flags = append(flags, "/degraded_eds_health")
	case corev3.HealthStatus_DRAINING:
		flags = append(flags, "/eds_status_draining")
	}
	if h.GetPendingDynamicRemoval() {
		flags = append(flags, "/pending_dynamic_removal")
	}
	if len(flags) == 0 {
		return "healthy"
	}
	return strings.Join(flags, "")
}

// Thresholds renders circuit breaker thresholds for a ClusterStatus.
func Thresholds(maxConn, maxPending, maxReq, maxRetries uint32) *clusterv3.CircuitBreakers {
	t := &clusterv3.CircuitBreakers_Thresholds{Priority: corev3.RoutingPriority_DEFAULT}
	t.MaxConnections = u32(maxConn)
	t.MaxPendingRequests = u32(maxPending)
	t.MaxRequests = u32(maxReq)
	t.MaxRetries = u32(maxRetries)
	return &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{t}}
}

func u32(v uint32) *wrapperspb.UInt32Value { return wrapperspb.UInt32(v) }
