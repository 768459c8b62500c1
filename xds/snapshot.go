package xds

import (
	"errors"
	"fmt"
	"io"
	"sync"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
)

// Resource kinds named in a ResourceError.
const (
	kindListener  = "listener"
	kindCluster   = "cluster"
	kindEndpoints = "cluster_load_assignment"
)

// Snapshot is one immutable, validated configuration. Nothing reachable from
// it is modified after Build returns; it is safe for concurrent reads.
type Snapshot struct {
	// Version identifies the configuration (the xDS version_info, or a hash
	// of the bootstrap file).
	Version string
	// Listeners in config order.
	Listeners []*Listener
	// Clusters by name.
	Clusters map[string]*Cluster

	listeners    map[string]*Listener
	clusterOrder []*clusterv3.Cluster                // config order, for the config dump
	endpoints    []*endpointv3.ClusterLoadAssignment // as given to Build
	bootstrap    *bootstrapv3.Bootstrap              // set by ParseBootstrap; nil from Build
	raw          *Resources                          // set by BuildResources: the resources as given
	wire         *Wire                               // set by BuildWire instead of raw

	sourceVersions map[string]string // accepted xDS versions by type URL; see SetSourceVersions

	owned     []io.Closer // the filters and per-route configs that own something, in build order
	closeOnce sync.Once
	closeErr  error
}

// Close closes the filters (and per-route configs) of the snapshot that
// own something (io.Closers), last built first, once; later calls return
// the first call's error. A nil Snapshot has none.
//
// The snapshot's owner calls it when the snapshot is dropped: replaced by
// a new one (after the new one is in force), refused, or built only to be
// validated. Streams that started on the snapshot may still be running
// then: Close does not wait for them, so a filter stays safe to call after
// Close (it answers from what it has, or fails closed). Everything else of
// the snapshot stays readable.
func (s *Snapshot) Close() error {
	if s == nil {
		return nil
	}
	s.closeOnce.Do(func() { s.closeErr = closeAll(s.owned) })
	return s.closeErr
}

// Listener returns the listener named name, or nil. A nil Snapshot has none.
func (s *Snapshot) Listener(name string) *Listener {
	if s == nil {
		return nil
	}
	return s.listeners[name]
}

// Cluster returns the cluster named name, or nil. A nil Snapshot has none.
func (s *Snapshot) Cluster(name string) *Cluster {
	if s == nil {
		return nil
	}
	return s.Clusters[name]
}

// Build validates and decodes resources into a Snapshot. It is the one entry
// point of both the bootstrap file and ADS. It decodes the endpoints, then the
// clusters, then the listeners, each in order, and returns the first error, a
// *ResourceError naming the resource and the field path. Besides each
// resource on its own it checks that names are unique, that every tcp_proxy's
// cluster exists and that there is at least one listener.
//
// Build is a pure function of its arguments. The returned snapshot keeps the
// messages (for the config dump and equality checks): the caller must not
// modify them afterwards. It builds with the zero BuildOptions (filters
// count into no registry and have no cluster manager); the waypoint uses
// BuildOptions.Build.
func Build(version string, listeners []*listenerv3.Listener, clusters []*clusterv3.Cluster,
	endpoints []*endpointv3.ClusterLoadAssignment) (*Snapshot, error) {
	return BuildOptions{}.Build(version, listeners, clusters, endpoints)
}

// Build is the package's Build with o's registry, logger and cluster
// manager given to the filters it builds.
//
// The snapshot owns the filters it built: Snapshot.Close closes those that
// are io.Closers. When the build fails, it closes those it had built.
func (o BuildOptions) Build(version string, listeners []*listenerv3.Listener, clusters []*clusterv3.Cluster,
	endpoints []*endpointv3.ClusterLoadAssignment) (*Snapshot, error) {
	return o.build(version, listeners, clusters, endpoints, nil)
}

// build is Build with the SDS secrets received over ADS (nil: none).
func (o BuildOptions) build(version string, listeners []*listenerv3.Listener, clusters []*clusterv3.Cluster,
	endpoints []*endpointv3.ClusterLoadAssignment, secrets map[string]*Secret) (*Snapshot, error) {
	b := o.newBuild()
	b.secrets = secrets
	s, err := b.snapshot(version, listeners, clusters, endpoints)
	if err != nil {
		closeAll(b.owned) // nothing to report them to: the build's error says what failed
		return nil, err
	}
	s.owned = b.owned
	return s, nil
}

func (b *build) snapshot(version string, listeners []*listenerv3.Listener, clusters []*clusterv3.Cluster,
	endpoints []*endpointv3.ClusterLoadAssignment) (*Snapshot, error) {
	eds, err := indexEndpoints(endpoints)
	if err != nil {
		return nil, err
	}
	b.clusters = make(map[string]*Cluster, len(clusters))
	s := &Snapshot{
		Version:      version,
		Clusters:     b.clusters,
		listeners:    make(map[string]*Listener, len(listeners)),
		clusterOrder: clusters,
		endpoints:    endpoints,
	}
	for i, pb := range clusters {
		if pb == nil {
			return nil, fmt.Errorf("clusters[%d]: nil Cluster", i)
		}
		c, err := decodeCluster(pb, eds)
		if err != nil {
			if ee := (*endpointsError)(nil); errors.As(err, &ee) {
				return nil, &ResourceError{Kind: kindEndpoints, Name: ee.service, Err: ee.err}
			}
			return nil, &ResourceError{Kind: kindCluster, Name: pb.GetName(), Err: err}
		}
		if s.Clusters[c.Name] != nil {
			return nil, &ResourceError{Kind: kindCluster, Name: c.Name, Err: errors.New("duplicate cluster name")}
		}
		s.Clusters[c.Name] = c
	}
	for i, pb := range listeners {
		if pb == nil {
			return nil, fmt.Errorf("listeners[%d]: nil Listener", i)
		}
		l, err := decodeListener(pb, b)
		if err != nil {
			return nil, &ResourceError{Kind: kindListener, Name: pb.GetName(), Err: err}
		}
		if s.listeners[l.Name] != nil {
			return nil, &ResourceError{Kind: kindListener, Name: l.Name, Err: errors.New("duplicate listener name")}
		}
		s.listeners[l.Name] = l
		s.Listeners = append(s.Listeners, l)
	}
	if len(s.Listeners) == 0 {
		return nil, errors.New("no listeners")
	}
	if err := s.resolveInternal(); err != nil {
		return nil, err
	}
	s.resolveSecrets(b.secrets)
	return s, nil
}
