package xds

import (
	"net/netip"
	"slices"
	"strings"
)

// Istio's metadata, as istiod writes it on clusters and endpoints
// (filter_metadata["istio"]), read for telemetry's destination labels.
// It is read from the metadata when asked, not at decode: telemetry asks
// once per (route, endpoint, peer) and caches what it makes of it.

// IstioService is one entry of a cluster's istio.services: the service
// the cluster stands for.
type IstioService struct {
	Host, Name, Namespace string
}

// IstioServices returns the cluster's filter_metadata.istio.services, in
// order; nil when there are none.
func (c *Cluster) IstioServices() []IstioService {
	if c.Metadata == nil {
		return slices.Clone(c.istioServices) // BuildWire kept them
	}
	ns := c.Metadata.GetFilterMetadata()["istio"]
	var out []IstioService
	for _, v := range ns.GetFields()["services"].GetListValue().GetValues() {
		f := v.GetStructValue().GetFields()
		out = append(out, IstioService{
			Host:      f["host"].GetStringValue(),
			Name:      f["name"].GetStringValue(),
			Namespace: f["namespace"].GetStringValue(),
		})
	}
	return out
}

// IstioWorkload is an endpoint's workload, from its
// filter_metadata.istio.workload, "name;namespace;canonical
// service;canonical revision;cluster" as istiod writes it.
type IstioWorkload struct {
	Name, Namespace, CanonicalService, CanonicalRevision, Cluster string
}

// IstioWorkload parses the endpoint's istio.workload; false when absent.
// Missing trailing parts are empty.
func (e *Endpoint) IstioWorkload() (IstioWorkload, bool) {
	v, ok := e.istioWorkloadValue()
	if !ok {
		return IstioWorkload{}, false
	}
	parts := strings.Split(v, ";")
	get := func(i int) string {
		if i < len(parts) {
			return parts[i]
		}
		return ""
	}
	return IstioWorkload{Name: get(0), Namespace: get(1), CanonicalService: get(2), CanonicalRevision: get(3), Cluster: get(4)}, true
}

// istioWorkloadValue is the endpoint's istio.workload string, from its
// metadata, or as BuildWire kept it.
func (e *Endpoint) istioWorkloadValue() (string, bool) {
	if e.Metadata == nil {
		return e.istioWorkload, e.hasIstioWorkload
	}
	v, ok := e.Metadata.GetFilterMetadata()["istio"].GetFields()["workload"]
	return v.GetStringValue(), ok
}

// EndpointAt returns the cluster's endpoint with address addr, or nil.
// In a DNS cluster, an address a name resolved to is that name's endpoint
// (the first with the port when several names have it).
func (c *Cluster) EndpointAt(addr netip.AddrPort) *Endpoint {
	for i := range c.Endpoints {
		if c.Endpoints[i].Address == addr {
			return &c.Endpoints[i]
		}
	}
	if c.DNS != nil {
		for i := range c.Endpoints {
			if e := &c.Endpoints[i]; e.Hostname != "" && e.Address.Port() == addr.Port() {
				return e
			}
		}
	}
	return nil
}

// DubboLabels returns the endpoint's Dubbo service version and group, as a
// call's version and group attachments are matched against them: its
// waypoint metadata (DubboVersion, DubboGroup), else, for the version,
// the canonical revision of istiod's istio.workload (the workload's
// service.istio.io/canonical-revision, app.kubernetes.io/version or
// version label, "latest" without one). istiod sends no group: a group
// comes only from the waypoint metadata.
func (e *Endpoint) DubboLabels() (version, group string) {
	version, group = e.DubboVersion, e.DubboGroup
	if version == "" {
		if w, ok := e.IstioWorkload(); ok {
			version = w.CanonicalRevision
		}
	}
	return version, group
}
