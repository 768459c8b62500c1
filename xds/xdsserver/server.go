// Package xdsserver is a small xDS control plane for tests and the demo:
// it serves Envoy resources read from a directory (the istiod fixtures'
// format: listeners.json, clusters.json, endpoints.json, routes.json, each
// {"resources": [Any...]}) over ADS, state-of-the-world and delta, to every
// node alike, and pushes a new version when the files change. It is
// go-control-plane's server and snapshot cache; this package only loads
// files, versions them and records what clients ACK and NACK.
//
// It does not validate resources with the waypoint's decoder, so that a
// client's NACK can be seen: only files that do not parse are refused.
package xdsserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/gowaypoint/waypoint/xds"
)

// DefaultPollInterval is how often Watch checks the directory.
const DefaultPollInterval = time.Second

// allNodes is the one snapshot cache key: every node gets the same
// resources.
type allNodes struct{}

func (allNodes) ID(*corev3.Node) string { return "all" }

// NACK is one rejection a client sent.
type NACK struct {
	TypeURL string
	Version string // the version the client still holds
	Nonce   string
	Message string // error_detail.message
	Node    string
}

// Server serves the resources of one directory. Safe for concurrent use.
type Server struct {
	dir   string
	log   *slog.Logger
	cache cachev3.SnapshotCache
	grpc  *grpc.Server
	stop  context.CancelFunc

	mu      sync.Mutex
	seq     int
	hash    string
	version string
	nacks   []NACK
	acks    map[string]string // type URL -> last version ACKed by any client
	changed chan struct{}     // closed and replaced on every ACK or NACK
}

// Options configure a Server. The zero value serves plaintext gRPC and
// logs to slog.Default().
type Options struct {
	Logger *slog.Logger
	// GRPC are options of the gRPC server: TLS credentials, the token
	// check of istiod.TokenAuth...
	GRPC []grpc.ServerOption
}

// New returns a plaintext server for dir and loads it once. logger nil
// means slog.Default().
func New(dir string, logger *slog.Logger) (*Server, error) {
	return NewWithOptions(dir, Options{Logger: logger})
}

// NewWithOptions returns a server for dir and loads it once.
func NewWithOptions(dir string, opts Options) (*Server, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{dir: dir, log: logger, stop: cancel, acks: map[string]string{}, changed: make(chan struct{})}
	s.cache = cachev3.NewSnapshotCache(true, allNodes{}, nil)
	hold := &holdNACKs{SnapshotCache: s.cache, sent: map[string]string{}}
	srv := serverv3.NewServer(ctx, hold, serverv3.CallbackFuncs{
		StreamResponseFunc: func(_ context.Context, _ int64, req *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
			hold.noteSent(req.GetNode().GetId(), resp.GetTypeUrl(), resp.GetVersionInfo())
		},
		StreamRequestFunc: func(_ int64, req *discoveryv3.DiscoveryRequest) error {
			s.record(req.GetTypeUrl(), req.GetVersionInfo(), req.GetResponseNonce(), req.GetErrorDetail().GetMessage(), req.GetNode().GetId())
			return nil
		},
		StreamDeltaRequestFunc: func(_ int64, req *discoveryv3.DeltaDiscoveryRequest) error {
			s.record(req.GetTypeUrl(), s.Version(), req.GetResponseNonce(), req.GetErrorDetail().GetMessage(), req.GetNode().GetId())
			return nil
		},
	})
	s.grpc = grpc.NewServer(opts.GRPC...)
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(s.grpc, srv)
	listenerservice.RegisterListenerDiscoveryServiceServer(s.grpc, srv)
	clusterservice.RegisterClusterDiscoveryServiceServer(s.grpc, srv)
	endpointservice.RegisterEndpointDiscoveryServiceServer(s.grpc, srv)
	routeservice.RegisterRouteDiscoveryServiceServer(s.grpc, srv)
	if _, err := s.Reload(); err != nil {
		cancel()
		return nil, err
	}
	return s, nil
}

// holdNACKs is the snapshot cache, except that a state-of-the-world NACK
// waits for the next version instead of being answered at once with the
// version it refused: the NACK carries the version the client keeps, which
// go-control-plane's cache takes for an out-of-date client, and client and
// server would go round forever. istiod does not resend a NACKed version
// either. (Delta NACKs need nothing: the delta server already counts what
// it sent as known.)
type holdNACKs struct {
	cachev3.SnapshotCache
	mu   sync.Mutex
	sent map[string]string // node id + " " + type URL -> version last sent
}

func (h *holdNACKs) noteSent(node, typeURL, version string) {
	h.mu.Lock()
	h.sent[node+" "+typeURL] = version
	h.mu.Unlock()
}

// CreateWatch implements cachev3.ConfigWatcher.
func (h *holdNACKs) CreateWatch(req *cachev3.Request, sub cachev3.Subscription, ch chan cachev3.Response) (func(), error) {
	if req.GetErrorDetail() != nil {
		h.mu.Lock()
		v, ok := h.sent[req.GetNode().GetId()+" "+req.GetTypeUrl()]
		h.mu.Unlock()
		if ok {
			r := proto.Clone(req).(*discoveryv3.DiscoveryRequest)
			r.VersionInfo = v
			req = r
		}
	}
	return h.SnapshotCache.CreateWatch(req, sub, ch)
}

// record notes an ACK (no error detail, a nonce) or a NACK.
func (s *Server) record(typeURL, version, nonce, msg, node string) {
	if nonce == "" {
		return // an initial request, not an answer
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if msg != "" {
		s.nacks = append(s.nacks, NACK{TypeURL: typeURL, Version: version, Nonce: nonce, Message: msg, Node: node})
		s.log.Warn("xds server: NACK", "type", typeURL, "node", node, "error", msg)
	} else {
		s.acks[typeURL] = version
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// Serve serves gRPC on ln until Close.
func (s *Server) Serve(ln net.Listener) error {
	err := s.grpc.Serve(ln)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// GRPCServer is the gRPC server, for registering more services (istiod's CA)
// before Serve.
func (s *Server) GRPCServer() *grpc.Server { return s.grpc }

// Close stops the server at once, ending every stream.
func (s *Server) Close() {
	s.grpc.Stop()
	s.stop()
}

// Version is the version being served.
func (s *Server) Version() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version
}

// NACKs returns the rejections received so far.
func (s *Server) NACKs() []NACK {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]NACK(nil), s.nacks...)
}

// Acked returns the last version a client ACKed for a type URL, and a
// channel closed at the next ACK or NACK.
func (s *Server) Acked(typeURL string) (string, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acks[typeURL], s.changed
}

// Reload reads the directory and, when its contents changed, serves them
// as a new version. It reports whether it pushed.
func (s *Server) Reload() (bool, error) {
	hash, err := dirHash(s.dir)
	if err != nil {
		return false, err
	}
	s.mu.Lock()
	same := hash == s.hash
	s.mu.Unlock()
	if same {
		return false, nil
	}
	r, err := xds.LoadResourceDir(s.dir)
	if err != nil {
		return false, err
	}
	return true, s.push(r, hash)
}

// Push serves r as a new version, whatever the directory holds.
func (s *Server) Push(r *xds.Resources) error { return s.push(r, "") }

func (s *Server) push(r *xds.Resources, hash string) error {
	s.mu.Lock()
	s.seq++
	version := strconv.Itoa(s.seq)
	s.mu.Unlock()
	snap, err := cachev3.NewSnapshot(version, map[resourcev3.Type][]types.Resource{
		resourcev3.ListenerType: asResources(r.Listeners),
		resourcev3.ClusterType:  asResources(r.Clusters),
		resourcev3.EndpointType: asResources(r.Endpoints),
		resourcev3.RouteType:    asResources(r.Routes),
		resourcev3.SecretType:   asResources(r.Secrets),
	})
	if err != nil {
		return err
	}
	if err := s.cache.SetSnapshot(context.Background(), "all", snap); err != nil {
		return err
	}
	s.mu.Lock()
	s.version, s.hash = version, hash
	s.mu.Unlock()
	s.log.Info("xds server: serving", "version", version, "dir", s.dir, "listeners", len(r.Listeners),
		"clusters", len(r.Clusters), "endpoints", len(r.Endpoints), "routes", len(r.Routes))
	return nil
}

func asResources[M proto.Message](ms []M) []types.Resource {
	out := make([]types.Resource, len(ms))
	for i, m := range ms {
		out[i] = m
	}
	return out
}

// Watch reloads the directory every interval (DefaultPollInterval when
// 0) until ctx is done; a reload that fails is logged and the version
// being served stays.
func (s *Server) Watch(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := s.Reload(); err != nil {
			s.log.Error("xds server: reload refused; the last version keeps being served", "dir", s.dir, "error", err)
		}
	}
}

// dirHash hashes the resource files of dir.
func dirHash(dir string) (string, error) {
	h := sha256.New()
	found := false
	for _, f := range []string{xds.ListenersFile, xds.ClustersFile, xds.EndpointsFile, xds.RoutesFile} {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		found = true
		fmt.Fprintf(h, "%s %d\n", f, len(data))
		h.Write(data)
	}
	if !found {
		return "", fmt.Errorf("%s: no resource files (%s, %s, %s, %s)", dir, xds.ListenersFile, xds.ClustersFile, xds.EndpointsFile, xds.RoutesFile)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
