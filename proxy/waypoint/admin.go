package waypoint

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gowaypoint/waypoint/proxy/admin"
	"github.com/gowaypoint/waypoint/proxy/certs"
	"github.com/gowaypoint/waypoint/telemetry/stats"
	"github.com/gowaypoint/waypoint/xds"
)

// The names of the waypoint's own secrets in the secrets dump, as Istio's
// agent serves them to Envoy over SDS: the workload certificate and the
// mesh's root.
const (
	secretDefault = "default"
	secretRootCA  = "ROOTCA"
)

// startAdmin opens the admin port and serves it: called before the first
// config is asked for, so /ready answers (503) from the process's start.
func (w *Waypoint) startAdmin(bs *xds.Bootstrap) error {
	addr := w.opts.AdminAddr
	if addr == "" {
		addr = bs.AdminAddress
	}
	if addr == "" {
		addr = DefaultAdminAddr
	}
	if addr == "off" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("waypoint: admin listener: %w", err)
	}
	w.adminAddr = ln.Addr()
	w.admin = admin.New(w.adminSources(), w.log)
	srv := w.admin
	w.serve(func() { srv.Serve(ln) })
	return nil
}

// adminSources are what the admin endpoints render.
func (w *Waypoint) adminSources() admin.Sources {
	return admin.Sources{
		Ready:          w.ready.Load,
		State:          func() adminv3.ServerInfo_State { return adminv3.ServerInfo_State(w.state.Load()) },
		ConfigDump:     w.adminConfigDump,
		Clusters:       w.adminClusters,
		Listeners:      w.adminListeners,
		Certs:          w.adminCerts,
		Node:           w.node,
		Version:        buildVersion(),
		CommandLine:    w.commandLine(),
		Start:          w.started,
		Stats:          stats.Registry,
		Loggers:        w.opts.Loggers,
		Quit:           w.requestQuit,
		DrainListeners: w.drainListeners,
		Extra:          map[string]http.Handler{"/stats/prometheus": stats.Handler()},
	}
}

// buildVersion is the version in Envoy's form,
// revision/version/status/RELEASE/TLS library, from the build info.
func buildVersion() string {
	rev, version, status := "unknown", "(devel)", "Clean"
	if bi, ok := debug.ReadBuildInfo(); ok {
		version = bi.Main.Version
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision":
				rev = s.Value
			case s.Key == "vcs.modified" && s.Value == "true":
				status = "Modified"
			}
		}
	}
	return rev + "/" + version + "/" + status + "/RELEASE/GoTLS"
}

// node is the xDS node the waypoint describes itself with.
func (w *Waypoint) node() *corev3.Node {
	if w.opts.ADS != nil {
		return w.opts.ADS.Client.Node
	}
	if bs := w.bootstrap.Load(); bs != nil && bs.Raw != nil {
		return bs.Raw.GetNode()
	}
	return w.opts.Node
}

// commandLine is Options.CommandLine with what the waypoint knows filled in.
func (w *Waypoint) commandLine() *adminv3.CommandLineOptions {
	cl := &adminv3.CommandLineOptions{}
	if w.opts.CommandLine != nil {
		cl = w.opts.CommandLine
	}
	if cl.Concurrency == 0 {
		cl.Concurrency = uint32(runtime.GOMAXPROCS(0))
	}
	if cl.ConfigPath == "" {
		cl.ConfigPath = w.opts.ConfigFile
	}
	if cl.DrainTime == nil {
		cl.DrainTime = durationpb.New(w.opts.DrainTimeout)
	}
	if n := w.node(); n != nil {
		cl.ServiceCluster, cl.ServiceNode = n.GetCluster(), n.GetId()
	}
	cl.Mode = adminv3.CommandLineOptions_Serve
	cl.DisableHotRestart = true
	return cl
}

// requestQuit ends the process gracefully (/quitquitquit): QuitRequested
// is closed, and the command shuts the waypoint down as on SIGTERM.
func (w *Waypoint) requestQuit() {
	w.quitOnce.Do(func() { close(w.quit) })
}

// QuitRequested is closed when the admin's /quitquitquit asked the
// process to exit.
func (w *Waypoint) QuitRequested() <-chan struct{} { return w.quit }

// drainListeners stops the listeners accepting (/drain_listeners), as
// Envoy does: graceful first tells connections to finish (GOAWAY, the
// readonly event to Dubbo consumers) and lets them, for up to the drain
// timeout; otherwise they close now. The waypoint's listeners all take
// traffic into it (the HBONE entry and the addressed listeners istiod
// marks INBOUND or leaves unmarked); inboundonly with an OUTBOUND
// listener in the config is refused, as draining part of them is not
// supported.
func (w *Waypoint) drainListeners(graceful, inboundOnly bool) error {
	if !w.hboneUp.Load() {
		return errors.New("no listeners yet: the waypoint is still starting")
	}
	if snap := w.store.Load(); inboundOnly && snap != nil {
		for _, l := range snap.Listeners {
			if l.TrafficDirection == corev3.TrafficDirection_OUTBOUND {
				return fmt.Errorf("inboundonly: listener %q is OUTBOUND; draining only some listeners is not supported", l.Name)
			}
		}
	}
	w.ready.Store(false)
	w.state.Store(int32(adminv3.ServerInfo_DRAINING))
	w.log.Info("draining listeners (admin)", "graceful", graceful, "inboundonly", inboundOnly)
	if w.dubboEnv != nil && graceful {
		w.dubboEnv.Drain()
	}
	w.startDrain()
	ctx, cancel := context.WithTimeout(context.Background(), w.opts.DrainTimeout)
	if !graceful {
		cancel()
	}
	hb, lns := w.hbone, w.listeners
	w.serve(func() {
		defer cancel()
		if hb != nil {
			hb.Shutdown(ctx)
		}
		lns.Drain(ctx)
	})
	return nil
}

// adminConfigDump is the snapshot's dump with the secrets dump.
func (w *Waypoint) adminConfigDump() ([]*adminv3.ConfigDump, error) {
	var out []*adminv3.ConfigDump
	if snap := w.store.Load(); snap != nil {
		d, err := snap.ConfigDumpProto()
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	sd, err := w.secretsDump()
	if err != nil {
		return nil, err
	}
	a, err := anypb.New(sd)
	if err != nil {
		return nil, err
	}
	return append(out, &adminv3.ConfigDump{Configs: []*anypb.Any{a}}), nil
}

// secretsDump shows the waypoint's identity as the SDS secrets Istio's
// agent gives Envoy: "default" (the certificate chain; the key redacted)
// and "ROOTCA" (the trusted roots), each at the leaf's issue time.
func (w *Waypoint) secretsDump() (*adminv3.SecretsConfigDump, error) {
	sd := &adminv3.SecretsConfigDump{}
	if w.certs == nil {
		return sd, nil
	}
	cert, err := w.certs.Certificate()
	if err != nil || cert == nil {
		return sd, err
	}
	var chain []byte
	for _, der := range cert.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	var roots []byte
	for _, c := range w.certs.Roots() {
		roots = append(roots, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	var issued time.Time
	if cert.Leaf != nil {
		issued = cert.Leaf.NotBefore
	}
	version := issued.UTC().Format(time.RFC3339)
	add := func(s *tlsv3.Secret) error {
		a, err := anypb.New(s)
		if err != nil {
			return err
		}
		sd.DynamicActiveSecrets = append(sd.DynamicActiveSecrets, &adminv3.SecretsConfigDump_DynamicSecret{
			Name: s.Name, VersionInfo: version, LastUpdated: timestamppb.New(issued), Secret: a})
		return nil
	}
	if err := add(&tlsv3.Secret{Name: secretDefault, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: chain}},
		PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "[redacted]"}},
	}}}); err != nil {
		return nil, err
	}
	if err := add(&tlsv3.Secret{Name: secretRootCA, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: roots}},
	}}}); err != nil {
		return nil, err
	}
	return sd, nil
}

// adminCerts is /certs: the waypoint's certificate chain and its roots.
func (w *Waypoint) adminCerts() *adminv3.Certificates {
	out := &adminv3.Certificates{}
	if w.certs == nil {
		return out
	}
	cert, _ := w.certs.Certificate()
	if cert == nil {
		return out
	}
	now := time.Now()
	chainPath, rootPath := "", ""
	if dir := w.certs.Dir(); dir != "" {
		chainPath, rootPath = filepath.Join(dir, certs.CertChainFile), filepath.Join(dir, certs.RootCertFile)
	}
	c := &adminv3.Certificate{}
	for _, r := range w.certs.Roots() {
		c.CaCert = append(c.CaCert, admin.CertificateDetails(r, rootPath, now))
	}
	for i, der := range cert.Certificate {
		x, err := x509.ParseCertificate(der)
		if i == 0 && cert.Leaf != nil {
			x, err = cert.Leaf, nil
		}
		if err != nil {
			continue
		}
		c.CertChain = append(c.CertChain, admin.CertificateDetails(x, chainPath, now))
	}
	out.Certificates = append(out.Certificates, c)
	return out
}

// adminClusters is /clusters: each cluster of the config in force, by
// name, with its circuit breakers and its hosts' counters and health.
func (w *Waypoint) adminClusters() *adminv3.Clusters {
	out := &adminv3.Clusters{}
	snap := w.store.Load()
	if snap == nil {
		return out
	}
	names := make([]string, 0, len(snap.Clusters))
	for n := range snap.Clusters {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		cl := snap.Clusters[n]
		t := cl.ThresholdsOrDefault()
		cs := &adminv3.ClusterStatus{Name: n, AddedViaApi: w.opts.ADS != nil,
			CircuitBreakers: admin.Thresholds(t.MaxConnections, t.MaxPendingRequests, t.MaxRequests, t.MaxRetries)}
		if st := w.clusters.LB.Cluster(n); st != nil {
			for _, h := range st.Hosts() {
				s := h.Stats()
				addr := socketAddress(h.Addr)
				if cl.FoldedFrom != "" {
					addr = internalAddress(cl.FoldedFrom, h.Addr.String())
				}
				cs.HostStatuses = append(cs.HostStatuses, &adminv3.HostStatus{
					Address: addr,
					Stats: []*adminv3.SimpleMetric{
						counter("cx_connect_fail", s.ConnectFail),
						counter("rq_error", s.Error),
						counter("rq_success", s.Success),
						counter("rq_timeout", s.Timeout),
						counter("rq_total", s.Total),
						{Type: adminv3.SimpleMetric_GAUGE, Name: "rq_active", Value: uint64(max(s.Active, 0))},
					},
					HealthStatus: &adminv3.HostHealthStatus{EdsHealthStatus: corev3.HealthStatus_HEALTHY, FailedOutlierCheck: h.Ejected()},
					Weight:       h.Weight,
				})
			}
		}
		out.ClusterStatuses = append(out.ClusterStatuses, cs)
	}
	return out
}

func counter(name string, v uint64) *adminv3.SimpleMetric {
	return &adminv3.SimpleMetric{Type: adminv3.SimpleMetric_COUNTER, Name: name, Value: v}
}

func socketAddress(a netip.AddrPort) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: a.Addr().String(), PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(a.Port())}}}}
}

// internalAddress is an envoy_internal_address.
func internalAddress(listener, endpointID string) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_EnvoyInternalAddress{EnvoyInternalAddress: &corev3.EnvoyInternalAddress{
		AddressNameSpecifier: &corev3.EnvoyInternalAddress_ServerListenerName{ServerListenerName: listener}, EndpointId: endpointID}}}
}

// adminListeners is /listeners: each listener of the config in force with
// the address it is bound to (the HBONE entry's is the HBONE port; an
// internal listener shows its envoy internal address).
func (w *Waypoint) adminListeners() *adminv3.Listeners {
	out := &adminv3.Listeners{}
	snap := w.store.Load()
	if snap == nil {
		return out
	}
	for _, l := range snap.Listeners {
		st := &adminv3.ListenerStatus{Name: l.Name}
		switch {
		case l.HBONE != nil && w.hboneUp.Load():
			if ap, err := netip.ParseAddrPort(w.hboneAddr.String()); err == nil {
				st.LocalAddress = socketAddress(ap)
			}
		case l.Internal:
			st.LocalAddress = internalAddress(l.Name, "")
		default:
			addr := l.Address
			if a, ok := w.listeners.Addr(l.Name); ok {
				if ap, err := netip.ParseAddrPort(a.String()); err == nil {
					addr = ap
				}
			}
			st.LocalAddress = socketAddress(addr)
		}
		out.ListenerStatuses = append(out.ListenerStatuses, st)
	}
	return out
}
