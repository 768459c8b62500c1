package adsclient

import (
	"fmt"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// partialEDSServer speaks state-of-the-world ADS as istiod does for EDS: when a request
// subscribes to more names, it answers with the new names only, and a response that leaves
// out a subscribed name means that name did not change (the xDS protocol's rule for EDS and
// RDS). It serves the fixture, then, once the first endpoints are ACKed, adds cluster "b".
type partialEDSServer struct {
	discoveryv3.UnimplementedAggregatedDiscoveryServiceServer
	t     *testing.T
	nonce int
}

func (s *partialEDSServer) StreamAggregatedResources(stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	r := fixture(s.t)
	send := func(t string, ms ...proto.Message) error {
		s.nonce++
		resp := &discoveryv3.DiscoveryResponse{TypeUrl: t, VersionInfo: fmt.Sprint(s.nonce), Nonce: fmt.Sprint(s.nonce)}
		for _, m := range ms {
			a, err := anypb.New(m)
			if err != nil {
				return err
			}
			resp.Resources = append(resp.Resources, a)
		}
		return stream.Send(resp)
	}
	clusters := func(extra ...*clusterv3.Cluster) []proto.Message {
		var ms []proto.Message
		for _, c := range append(r.Clusters, extra...) {
			ms = append(ms, c)
		}
		return ms
	}
	cla := map[string]proto.Message{"b": loadAssignment("b", "127.0.70.60", 8080)}
	for _, e := range r.Endpoints {
		cla[e.GetClusterName()] = e
	}
	sent := map[string]bool{}
	edsNonce, grown := "", false
	for {
		req, err := stream.Recv()
		if err != nil || req.GetErrorDetail() != nil {
			return nil
		}
		switch req.GetTypeUrl() {
		case resourcev3.ClusterType:
			if req.GetResponseNonce() == "" {
				if err := send(resourcev3.ClusterType, clusters()...); err != nil {
					return err
				}
			}
		case resourcev3.ListenerType:
			if req.GetResponseNonce() == "" {
				var ms []proto.Message
				for _, l := range r.Listeners {
					ms = append(ms, l)
				}
				if err := send(resourcev3.ListenerType, ms...); err != nil {
					return err
				}
			}
		case resourcev3.EndpointType:
			if req.GetResponseNonce() != "" && req.GetResponseNonce() == edsNonce && !grown {
				// The first endpoints are ACKed: a new cluster comes.
				grown = true
				if err := send(resourcev3.ClusterType, clusters(edsCluster("b", nil))...); err != nil {
					return err
				}
				continue
			}
			var ms []proto.Message
			for _, name := range req.GetResourceNames() {
				if !sent[name] && cla[name] != nil {
					sent[name] = true
					ms = append(ms, cla[name])
				}
			}
			if len(ms) > 0 {
				if err := send(resourcev3.EndpointType, ms...); err != nil {
					return err
				}
				edsNonce = fmt.Sprint(s.nonce)
			}
		}
	}
}

// A state-of-the-world EDS response that leaves out a subscribed name keeps that name's
// endpoints: istiod, when CDS adds a cluster, answers the grown EDS subscription with the new
// name only. Before this was understood, the other clusters' endpoints were dropped and the
// snapshot waited for them forever (a live istiod's DestinationRule subsets never applied).
func TestSotwEDSPartialResponse(t *testing.T) {
	const addr = "127.0.70.40:15010"
	serveADS(t, addr, &partialEDSServer{t: t})

	c := runClient(t, addr, Config{})
	waitReady(t, c, 10*time.Second, "no config applied")
	first := c.Snapshot()
	waitFor(t, "cluster b applied with its endpoint", func() bool {
		cl := c.Snapshot().Cluster("b")
		return cl != nil && len(cl.Endpoints) == 1
	})
	for _, e := range fixture(t).Endpoints {
		name := e.GetClusterName()
		if got, want := len(c.Snapshot().Cluster(name).Endpoints), len(first.Cluster(name).Endpoints); got != want || want == 0 {
			t.Errorf("cluster %s: %d endpoints after b came, %d before", name, got, want)
		}
	}
}
