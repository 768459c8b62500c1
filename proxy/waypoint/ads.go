package waypoint

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/proxy/certs"
	"github.com/gowaypoint/waypoint/proxy/hbone"
	"github.com/gowaypoint/waypoint/telemetry/accesslog"
	"github.com/gowaypoint/waypoint/xds"
	"github.com/gowaypoint/waypoint/xds/adsclient"
	"github.com/gowaypoint/waypoint/xds/istiod"
)

// ADSOptions configure the waypoint over xDS (ADS) instead of a file.
type ADSOptions struct {
	// Client configures the xDS client; its Conn and Node are required,
	// its Apply, Logger and Build are the waypoint's.
	Client adsclient.Config
}

// dynamicADS makes the ADS options of a bootstrap's dynamic_resources: its
// control plane dialled as Istio's agent dials istiod (TLS, the token of
// Options.XDSTokenFile, the waypoint's certificate when asked for), the
// bootstrap's node (else Options.Node), its initial fetch timeout.
func (w *Waypoint) dynamicADS(bs *xds.Bootstrap) (*ADSOptions, error) {
	d := bs.Dynamic
	conn, err := istiod.Dial(istiod.DialConfig{ControlPlane: d.ControlPlane, TokenFile: w.opts.XDSTokenFile,
		ClientCertificate: w.certs.Certificate})
	if err != nil {
		return nil, fmt.Errorf("waypoint: dynamic_resources: %w", err)
	}
	w.adsConn = conn
	node := bs.Raw.GetNode()
	if node == nil {
		node = w.opts.Node
	}
	if node == nil {
		return nil, errors.New("waypoint: dynamic_resources: the bootstrap names no node, and none is configured")
	}
	timeout := d.InitialFetchTimeout
	if timeout == 0 {
		timeout = -1 // wait forever
	}
	w.log.Info("xds: control plane from the bootstrap", "cluster", d.ControlPlane.Cluster, "target", d.ControlPlane.Target,
		"tls", d.ControlPlane.TLS != nil, "delta", d.Delta, "node", node.GetId())
	return &ADSOptions{Client: adsclient.Config{Conn: conn, Node: node, Delta: d.Delta, InitialFetchTimeout: timeout}}, nil
}

// startADS runs the xDS client and waits for the first config (or the
// initial fetch timeout). It returns the snapshot in force, maybe nil.
func (w *Waypoint) startADS() (*xds.Snapshot, error) {
	cfg := w.opts.ADS.Client
	cfg.Logger = w.log
	cfg.Apply = w.applyADS
	cfg.Build = w.buildOptions()
	w.ads = adsclient.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	w.adsStop = cancel
	w.serve(func() { w.ads.Run(ctx) })
	select {
	case <-w.ads.Ready():
	case <-w.stop:
		return nil, fmt.Errorf("waypoint: stopped before the first config")
	}
	return w.store.Load(), nil
}

// applyADS makes a snapshot from xDS current: addressed listeners first
// (an error refuses the snapshot), then clusters, then the store.
func (w *Waypoint) applyADS(snap *xds.Snapshot) error {
	w.reloadMu.Lock()
	defer w.reloadMu.Unlock()
	if err := w.listeners.Apply(snap); err != nil {
		return err
	}
	w.clusters.Update(snap)
	w.replaceSnapshot(snap)
	w.log.Info("config applied", "source", "xds", "version", snap.Version)
	return nil
}

// hboneServerConfig takes the HBONE server's settings from the HBONE entry
// (istiod's connect_terminate) when the config has one.
func (w *Waypoint) hboneServerConfig(snap *xds.Snapshot, h hbone.Handler) hbone.ServerConfig {
	cfg := hbone.ServerConfig{
		TLS:          w.certs.ServerTLSConfig(),
		PeerIdentity: w.peerIdentity,
		Handler:      h,
		Logger:       w.log,
		OnRefuse:     w.logRefusedStream,
		Overload:     w.overload,
		PeerGate:     w.resetBudget,
	}
	if l := snap.HBONEEntry(); l != nil {
		e := l.HBONE
		cfg.MaxConcurrentStreams = e.MaxConcurrentStreams
		cfg.StreamWindow = int32(min(e.StreamWindow, 1<<31-1))
		cfg.ConnWindow = int32(min(e.ConnWindow, 1<<31-1))
		cfg.KeepAliveInterval, cfg.KeepAliveTimeout = e.KeepAliveInterval, e.KeepAliveTimeout
	}
	return cfg
}

// logRefusedStream writes the HBONE entry's access_log (connect_terminate's
// connection manager's, in the config in force) for a refused CONNECT
// stream: a request CONNECT to its authority, answered status.
func (w *Waypoint) logRefusedStream(st *hbone.ServerStream, status int, flag, reason string) {
	l := w.store.Load().HBONEEntry()
	if l == nil || len(l.HBONE.AccessLog) == 0 || w.logs == nil {
		return
	}
	req := &l7.Request{Method: l7.MethodConnect, Authority: []byte(st.Authority), Proto: l7.HTTP2}
	if st.Header != nil {
		req.Header = *st.Header
	}
	down := &filters.Downstream{Peer: st.Peer, RemoteAddr: st.PeerAddr, LocalAddr: st.LocalAddr, Destination: st.Target, Authority: st.Authority}
	if !st.Peer.IsZero() {
		down.PeerURI = st.Peer.String()
	}
	w.logs.Emit(l.HBONE.AccessLog, &accesslog.Record{Start: st.Start, Duration: time.Since(st.Start), Request: req,
		Response: &l7.Response{Status: status}, Downstream: down, Code: status, Flags: filters.FlagFor(flag), Details: reason})
}

// peerIdentity verifies an HBONE client: its SPIFFE identity, then the
// URI SAN matchers of the HBONE entry in force.
func (w *Waypoint) peerIdentity(cs tls.ConnectionState) (spiffe.ID, error) {
	id, err := certs.PeerIdentity(cs)
	if err != nil {
		return id, err
	}
	l := w.store.Load().HBONEEntry()
	if l == nil {
		return id, nil
	}
	san := l.HBONE.PeerSAN
	if len(san.SANExact) == 0 && len(san.SANPrefixes) == 0 {
		return id, nil
	}
	uri := id.String()
	for _, e := range san.SANExact {
		if uri == e {
			return id, nil
		}
	}
	for _, p := range san.SANPrefixes {
		if len(uri) >= len(p) && uri[:len(p)] == p {
			return id, nil
		}
	}
	return id, fmt.Errorf("peer %s matches no URI SAN matcher of listener %q", uri, l.Name)
}

// hboneListenAddrs are where HBONE is served: Options.HBONEAddr when set,
// else the HBONE entry's addresses, else the wildcards of Options.PodIPs
// on DefaultHBONEPort.
func (w *Waypoint) hboneListenAddrs(snap *xds.Snapshot) ([]netip.AddrPort, error) {
	if w.opts.HBONEAddr != "" {
		addrs, err := ParseAddrs(w.opts.HBONEAddr)
		if err != nil {
			return nil, fmt.Errorf("waypoint: HBONE address: %w", err)
		}
		return addrs, nil
	}
	if l := snap.HBONEEntry(); l != nil {
		return l.Addresses(), nil
	}
	return Wildcards(w.opts.PodIPs, DefaultHBONEPort), nil
}
