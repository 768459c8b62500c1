// Package waypoint assembles the proxy: the workload identity, the active
// config, the HBONE entry on :15008, the addressed listeners, the upstream
// pool and the admin server; and it owns their lifecycle (start, reload,
// drain).
package waypoint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	_ "github.com/gowaypoint/waypoint/filters/all" // the built-in HTTP filters
	"github.com/gowaypoint/waypoint/proxy/admin"
	"github.com/gowaypoint/waypoint/proxy/certs"
	"github.com/gowaypoint/waypoint/proxy/drain"
	"github.com/gowaypoint/waypoint/proxy/dubboconn"
	"github.com/gowaypoint/waypoint/proxy/filterchain"
	"github.com/gowaypoint/waypoint/proxy/hbone"
	"github.com/gowaypoint/waypoint/proxy/httpconn"
	"github.com/gowaypoint/waypoint/proxy/inbound"
	"github.com/gowaypoint/waypoint/proxy/listener"
	"github.com/gowaypoint/waypoint/proxy/overload"
	"github.com/gowaypoint/waypoint/proxy/peerbudget"
	"github.com/gowaypoint/waypoint/proxy/tcpproxy"
	"github.com/gowaypoint/waypoint/proxy/upstream"
	"github.com/gowaypoint/waypoint/telemetry/accesslog"
	"github.com/gowaypoint/waypoint/telemetry/metrics"
	"github.com/gowaypoint/waypoint/telemetry/tracing"
	"github.com/gowaypoint/waypoint/xds"
	"github.com/gowaypoint/waypoint/xds/adsclient"
)

// Defaults of Options.
const (
	DefaultHBONEAddr          = "0.0.0.0:15008" // an IPv4 pod's; see Wildcards
	DefaultHBONEPort          = 15008
	DefaultAdminAddr          = "127.0.0.1:15000"
	DefaultDrainTimeout       = 5 * time.Second
	DefaultConfigPollInterval = time.Second
)

// Options configure a Waypoint. ConfigFile (or ADS) and CertDir (or
// Certs) are required.
type Options struct {
	// ConfigFile is an Envoy v3 bootstrap (YAML or JSON). It is re-read on
	// Reload and when it changes on disk. Not used with ADS.
	ConfigFile string
	// ADS, when set, configures the waypoint over xDS instead of
	// ConfigFile (see ads.go). A ConfigFile with dynamic_resources
	// configures it over xDS too, from the bootstrap.
	ADS *ADSOptions
	// Node is the xDS node sent when a bootstrap with dynamic_resources
	// names none.
	Node *corev3.Node
	// XDSTokenFile, when set, is the service account token sent to a
	// bootstrap's control plane (TLS only; see package xds/istiod).
	XDSTokenFile string
	// CertDir holds the waypoint's identity in Istio's layout
	// (cert-chain.pem, key.pem, root-cert.pem), reloaded when it changes.
	CertDir string
	// Certs, when set instead of CertDir, is the identity (one kept fresh
	// by istiod's CA, package proxy/certs/istioca); the caller owns it.
	Certs *certs.Source
	// HBONEAddr is where HBONE is served: one address, or several
	// separated by commas (a dual-stack pod's); when empty, the addresses
	// of the config's HBONE listener (connect_terminate: its address and
	// additional_addresses), else the wildcards of PodIPs on 15008.
	HBONEAddr string
	// PodIPs are the pod's addresses (the node's INSTANCE_IPS). Their
	// families choose the default wildcards, as istiod and Istio's agent
	// choose a proxy's: IPv4 only (or none) 0.0.0.0, IPv6 only [::],
	// both 0.0.0.0 and [::] (see Wildcards).
	PodIPs []netip.Addr
	// AdminAddr serves the admin endpoints; when empty, the bootstrap's
	// admin address, else 127.0.0.1:15000. "off" disables it.
	AdminAddr string
	// MetricsAddr serves /stats/prometheus (Istio's merged-metrics port,
	// DefaultMetricsAddr in the command); empty or "off" disables it.
	MetricsAddr string
	// NoStats turns off Istio's standard metrics and the Envoy-style
	// cluster counters (for overhead measurements; a waypoint has them).
	NoStats bool
	// DNSResolver is the name server (ip:port) DNS clusters resolve their
	// names with; empty: the first nameserver of /etc/resolv.conf.
	DNSResolver string
	// DrainTimeout bounds Shutdown's wait for streams; default 5 s.
	DrainTimeout time.Duration
	// ConfigPollInterval is how often ConfigFile is checked for changes;
	// default 1 s, negative disables the check.
	ConfigPollInterval time.Duration
	// CertPollInterval is how often CertDir is checked; default 1 s.
	CertPollInterval time.Duration
	// DubboMaxBodyBytes bounds a Dubbo frame's body (default 8 MiB);
	// DubboMaxInFlight the calls in flight on one downstream Dubbo
	// connection (default 1024).
	DubboMaxBodyBytes int
	DubboMaxInFlight  int
	// NoDubboOnTCP keeps tcp_proxy chains L4 only: a connection that speaks
	// Dubbo is relayed as bytes, as any other. By default it is served per
	// call (proxy/tcpproxy's dubbo.go; the command's --dubbo-on-tcp).
	NoDubboOnTCP bool
	Logger       *slog.Logger // default slog.Default()
	// Overload is the overload manager's config when the bootstrap has no
	// overload_manager (the command synthesises it from its flags,
	// overload.Synthesise); nil: none then, only the memory release after
	// a burst. The bootstrap's, when it has one, wins.
	Overload *xds.Overload
	// Loggers are the loggers the admin's /logging lists and sets (the
	// levels Logger's handler reads); nil disables /logging.
	Loggers *admin.Loggers
	// CommandLine is the admin's /server_info command_line_options; the
	// waypoint fills in what it knows (concurrency, config path, drain
	// time, node).
	CommandLine *adminv3.CommandLineOptions
}

// Waypoint is a running proxy. Its methods are safe for concurrent use.
type Waypoint struct {
	opts Options
	log  *slog.Logger

	certs     *certs.Source
	store     xds.Store
	bootstrap atomic.Pointer[xds.Bootstrap]
	pool      *hbone.Pool
	clusters  *upstream.Clusters
	dubbo     *dubboconn.Upstreams
	dubboEnv  *dubboconn.Env
	chains    *filterchain.Server
	hbone     *hbone.Server
	listeners *listener.Manager
	admin     *admin.Server
	metrics   *http.Server
	logs      *accesslog.Sinks
	tracers   *tracing.Tracers
	overload  *overload.Manager

	// resetBudget is the per-peer budget of requests reset before their
	// response, shared by the connection managers and the HBONE server.
	resetBudget *peerbudget.Budget

	// drain is the HBONE streams' drain context (inbound.Handler.Drain),
	// cancelled by startDrain when Shutdown begins; the plaintext
	// listeners' is listener.Manager's own, cancelled by its Drain.
	drain      context.Context
	startDrain context.CancelFunc

	hboneAddr   net.Addr
	hboneUp     atomic.Bool // set once hbone and hboneAddr are, for the admin handlers that read them
	hboneAddrs  []net.Addr  // hboneAddr first
	adminAddr   net.Addr
	metricsAddr net.Addr
	ready       atomic.Bool
	state       atomic.Int32 // adminv3.ServerInfo_State, for the admin's /server_info
	started     time.Time
	quit        chan struct{} // closed by the admin's /quitquitquit
	quitOnce    sync.Once

	// filterUpstream is the cluster manager of filters that call out
	// (buildOptions).
	filterUpstream filterUpstream

	ads     *adsclient.Client // nil unless configured over ADS
	adsStop context.CancelFunc
	adsConn io.Closer // the control-plane connection the waypoint dialled, or nil

	reloadMu sync.Mutex // serializes Reload and ADS updates
	fileStat os.FileInfo
	stop     chan struct{}
	wg       sync.WaitGroup // serve loops and the config watcher
}

// Start loads the config and identity, opens every listener and serves.
// It returns once the waypoint is ready, or with the first error, having
// released whatever it had opened.
func Start(opts Options) (w *Waypoint, err error) {
	if (opts.ConfigFile == "" && opts.ADS == nil) || (opts.CertDir == "" && opts.Certs == nil) {
		return nil, errors.New("waypoint: a config file (or ADS) and a cert dir (or source) are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.DrainTimeout == 0 {
		opts.DrainTimeout = DefaultDrainTimeout
	}
	if opts.ConfigPollInterval == 0 {
		opts.ConfigPollInterval = DefaultConfigPollInterval
	}
	wp := &Waypoint{opts: opts, log: opts.Logger, stop: make(chan struct{}), quit: make(chan struct{}), started: time.Now()}
	wp.state.Store(int32(adminv3.ServerInfo_PRE_INITIALIZING))
	wp.drain, wp.startDrain = drain.New() // each stream's registration leaves nothing behind
	wp.filterUpstream.store = &wp.store
	w = wp
	defer func() {
		if err != nil {
			wp.close() // w itself is nil by now
		}
	}()

	bs := &xds.Bootstrap{}
	if opts.ADS == nil {
		fi, err := os.Stat(opts.ConfigFile)
		if err != nil {
			return nil, fmt.Errorf("waypoint: config: %w", err)
		}
		if bs, err = w.buildOptions().LoadBootstrapFile(opts.ConfigFile); err != nil {
			return nil, err
		}
		if bs.Dynamic == nil {
			w.fileStat = fi
			w.bootstrap.Store(bs)
			w.store.Store(bs.Snapshot)
		}
	}

	if w.certs = opts.Certs; w.certs == nil {
		w.certs, err = certs.NewSource(opts.CertDir, certs.SourceOptions{PollInterval: opts.CertPollInterval, Logger: w.log})
		if err != nil {
			return nil, fmt.Errorf("waypoint: identity: %w", err)
		}
	}
	w.pool = hbone.NewPool(hbone.PoolConfig{Logger: w.log})
	w.logs = &accesslog.Sinks{Log: w.log, Dial: w.dialCluster}
	dialer := upstream.NewDialer(w.pool, w.certs)
	dialer.Logs = w.logs
	w.clusters = upstream.NewClusters(dialer)
	w.clusters.LB.SetResolver(newLoggedResolver(opts.DNSResolver, w.log))
	w.filterUpstream.clusters.Store(w.clusters)
	w.tracers = &tracing.Tracers{Dial: w.dialCluster, Log: w.log}
	rec := metrics.Default
	if opts.NoStats {
		rec = nil
	}
	tcp := &tcpproxy.Proxy{Clusters: w.clusters, Log: w.log, Metrics: rec, Logs: w.logs}
	w.resetBudget = peerbudget.New(peerbudget.Config{Logger: w.log})
	httpEnv := &httpconn.Env{Log: w.log, Telemetry: &httpconn.Telemetry{Metrics: rec, Logs: w.logs, Tracers: w.tracers}, Resets: w.resetBudget}
	w.dubbo = dubboconn.NewUpstreams(w.clusters, dubboconn.UpstreamConfig{MaxBodyBytes: opts.DubboMaxBodyBytes}, w.log)
	dubboEnv := &dubboconn.Env{Log: w.log, Upstreams: w.dubbo, MaxBodyBytes: opts.DubboMaxBodyBytes, MaxInFlight: opts.DubboMaxInFlight,
		Metrics: rec, Logs: w.logs}
	w.dubboEnv = dubboEnv
	w.chains = &filterchain.Server{Store: &w.store, HTTP: httpEnv, Clusters: w.clusters, Dubbo: dubboEnv, TCP: tcp,
		NoDubboOnTCP: opts.NoDubboOnTCP, Log: w.log}
	ocfg := bs.Overload
	if ocfg == nil {
		ocfg = opts.Overload
	}
	if w.overload, err = overload.New(ocfg, overload.Options{Logger: w.log}); err != nil {
		return nil, fmt.Errorf("waypoint: %w", err)
	}
	httpEnv.Overload = w.overload // requests inside tunnels and on plaintext listeners
	if ocfg != nil {
		w.log.Info("overload manager", "max_downstream_connections", w.overload.MaxConnections(),
			"heap_limit_bytes", w.overload.HeapLimit(), "actions", len(ocfg.Actions), "from_bootstrap", bs.Overload != nil)
	}
	om, stop := w.overload, w.stop // not w: a failed Start sets its result w to nil
	w.serve(func() {
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-stop; cancel() }() // ends when close closes stop, before its wg.Wait returns
		om.Run(ctx)
	})
	w.listeners = &listener.Manager{Chains: w.chains, Log: w.log, Overload: w.overload}

	// The admin port listens from the start, /ready 503 until the first
	// config is in force.
	if err := w.startAdmin(bs); err != nil {
		return nil, err
	}
	w.state.Store(int32(adminv3.ServerInfo_INITIALIZING))
	if bs.Dynamic != nil {
		if w.opts.ADS, err = w.dynamicADS(bs); err != nil {
			return nil, err
		}
		opts.ADS = w.opts.ADS
	}
	snap := bs.Snapshot
	if opts.ADS != nil {
		w.tracers.LocalCluster = opts.ADS.Client.Node.GetCluster() // Zipkin's service name, as Envoy's local cluster
		w.logs.Node = opts.ADS.Client.Node
	} else {
		w.tracers.LocalCluster = bs.Raw.GetNode().GetCluster()
		w.logs.Node = bs.Raw.GetNode()
	}
	if opts.ADS != nil {
		if snap, err = w.startADS(); err != nil {
			return nil, err
		}
	} else {
		w.clusters.Update(snap)
		if err := w.listeners.Apply(snap); err != nil {
			return nil, fmt.Errorf("waypoint: %w", err)
		}
	}

	w.hbone, err = hbone.NewServer(w.hboneServerConfig(snap,
		&inbound.Handler{Chains: w.chains, Logs: w.logs, Drain: w.drain}))
	if err != nil {
		return nil, err
	}
	addrs, err := w.hboneListenAddrs(snap)
	if err != nil {
		return nil, err
	}
	lns, err := listener.ListenAll(addrs)
	if err != nil {
		return nil, fmt.Errorf("waypoint: HBONE listener: %w", err)
	}
	hb := w.hbone // not w: a failed Start sets its result w to nil
	for _, ln := range lns {
		w.hboneAddrs = append(w.hboneAddrs, ln.Addr())
		w.serve(func() { hb.Serve(ln) })
	}
	w.hboneAddr = w.hboneAddrs[0]
	w.hboneUp.Store(true)

	if err := w.startMetrics(); err != nil {
		return nil, err
	}
	if opts.ConfigPollInterval > 0 && opts.ADS == nil {
		w.serve(w.watchConfig)
	}
	w.state.Store(int32(adminv3.ServerInfo_LIVE))
	w.ready.Store(true)
	source, version := opts.ConfigFile, ""
	if opts.ADS != nil {
		source = "xds"
	}
	if snap != nil {
		version = snap.Version
	}
	w.log.Info("waypoint ready", "identity", w.certs.Identity().String(), "hbone", addrsString(w.hboneAddrs),
		"admin", addrString(w.adminAddr), "config", source, "version", version)
	return w, nil
}

// ADSClient is the xDS client, nil unless configured over ADS.
func (w *Waypoint) ADSClient() *adsclient.Client { return w.ads }

func (w *Waypoint) serve(f func()) {
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		f()
	}()
}

func addrString(a net.Addr) string {
	if a == nil {
		return "off"
	}
	return a.String()
}

// HBONEAddr is the bound HBONE address (the first, when HBONE is served
// on several).
func (w *Waypoint) HBONEAddr() net.Addr { return w.hboneAddr }

// HBONEAddrs are the bound HBONE addresses.
func (w *Waypoint) HBONEAddrs() []net.Addr { return w.hboneAddrs }

// AdminAddr is the bound admin address, nil when admin is off.
func (w *Waypoint) AdminAddr() net.Addr { return w.adminAddr }

// ListenerAddr is the bound address of an addressed listener of the config.
func (w *Waypoint) ListenerAddr(name string) (net.Addr, bool) { return w.listeners.Addr(name) }

// Snapshot is the active config.
func (w *Waypoint) Snapshot() *xds.Snapshot { return w.store.Load() }

// Reload re-reads the config file. A file that does not load or validate is
// refused whole with the error, and the last good config keeps serving.
// Streams in flight finish on the config they started with.
func (w *Waypoint) Reload() error {
	if w.opts.ADS != nil {
		return errors.New("waypoint: configured over xDS: nothing to reload")
	}
	w.reloadMu.Lock()
	defer w.reloadMu.Unlock()
	fi, statErr := os.Stat(w.opts.ConfigFile)
	bs, err := w.buildOptions().LoadBootstrapFile(w.opts.ConfigFile)
	if err == nil {
		err = w.listeners.Apply(bs.Snapshot)
	}
	if statErr == nil {
		w.fileStat = fi
	}
	if err != nil {
		if bs != nil {
			bs.Snapshot.Close()
		}
		w.log.Error("config reload refused; the last good config keeps serving", "config", w.opts.ConfigFile, "error", err)
		return err
	}
	w.bootstrap.Store(bs)
	w.clusters.Update(bs.Snapshot)
	w.replaceSnapshot(bs.Snapshot)
	w.log.Info("config reloaded", "config", w.opts.ConfigFile, "version", bs.Snapshot.Version)
	return nil
}

// replaceSnapshot puts snap in force and closes the filters of the
// snapshot it replaces (xds.Snapshot.Close): the old snapshot is dropped
// here, though streams that started on it may still be running; the
// overload manager is told, so that what it held goes back to the OS once
// the process is quiet. Called with reloadMu held (or before any other
// writer runs).
func (w *Waypoint) replaceSnapshot(snap *xds.Snapshot) {
	if err := w.store.Swap(snap).Close(); err != nil {
		w.log.Warn("closing the filters of the replaced config", "error", err)
	}
	w.overload.AfterBurst()
}

// watchConfig reloads when the config file's size, time or inode change.
func (w *Waypoint) watchConfig() {
	t := time.NewTicker(w.opts.ConfigPollInterval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		fi, err := os.Stat(w.opts.ConfigFile)
		w.reloadMu.Lock()
		changed := err == nil && (w.fileStat == nil || !os.SameFile(fi, w.fileStat) ||
			fi.Size() != w.fileStat.Size() || !fi.ModTime().Equal(w.fileStat.ModTime()))
		w.reloadMu.Unlock()
		if changed {
			w.Reload()
		}
	}
}

// MarkDraining turns the admin's /ready to 503 and its server state to
// DRAINING while the waypoint keeps serving and accepting, as Envoy's
// before its listeners close: the time a pod's clients take to learn it is
// leaving (see the command's --drain-delay). Shutdown drains after it.
func (w *Waypoint) MarkDraining() {
	w.ready.Store(false)
	w.state.Store(int32(adminv3.ServerInfo_DRAINING))
}

// Shutdown drains: it stops accepting, sends GOAWAY on every HBONE
// connection and the readonly event to every Dubbo consumer (so that they
// send new calls elsewhere), tells every HTTP connection, on HBONE streams
// and plaintext listeners alike, to finish (HTTP/2 GOAWAY; HTTP/1.1 ends
// after its response in flight, at once when idle), lets streams finish
// until ctx is done or the drain timeout passes, then closes everything
// and waits for every goroutine it started.
func (w *Waypoint) Shutdown(ctx context.Context) error {
	w.ready.Store(false)
	w.state.Store(int32(adminv3.ServerInfo_DRAINING))
	if w.dubboEnv != nil {
		w.dubboEnv.Drain()
	}
	w.startDrain()
	ctx, cancel := context.WithTimeout(ctx, w.opts.DrainTimeout)
	defer cancel()
	w.log.Info("waypoint draining", "timeout", w.opts.DrainTimeout)
	var wg sync.WaitGroup
	var hboneErr, lnErr error
	wg.Add(2)
	go func() { defer wg.Done(); hboneErr = w.hbone.Shutdown(ctx) }()
	go func() { defer wg.Done(); lnErr = w.listeners.Drain(ctx) }()
	wg.Wait()
	w.close()
	return errors.Join(hboneErr, lnErr)
}

// close releases everything at once; it is the end of Shutdown and the
// clean-up of a failed Start.
func (w *Waypoint) close() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	w.startDrain()
	if w.adsStop != nil {
		w.adsStop()
	}
	defer func() {
		if w.adsConn != nil {
			w.adsConn.Close()
		}
	}()
	if w.hbone != nil {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		w.hbone.Shutdown(ctx)
	}
	if w.listeners != nil {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		w.listeners.Drain(ctx)
	}
	if w.admin != nil {
		w.admin.Close()
	}
	if w.metrics != nil {
		w.metrics.Close()
	}
	w.wg.Wait()
	if w.dubbo != nil {
		w.dubbo.Close()
	}
	if w.tracers != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		w.tracers.Shutdown(ctx) // exports the spans still batched
		cancel()
	}
	if w.logs != nil {
		w.logs.Close()
	}
	if w.clusters != nil {
		w.clusters.Close()
	}
	if w.pool != nil {
		w.pool.Close()
	}
	if w.certs != nil && w.opts.Certs == nil {
		w.certs.Close()
	}
	w.store.Load().Close() // the filters of the config in force; nothing serves it any more
}
