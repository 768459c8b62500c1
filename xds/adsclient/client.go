// Package adsclient is the waypoint's xDS client: one Aggregated Discovery
// Service stream (gRPC) carrying LDS and CDS (wildcard) and the EDS, RDS
// and SDS (secrets over ADS) names they refer to, in the state-of-the-world or the incremental
// (delta) protocol, on go-control-plane's types.
//
// Every response is validated whole with the waypoint's decoder
// (xds.BuildResources) against what was accepted before: when it holds, it
// is ACKed with its version; when a resource of the response does not
// decode, the response is NACKed with the decoder's error (naming the
// resource and field) and nothing of it is used. A snapshot is applied only
// once it is complete, as Envoy warms: the clusters' EDS endpoints and the
// listeners' RDS routes have arrived (or their initial_fetch_timeout has
// passed), so new clusters are warm before the listeners that use them.
// When the stream is lost the last good config keeps serving; the client
// reconnects with jittered exponential back-off (Envoy's 500 ms base, 30 s
// cap) and, in delta, tells the server the versions it holds.
//
// Concurrency: Run owns one goroutine that reads the stream; all state is
// kept by Run's own goroutine.
package adsclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/gowaypoint/waypoint/xds"
)

// Defaults of Config.
const (
	DefaultInitialFetchTimeout = 15 * time.Second // Envoy's, for lds_config and cds_config
	DefaultBackoffBase         = 500 * time.Millisecond
	DefaultBackoffMax          = 30 * time.Second
)

// The resource types, in the order istiod pushes them.
var typeOrder = []string{resourcev3.ClusterType, resourcev3.EndpointType, resourcev3.ListenerType, resourcev3.RouteType, resourcev3.SecretType}

// namedTypes are the types subscribed to by name (what the clusters and
// listeners refer to), not by wildcard.
var namedTypes = []string{resourcev3.EndpointType, resourcev3.RouteType, resourcev3.SecretType}

// Config configures a Client. Conn and Node are required.
type Config struct {
	// Conn is the gRPC connection to the control plane (its TLS and
	// credentials are the caller's: see package xds/istiod).
	Conn grpc.ClientConnInterface
	// Node identifies the waypoint (see NodeConfig.Node).
	Node *corev3.Node
	// Delta selects the incremental protocol.
	Delta bool
	// InitialFetchTimeout bounds the wait for the first complete config
	// (Ready); default 15 s, as Envoy's lds_config/cds_config; negative
	// waits forever.
	InitialFetchTimeout time.Duration
	// BackoffBase and BackoffMax bound the jittered exponential reconnect
	// delay; defaults 500 ms and 30 s.
	BackoffBase, BackoffMax time.Duration
	// Apply takes each new complete snapshot; an error refuses it: the LDS
	// or CDS response that completed it is NACKed and forgotten; when an
	// EDS or RDS response completed it, that is ACKed (its resources are
	// fine) and the snapshot waits for the next change. A snapshot Apply
	// takes (returns nil for) is the caller's, who closes it
	// (Snapshot.Close) when it drops it; one it refuses the client closes.
	Apply  func(*xds.Snapshot) error
	Logger *slog.Logger // default slog.Default()
	// Build is what snapshots are built with: the registry, logger and
	// cluster manager their filters get (the waypoint's). The zero value
	// builds as xds.BuildResources does.
	Build xds.BuildOptions
}

// Client keeps a waypoint's config in step with a control plane. Start it
// with Run. Its accessors are safe for concurrent use.
type Client struct {
	cfg Config
	log *slog.Logger

	ready     chan struct{} // closed at the first applied snapshot or the initial fetch timeout
	readyOnce sync.Once

	mu       sync.Mutex // guards the fields below
	versions map[string]string
	applied  *xds.Snapshot
	nacks    int
	lastNACK string

	// Owned by Run's goroutine.
	state     map[string]map[string]*resource // accepted, by type then name
	resVer    map[string]map[string]string    // delta: per-resource versions
	typeVer   map[string]string               // accepted version per type
	nonces    map[string]string               // last nonce per type
	subs      map[string][]string             // current subscription (EDS, RDS names)
	waiting   map[string]time.Time            // resource "type/name" awaited since
	pending   bool                            // the accepted state has not been applied
	connected int                             // streams opened
}

// New returns a client; Run starts it.
func New(cfg Config) *Client {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.InitialFetchTimeout == 0 {
		cfg.InitialFetchTimeout = DefaultInitialFetchTimeout
	}
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = DefaultBackoffBase
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = DefaultBackoffMax
	}
	c := &Client{cfg: cfg, log: cfg.Logger, ready: make(chan struct{}), versions: map[string]string{},
		state: map[string]map[string]*resource{}, resVer: map[string]map[string]string{},
		typeVer: map[string]string{}, nonces: map[string]string{}, subs: map[string][]string{},
		waiting: map[string]time.Time{}}
	for _, t := range typeOrder {
		c.state[t] = map[string]*resource{}
		c.resVer[t] = map[string]string{}
	}
	return c
}

// Ready is closed once the first complete config has been applied, or the
// initial fetch timeout has passed without one.
func (c *Client) Ready() <-chan struct{} { return c.ready }

// Versions returns the accepted version of each resource type URL.
func (c *Client) Versions() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]string, len(c.versions))
	for k, v := range c.versions {
		out[k] = v
	}
	return out
}

// NACKs returns how many responses were rejected, and the last reason
// (the process's Prometheus counters of stats.go count them too).
func (c *Client) NACKs() (int, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nacks, c.lastNACK
}

// Snapshot is the last applied snapshot, nil before the first.
func (c *Client) Snapshot() *xds.Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.applied
}

func (c *Client) markReady() { c.readyOnce.Do(func() { close(c.ready) }) }

// Run keeps a stream open until ctx is done, reconnecting with back-off.
// It returns ctx's error.
func (c *Client) Run(ctx context.Context) error {
	if c.cfg.InitialFetchTimeout > 0 {
		t := time.AfterFunc(c.cfg.InitialFetchTimeout, func() {
			select {
			case <-c.ready:
			default:
				c.log.Warn("xds: no complete config within the initial fetch timeout; going on without", "timeout", c.cfg.InitialFetchTimeout)
				c.markReady()
			}
		})
		defer t.Stop()
	}
	backoff := c.cfg.BackoffBase
	for {
		got, err := c.stream(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if got {
			backoff = c.cfg.BackoffBase
		}
		// Full jitter: a random wait up to the current bound.
		wait := time.Duration(rand.Int64N(int64(backoff)) + 1)
		c.log.Warn("xds: stream lost; the last good config keeps serving", "error", err, "retry_in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		backoff = min(2*backoff, c.cfg.BackoffMax)
	}
}

// maxRecv lifts gRPC's 4 MiB limit on a received message, as Istio's
// agent does for its stream to istiod (Envoy has none): a namespace
// waypoint's main_internal listener is about 3.9 kB per Service, past
// 4 MiB at about 1,100 Services, and a response over the limit breaks
// the stream at every attempt, so that the config stops growing there.
var maxRecv = grpc.MaxCallRecvMsgSize(math.MaxInt32)

// message is one item received on a stream.
type message struct {
	sotw  *discoveryv3.DiscoveryResponse
	delta *discoveryv3.DeltaDiscoveryResponse
	err   error
}

// stream runs one ADS stream until it fails; it reports whether a response
// was received (which resets the back-off).
func (c *Client) stream(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ads := discoveryv3.NewAggregatedDiscoveryServiceClient(c.cfg.Conn)
	var (
		sendSotw  func(*discoveryv3.DiscoveryRequest) error
		sendDelta func(*discoveryv3.DeltaDiscoveryRequest) error
		recv      func() message
	)
	if c.cfg.Delta {
		st, err := ads.DeltaAggregatedResources(ctx, maxRecv)
		if err != nil {
			return false, err
		}
		sendDelta = st.Send
		recv = func() message { r, err := st.Recv(); return message{delta: r, err: err} }
	} else {
		st, err := ads.StreamAggregatedResources(ctx, maxRecv)
		if err != nil {
			return false, err
		}
		sendSotw = st.Send
		recv = func() message { r, err := st.Recv(); return message{sotw: r, err: err} }
	}
	c.connected++
	liveStreams.Add(1) // envoy_control_plane_connected_state
	defer liveStreams.Add(-1)
	s := &session{c: c, sotw: sendSotw, delta: sendDelta, first: true}
	clear(c.nonces)
	// Subscribe: CDS and LDS wildcard, and what they refer to.
	for _, t := range typeOrder {
		if err := s.subscribe(t, nil); err != nil {
			return false, err
		}
	}

	in := make(chan message, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the reader: ends when the stream does (cancel)
		defer wg.Done()
		for {
			m := recv()
			select {
			case in <- m:
			case <-ctx.Done():
				return
			}
			if m.err != nil {
				return
			}
		}
	}()
	defer wg.Wait()
	defer cancel()

	tick := time.NewTicker(250 * time.Millisecond) // fetch timeouts of awaited EDS/RDS resources
	defer tick.Stop()
	got := false
	for {
		select {
		case <-ctx.Done():
			return got, ctx.Err()
		case <-tick.C:
			if c.pending && c.expired() {
				c.tryApply(built{})
			}
		case m := <-in:
			if m.err != nil {
				return got, m.err
			}
			got = true
			var err error
			if m.sotw != nil {
				err = s.onSotw(m.sotw)
			} else {
				err = s.onDelta(m.delta)
			}
			if err != nil {
				return got, err
			}
		}
	}
}

// session is one stream's sending side.
type session struct {
	c     *Client
	sotw  func(*discoveryv3.DiscoveryRequest) error
	delta func(*discoveryv3.DeltaDiscoveryRequest) error
	first bool // the node goes on the first request only
}

func (s *session) node() *corev3.Node {
	if s.first {
		s.first = false
		return s.c.cfg.Node
	}
	return nil
}

// subscribe sends the initial request for a type: wildcard for CDS and
// LDS, the names wanted for EDS and RDS (none yet: skipped).
func (s *session) subscribe(typeURL string, _ []string) error {
	c := s.c
	names := c.wanted(typeURL)
	wildcard := typeURL == resourcev3.ClusterType || typeURL == resourcev3.ListenerType
	if !wildcard && len(names) == 0 {
		c.subs[typeURL] = nil
		return nil
	}
	c.subs[typeURL] = names
	if s.delta != nil {
		req := &discoveryv3.DeltaDiscoveryRequest{Node: s.node(), TypeUrl: typeURL, ResourceNamesSubscribe: names,
			InitialResourceVersions: c.resVer[typeURL]}
		return s.delta(req)
	}
	return s.sotw(&discoveryv3.DiscoveryRequest{Node: s.node(), TypeUrl: typeURL, ResourceNames: names,
		VersionInfo: c.typeVer[typeURL]})
}

// resubscribe sends a changed EDS or RDS subscription.
func (s *session) resubscribe(typeURL string) error {
	c := s.c
	names := c.wanted(typeURL)
	old := c.subs[typeURL]
	if slices.Equal(names, old) {
		return nil
	}
	c.subs[typeURL] = names
	c.log.Debug("xds: subscription changed", "type", short(typeURL), "names", len(names))
	if s.delta != nil {
		add, del := diff(names, old)
		return s.delta(&discoveryv3.DeltaDiscoveryRequest{Node: s.node(), TypeUrl: typeURL,
			ResourceNamesSubscribe: add, ResourceNamesUnsubscribe: del})
	}
	return s.sotw(&discoveryv3.DiscoveryRequest{Node: s.node(), TypeUrl: typeURL, ResourceNames: names,
		VersionInfo: c.typeVer[typeURL], ResponseNonce: c.nonces[typeURL]})
}

// onSotw handles a state-of-the-world response. For LDS and CDS it is the
// whole set of its type: what it leaves out is removed. For EDS and RDS it
// holds the subscribed resources that changed: one it leaves out is kept
// as it was (the xDS protocol's rule for those types, which istiod
// follows: after a subscription grows it sends only the new names), and
// only unsubscribing removes one.
func (s *session) onSotw(r *discoveryv3.DiscoveryResponse) error {
	c := s.c
	t := r.GetTypeUrl()
	c.nonces[t] = r.GetNonce()
	c.log.Debug("xds: response", "type", short(t), "version", r.GetVersionInfo(), "nonce", r.GetNonce(), "resources", len(r.GetResources()))
	next := map[string]*resource{}
	err := decodeAll(t, r.GetResources(), next)
	if t != resourcev3.ClusterType && t != resourcev3.ListenerType {
		for _, name := range c.subs[t] {
			if m, ok := c.state[t][name]; ok && next[name] == nil {
				next[name] = m
			}
		}
	}
	if err == nil {
		err = c.accept(t, next, nil, r.GetVersionInfo())
	}
	req := &discoveryv3.DiscoveryRequest{Node: s.node(), TypeUrl: t, ResponseNonce: r.GetNonce(), ResourceNames: c.subs[t]}
	if err != nil {
		req.VersionInfo = c.typeVer[t]
		req.ErrorDetail = &statuspb.Status{Code: int32(codes.InvalidArgument), Message: err.Error()}
		c.noteNACK(t, r.GetVersionInfo(), err)
	} else {
		req.VersionInfo = r.GetVersionInfo()
		countUpdate(t, true)
	}
	if err := s.sotw(req); err != nil {
		return err
	}
	return s.resubscribeAll()
}

// onDelta handles an incremental response: resources added or changed,
// and names removed.
func (s *session) onDelta(r *discoveryv3.DeltaDiscoveryResponse) error {
	c := s.c
	t := r.GetTypeUrl()
	c.nonces[t] = r.GetNonce()
	c.log.Debug("xds: delta response", "type", short(t), "nonce", r.GetNonce(), "resources", len(r.GetResources()), "removed", len(r.GetRemovedResources()))
	next := make(map[string]*resource, len(c.state[t]))
	for k, v := range c.state[t] {
		next[k] = v
	}
	vers := map[string]string{}
	var err error
	for i, res := range r.GetResources() {
		m, _, derr := decodeOne(t, res.GetResource())
		if derr != nil {
			err = fmt.Errorf("resources[%d] %q: %w", i, res.GetName(), derr)
			break
		}
		next[res.GetName()] = m
		vers[res.GetName()] = res.GetVersion()
	}
	for _, name := range r.GetRemovedResources() {
		delete(next, name)
		vers[name] = ""
	}
	version := r.GetSystemVersionInfo()
	if version == "" {
		version = r.GetNonce()
	}
	if err == nil {
		err = c.accept(t, next, vers, version)
	}
	req := &discoveryv3.DeltaDiscoveryRequest{Node: s.node(), TypeUrl: t, ResponseNonce: r.GetNonce()}
	if err != nil {
		req.ErrorDetail = &statuspb.Status{Code: int32(codes.InvalidArgument), Message: err.Error()}
		c.noteNACK(t, version, err)
	} else {
		countUpdate(t, true)
	}
	if err := s.delta(req); err != nil {
		return err
	}
	return s.resubscribeAll()
}

func (s *session) resubscribeAll() error {
	for _, t := range namedTypes {
		if err := s.resubscribe(t); err != nil {
			return err
		}
	}
	return nil
}

func (c *Client) noteNACK(t, version string, err error) {
	c.log.Error("xds: config refused (NACK); the last good config keeps serving", "type", short(t), "version", version, "error", err)
	countUpdate(t, false)
	c.mu.Lock()
	c.nacks++
	c.lastNACK = err.Error()
	c.mu.Unlock()
}

// accept validates next as the new set of type t against the other types
// accepted so far. An error from a resource of type t refuses it (NACK);
// an error elsewhere (a listener still naming a cluster this CDS removed)
// leaves the update accepted but not applied until the other types follow.
func (c *Client) accept(t string, next map[string]*resource, vers map[string]string, version string) error {
	// The snapshot that validates the update is the one tryApply would
	// build from the state the update makes: kept for it, so that a
	// response costs one build (each is of the whole config).
	checked, err := c.build(c.wire(t, next), c.appliedVersion(t, version))
	if err != nil {
		var re *xds.ResourceError
		// Listeners that came before any cluster cannot be checked yet.
		early := t == resourcev3.ListenerType && c.typeVer[resourcev3.ClusterType] == ""
		if errors.As(err, &re) && kindOf(re.Kind) == t && !early {
			return err
		}
		checked = nil
		c.log.Info("xds: update accepted, waiting for the rest of the config", "type", short(t), "version", version, "waiting_on", err)
	}
	prevState, prevVer, prevResVer := c.state[t], c.typeVer[t], maps.Clone(c.resVer[t])
	c.state[t] = next
	c.typeVer[t] = version
	if vers != nil {
		for k, v := range vers {
			if v == "" {
				delete(c.resVer[t], k)
			} else {
				c.resVer[t][k] = v
			}
		}
	}
	for name := range next {
		delete(c.waiting, t+"/"+name)
	}
	prevPending := c.pending
	c.pending = true
	if err := c.tryApply(built{snap: checked, ok: true}); err != nil && (t == resourcev3.ListenerType || t == resourcev3.ClusterType) {
		// The waypoint could not take what this LDS or CDS response made (a listener's
		// address cannot be bound, say): refused, as Envoy's listener manager refuses it,
		// and forgotten, so that the next snapshot is built from what is serving.
		c.state[t], c.typeVer[t], c.resVer[t], c.pending = prevState, prevVer, prevResVer, prevPending
		return fmt.Errorf("not applied: %w", err)
	}
	c.mu.Lock()
	c.versions[t] = version
	c.mu.Unlock()
	return nil
}

// wire assembles the accepted state, with next in place of type t, as
// it came (the resources' Anys), adding an empty RouteConfiguration for
// each route configuration the listeners name by rds that has not
// arrived, so that a listener is validated whole before its routes come
// (its RDS then warms, as in Envoy) and, once their
// initial_fetch_timeout has passed, serves with no routes (404), as
// Envoy's does.
func (c *Client) wire(t string, next map[string]*resource) *xds.Wire {
	set := func(typ string) map[string]*resource {
		if typ == t {
			return next
		}
		return c.state[typ]
	}
	list := func(typ string) []*anypb.Any {
		s := set(typ)
		out := make([]*anypb.Any, 0, len(s))
		for _, name := range sortedKeys(s) {
			out = append(out, s[name].any)
		}
		return out
	}
	w := &xds.Wire{Listeners: list(resourcev3.ListenerType), Clusters: list(resourcev3.ClusterType),
		Endpoints: list(resourcev3.EndpointType), Routes: list(resourcev3.RouteType), Secrets: list(resourcev3.SecretType)}
	routes := set(resourcev3.RouteType)
	added := map[string]bool{}
	for _, n := range rdsNames(set(resourcev3.ListenerType)) {
		if routes[n.name] == nil && !added[n.name] {
			added[n.name] = true
			a, err := anypb.New(&routev3.RouteConfiguration{Name: n.name})
			if err != nil {
				panic(err) // a RouteConfiguration with a name marshals
			}
			w.Routes = append(w.Routes, a)
		}
	}
	return w
}

// built is a snapshot of the accepted state built ahead (by accept, to
// validate an update), or none: ok false. A nil snap with ok is a state
// that does not build.
type built struct {
	snap *xds.Snapshot
	ok   bool
}

// build builds w as the snapshot of version.
func (c *Client) build(w *xds.Wire, version string) (*xds.Snapshot, error) {
	return c.cfg.Build.BuildWire(version, w)
}

// appliedVersion is the version of a snapshot of the accepted state with
// type t at version: the LDS and CDS versions.
func (c *Client) appliedVersion(t, version string) string {
	lds, cds := c.typeVer[resourcev3.ListenerType], c.typeVer[resourcev3.ClusterType]
	switch t {
	case resourcev3.ListenerType:
		lds = version
	case resourcev3.ClusterType:
		cds = version
	}
	return lds + "/" + cds
}

// tryApply builds and applies the accepted state once it is complete;
// pre, when ok, is that state already built, which tryApply uses or
// closes. It returns Apply's error; an incomplete state is not one.
func (c *Client) tryApply(pre built) error {
	if missing := c.missing(); len(missing) > 0 {
		c.log.Debug("xds: config waits for", "resources", len(missing), "first", missing[0].key)
		now := time.Now()
		for _, m := range missing {
			if _, ok := c.waiting[m.key]; !ok {
				c.waiting[m.key] = now
			}
		}
		if !c.expired() {
			pre.snap.Close()
			return nil
		}
	}
	snap := pre.snap
	if !pre.ok {
		var err error
		if snap, err = c.build(c.wire("", nil), c.appliedVersion("", "")); err != nil {
			return nil // waiting for another type (see accept)
		}
	}
	if snap == nil {
		return nil // waiting for another type (see accept)
	}
	vers := make(map[string]string, len(c.typeVer))
	for k, v := range c.typeVer {
		vers[k] = v
	}
	snap.SetSourceVersions(vers)
	if err := c.cfg.Apply(snap); err != nil {
		snap.Close()
		c.log.Error("xds: config not applied; the last good config keeps serving", "error", err)
		return err
	}
	c.pending = false
	c.mu.Lock()
	c.applied = snap
	c.mu.Unlock()
	c.markReady()
	return nil
}

// awaited is one resource a cluster or listener refers to that has not
// arrived.
type awaited struct {
	key     string // "type/name"
	timeout time.Duration
}

// missing lists the EDS and RDS resources the accepted clusters and
// listeners refer to that have not arrived.
func (c *Client) missing() []awaited {
	var out []awaited
	for _, r := range c.state[resourcev3.ClusterType] {
		if r.eds == "" {
			continue
		}
		if _, ok := c.state[resourcev3.EndpointType][r.eds]; !ok {
			out = append(out, awaited{key: resourcev3.EndpointType + "/" + r.eds, timeout: r.edsTimeout})
		}
	}
	for _, name := range rdsNames(c.state[resourcev3.ListenerType]) {
		if _, ok := c.state[resourcev3.RouteType][name.name]; !ok {
			out = append(out, awaited{key: resourcev3.RouteType + "/" + name.name, timeout: name.timeout})
		}
	}
	// SDS secrets over ADS (istiod's kubernetes:// credentials): a cluster
	// waits for its certificate as Envoy's warms.
	for _, name := range c.wanted(resourcev3.SecretType) {
		if _, ok := c.state[resourcev3.SecretType][name]; !ok {
			out = append(out, awaited{key: resourcev3.SecretType + "/" + name, timeout: DefaultInitialFetchTimeout})
		}
	}
	return out
}

// expired reports whether every awaited resource has passed its fetch
// timeout (0: wait forever).
func (c *Client) expired() bool {
	now := time.Now()
	for _, m := range c.missing() {
		since, ok := c.waiting[m.key]
		if !ok || m.timeout <= 0 || now.Sub(since) < m.timeout {
			return false
		}
	}
	return true
}

// wanted lists the names to subscribe to for EDS and RDS.
func (c *Client) wanted(t string) []string {
	var names []string
	switch t {
	case resourcev3.EndpointType:
		for _, r := range c.state[resourcev3.ClusterType] {
			if r.eds != "" {
				names = append(names, r.eds)
			}
		}
	case resourcev3.RouteType:
		for _, n := range rdsNames(c.state[resourcev3.ListenerType]) {
			names = append(names, n.name)
		}
	case resourcev3.SecretType:
		for _, r := range c.state[resourcev3.ClusterType] {
			names = append(names, r.secrets...)
		}
	}
	sort.Strings(names)
	return dedup(names)
}

func edsName(cl *clusterv3.Cluster) string {
	if n := cl.GetEdsClusterConfig().GetServiceName(); n != "" {
		return n
	}
	return cl.GetName()
}

type rdsName struct {
	name    string
	timeout time.Duration
}

// rdsNames lists the route configurations the listeners' connection
// managers name by rds.
func rdsNames(listeners map[string]*resource) []rdsName {
	var out []rdsName
	for _, r := range listeners {
		out = append(out, r.rds...)
	}
	return out
}

// listenerRDS lists the route configurations l's connection managers
// name by rds.
func listenerRDS(l *listenerv3.Listener) []rdsName {
	var out []rdsName
	chains := l.GetFilterChains()
	if l.GetDefaultFilterChain() != nil {
		chains = append(append([]*listenerv3.FilterChain(nil), chains...), l.GetDefaultFilterChain())
	}
	for _, fc := range chains {
		for _, f := range fc.GetFilters() {
			rds := xds.RDSOf(f.GetTypedConfig())
			if rds == nil {
				continue
			}
			to := DefaultInitialFetchTimeout
			if d := rds.GetConfigSource().GetInitialFetchTimeout(); d != nil {
				to = d.AsDuration()
			}
			out = append(out, rdsName{name: rds.GetRouteConfigName(), timeout: to})
		}
	}
	return out
}

// resource is one accepted resource: the Any it came in (kept as it came,
// packed when large (xds.Pack): a cluster decoded is six times its size
// on the wire; istiod's main_internal listener, a connection manager per
// Service port, packs fifty times smaller) and what it refers to, read
// when it came.
type resource struct {
	any *anypb.Any

	eds        string        // a cluster's EDS service name; "" unless EDS
	edsTimeout time.Duration // its eds_config initial_fetch_timeout (0: wait forever)
	secrets    []string      // a cluster's SDS secrets over ADS (xds.SecretNames)
	rds        []rdsName     // a listener's RDS route configurations
}

// decodeAll decodes a SotW response's resources by name.
func decodeAll(t string, rs []*anypb.Any, into map[string]*resource) error {
	for i, a := range rs {
		r, name, err := decodeOne(t, a)
		if err != nil {
			return fmt.Errorf("resources[%d]: %w", i, err)
		}
		if _, dup := into[name]; dup {
			return fmt.Errorf("resources[%d]: duplicate %s %q", i, short(t), name)
		}
		into[name] = r
	}
	return nil
}

// decodeOne decodes a, a resource of type t, for its name and what it
// refers to; the resource keeps a, not the message.
func decodeOne(t string, a *anypb.Any) (*resource, string, error) {
	if a.GetTypeUrl() != t {
		return nil, "", fmt.Errorf("type %s in a %s response", a.GetTypeUrl(), short(t))
	}
	m, err := a.UnmarshalNew()
	if err != nil {
		return nil, "", err
	}
	a.TypeUrl = t // one string for all the resources of a response
	r := &resource{any: xds.Pack(a)}
	switch v := m.(type) {
	case *clusterv3.Cluster:
		if v.GetType() == clusterv3.Cluster_EDS {
			r.eds = edsName(v)
			r.edsTimeout = DefaultInitialFetchTimeout
			if d := v.GetEdsClusterConfig().GetEdsConfig().GetInitialFetchTimeout(); d != nil {
				r.edsTimeout = d.AsDuration()
			}
		}
		r.secrets = xds.SecretNames(v)
	case *listenerv3.Listener:
		r.rds = listenerRDS(v)
	}
	return r, resourceName(m), nil
}

func resourceName(m proto.Message) string {
	switch v := m.(type) {
	case *listenerv3.Listener:
		return v.GetName()
	case *clusterv3.Cluster:
		return v.GetName()
	case *endpointv3.ClusterLoadAssignment:
		return v.GetClusterName()
	case *routev3.RouteConfiguration:
		return v.GetName()
	case *tlsv3.Secret:
		return v.GetName()
	}
	return ""
}

// kindOf maps a ResourceError kind to its type URL.
func kindOf(kind string) string {
	switch kind {
	case "listener":
		return resourcev3.ListenerType
	case "cluster":
		return resourcev3.ClusterType
	case "cluster_load_assignment":
		return resourcev3.EndpointType
	case "route_configuration":
		return resourcev3.RouteType
	case "secret":
		return resourcev3.SecretType
	}
	return ""
}

func short(t string) string { return t[strings.LastIndex(t, ".")+1:] }

func sortedKeys(m map[string]*resource) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func dedup(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// diff returns what is in a and not b, and in b and not a.
func diff(a, b []string) (add, del []string) {
	in := func(s []string, v string) bool {
		i := sort.SearchStrings(s, v)
		return i < len(s) && s[i] == v
	}
	for _, v := range a {
		if !in(b, v) {
			add = append(add, v)
		}
	}
	for _, v := range b {
		if !in(a, v) {
			del = append(del, v)
		}
	}
	return add, del
}
