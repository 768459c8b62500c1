package adsclient

import (
	"fmt"
	"sync"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/gowaypoint/waypoint/xds/xdstest"
)

// listenersFirstServer speaks state-of-the-world ADS with the config of xdstest.Scale: 3
// Services, then, once the first listeners are ACKed, a 4th whose listeners come before the
// clusters that have its cluster, as a live istiod sent them a waypoint while 1,000 Services
// were being created. Like istiod, it does not send a refused response again. It records the
// NACKs it receives.
type listenersFirstServer struct {
	discoveryv3.UnimplementedAggregatedDiscoveryServiceServer
	t *testing.T

	mu    sync.Mutex
	nacks []string
}

func (s *listenersFirstServer) StreamAggregatedResources(stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	byType := func(n int) map[string][]*anypb.Any {
		out := map[string][]*anypb.Any{}
		for _, a := range xdstest.Scale(s.t, n) {
			out[a.GetTypeUrl()] = append(out[a.GetTypeUrl()], a)
		}
		return out
	}
	three, four := byType(3), byType(4)
	cla := map[string]*anypb.Any{}
	for i, a := range four[resourcev3.EndpointType] {
		host, _, _, _ := xdstest.ScaleService(i)
		cla["inbound-vip|9080|http|"+host] = a
	}
	nonce := 0
	send := func(t string, as []*anypb.Any) error {
		nonce++
		return stream.Send(&discoveryv3.DiscoveryResponse{TypeUrl: t, VersionInfo: fmt.Sprint(nonce), Nonce: fmt.Sprint(nonce), Resources: as})
	}
	ldsNonce, grown := "", false
	sent := map[string]bool{}
	for {
		req, err := stream.Recv()
		if err != nil {
			return nil
		}
		if req.GetErrorDetail() != nil {
			s.mu.Lock()
			s.nacks = append(s.nacks, req.GetErrorDetail().GetMessage())
			s.mu.Unlock()
			continue
		}
		switch req.GetTypeUrl() {
		case resourcev3.ClusterType:
			if req.GetResponseNonce() == "" {
				if err := send(resourcev3.ClusterType, three[resourcev3.ClusterType]); err != nil {
					return err
				}
			}
		case resourcev3.ListenerType:
			switch {
			case req.GetResponseNonce() == "":
				if err := send(resourcev3.ListenerType, three[resourcev3.ListenerType]); err != nil {
					return err
				}
				ldsNonce = fmt.Sprint(nonce)
			case req.GetResponseNonce() == ldsNonce && !grown:
				// The first listeners are ACKed: the 4th Service comes, its listener first.
				grown = true
				if err := send(resourcev3.ListenerType, four[resourcev3.ListenerType]); err != nil {
					return err
				}
				if err := send(resourcev3.ClusterType, four[resourcev3.ClusterType]); err != nil {
					return err
				}
			}
		case resourcev3.EndpointType:
			var as []*anypb.Any
			for _, name := range req.GetResourceNames() {
				if !sent[name] && cla[name] != nil {
					sent[name] = true
					as = append(as, cla[name])
				}
			}
			if len(as) > 0 {
				if err := send(resourcev3.EndpointType, as); err != nil {
					return err
				}
			}
		}
	}
}

// Listeners whose routes name a cluster that has not come yet are taken, not refused: istiod
// writes its route configurations with validate_clusters false, and Envoy then loads them and
// answers 503 (NC) on such a route until the cluster comes. A live istiod sent a waypoint the
// listeners of a new Service before the clusters that had its cluster; they were refused, istiod
// does not send a refused response again, and the Service stayed unserved until the next push
// changed the listeners (never, after the last Service of a bulk apply).
func TestListenersBeforeTheirClusters(t *testing.T) {
	const addr = "127.36.0.20:15010"
	s := &listenersFirstServer{t: t}
	serveADS(t, addr, s)

	c := runClient(t, addr, Config{})
	waitReady(t, c, 10*time.Second, "no config applied")
	waitFor(t, "the 4th Service applied with its chain, its cluster and its endpoint", func() bool {
		snap := c.Snapshot()
		host, _, _, _ := xdstest.ScaleService(3)
		cl := snap.Cluster("inbound-vip|9080|http|" + host)
		return cl != nil && len(cl.Endpoints) == 1 && len(snap.Listener("main_internal").FilterChains) == 4+2
	})
	checkScale(t, c.Snapshot(), 4)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.nacks) > 0 {
		t.Errorf("NACKs: %q", s.nacks)
	}
}
