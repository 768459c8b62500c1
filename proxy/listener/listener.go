// Package listener runs the config's listeners that have a real address:
// plaintext TCP listeners (for ingress and benchmarks) whose filter chain is
// chosen by the connection's destination and source, as Envoy chooses it.
package listener

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/gowaypoint/waypoint/proxy/acceptor"
	"github.com/gowaypoint/waypoint/proxy/downstream"
	"github.com/gowaypoint/waypoint/proxy/drain"
	"github.com/gowaypoint/waypoint/proxy/filterchain"
	"github.com/gowaypoint/waypoint/proxy/overload"
	"github.com/gowaypoint/waypoint/telemetry/metrics"
	"github.com/gowaypoint/waypoint/xds"
)

// Manager keeps one socket per addressed listener of the current config.
// Apply reconciles the sockets with a new snapshot; connections always read
// the snapshot current when they were accepted. Chains and Log are set
// before the first Apply and read-only afterwards; safe for concurrent
// use. The Manager owns every socket and connection (its acceptor serves
// each connection on a goroutine of its own and closes it after); Drain
// ends them.
type Manager struct {
	// Chains serves the chain a connection matches; its Store is the
	// config.
	Chains *filterchain.Server
	Log    *slog.Logger
	// Overload, when set, admits each connection (the global connection
	// limit, stop_accepting_connections), counted under the listener's
	// name. The caller owns it.
	Overload *overload.Manager

	acc     acceptor.Acceptor
	mu      sync.Mutex
	sockets map[string]*socket // by listener name; guarded by mu
	// drain is every connection's drain context, cancelled by Drain
	// (stop); made by the first Apply, guarded by mu until then.
	drain context.Context
	stop  context.CancelFunc
}

type socket struct {
	name  string
	addrs []netip.AddrPort // address, then additional_addresses
	lns   []net.Listener   // one per address
}

func (s *socket) close() {
	for _, ln := range s.lns {
		ln.Close()
	}
}

// Listen opens a TCP socket on addr as Envoy binds a listener address: an
// IPv4 address binds IPv4 only and an IPv6 one IPv6 only (IPV6_V6ONLY, as
// Envoy's ipv4_compat false), so that 0.0.0.0 and [::] of a dual-stack
// listener bind side by side.
func Listen(addr netip.AddrPort) (net.Listener, error) {
	network := "tcp6"
	if addr.Addr().Unmap().Is4() {
		network, addr = "tcp4", netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	}
	return net.Listen(network, addr.String())
}

// ListenAll opens a socket on each of addrs; on error it closes those it
// opened.
func ListenAll(addrs []netip.AddrPort) ([]net.Listener, error) {
	lns := make([]net.Listener, 0, len(addrs))
	for _, a := range addrs {
		ln, err := Listen(a)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, err
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

// Apply opens sockets for listeners new in snap, closes those of listeners
// gone or moved, and keeps the rest. A listener listens on its address and
// each of its additional_addresses. It opens all new sockets before
// closing any, and on error closes the ones it opened and changes nothing.
func (m *Manager) Apply(snap *xds.Snapshot) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sockets == nil {
		m.sockets = map[string]*socket{}
	}
	if m.drain == nil {
		m.drain, m.stop = drain.New() // a registration leaves nothing behind
	}
	want := map[string][]netip.AddrPort{}
	for _, l := range snap.Listeners {
		if !l.Internal && l.Address.IsValid() && l.HBONE == nil { // the HBONE entry is the waypoint's HBONE server
			want[l.Name] = l.Addresses()
		}
	}
	var opened []*socket
	for name, addrs := range want {
		if s, ok := m.sockets[name]; ok && slices.Equal(s.addrs, addrs) {
			continue
		}
		lns, err := ListenAll(addrs)
		if err != nil {
			for _, s := range opened {
				s.close()
			}
			return fmt.Errorf("listener %q: %w", name, err)
		}
		opened = append(opened, &socket{name: name, addrs: addrs, lns: lns})
	}
	for name, s := range m.sockets {
		if addrs, ok := want[name]; !ok || !slices.Equal(addrs, s.addrs) {
			s.close()
			delete(m.sockets, name)
		}
	}
	for _, s := range opened {
		m.sockets[s.name] = s
		drain := m.drain
		for _, ln := range s.lns {
			go m.acc.Serve(ln, func(c net.Conn) { m.serve(drain, s.name, c.(*net.TCPConn)) })
		}
	}
	return nil
}

// Addr returns the bound address of the named listener (of its address,
// not its additional ones), if it is open.
func (m *Manager) Addr(name string) (net.Addr, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sockets[name]
	if !ok {
		return nil, false
	}
	return s.lns[0].Addr(), true
}

// Addrs returns the bound addresses of the named listener: its address's,
// then its additional addresses', in config order.
func (m *Manager) Addrs(name string) []net.Addr {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sockets[name]
	if !ok {
		return nil
	}
	out := make([]net.Addr, len(s.lns))
	for i, ln := range s.lns {
		out[i] = ln.Addr()
	}
	return out
}

// serve serves one accepted connection by the chain it matches, until it
// ends; the acceptor closes it after.
func (m *Manager) serve(drain context.Context, name string, tc *net.TCPConn) {
	gate := m.Overload.Listener(name) // nil without a manager: admits all
	if !gate.Admit() {
		return
	}
	defer gate.Release()
	ls := metrics.Listener(name)
	ls.Connections.Inc()
	ls.Active.Inc()
	defer ls.Active.Dec()
	c := downstream.NewTCP(tc)
	snap := m.Chains.Store.Load()
	l := snap.Listener(name)
	if l == nil {
		m.refuse(c, name, fmt.Errorf("listener %q is gone", name))
		return
	}
	in := xds.MatchInput{Destination: c.Info.LocalAddr, Source: c.Info.RemoteAddr}
	fc := l.Match(in)
	if fc == nil {
		m.refuse(c, name, fmt.Errorf("no filter chain matches %s", in.Destination))
		return
	}
	m.Chains.Serve(drain, c, filterchain.Match{Snapshot: snap, Listener: name, Input: in, Chain: fc})
}

// refuse logs why a connection is not served and resets it.
func (m *Manager) refuse(c *downstream.Conn, listener string, reason error) {
	m.Log.Info("listener: refused connection", "listener", listener, "remote", c.Info.RemoteAddr.String(), "reason", reason.Error())
	c.Refuse(reason)
}

// Drain closes every socket so no connection is accepted and tells the
// connections to finish (their drain context ends: HTTP/2 sends GOAWAY,
// HTTP/1.1 ends after its response in flight, at once when idle), then
// waits for them until ctx is done, and closes what is left.
func (m *Manager) Drain(ctx context.Context) error {
	m.mu.Lock()
	clear(m.sockets)
	if m.stop != nil {
		m.stop()
	}
	m.mu.Unlock()
	return m.acc.Drain(ctx)
}
