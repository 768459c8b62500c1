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
	"sync"

	"github.com/gowaypoint/waypoint/proxy/acceptor"
	"github.com/gowaypoint/waypoint/proxy/downstream"
	"github.com/gowaypoint/waypoint/proxy/filterchain"
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

	acc     acceptor.Acceptor
	mu      sync.Mutex
	sockets map[string]*socket // by listener name; guarded by mu
	// drain is every connection's drain context, cancelled by Drain
	// (stop); made by the first Apply, guarded by mu until then.
	drain context.Context
	stop  context.CancelFunc
}

type socket struct {
	name string
	addr netip.AddrPort
	ln   net.Listener
}

// Apply opens sockets for listeners new in snap, closes those of listeners
// gone or moved, and keeps the rest. It opens all new sockets before
// closing any, and on error closes the ones it opened and changes nothing.
func (m *Manager) Apply(snap *xds.Snapshot) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sockets == nil {
		m.sockets = map[string]*socket{}
	}
	if m.drain == nil {
		m.drain, m.stop = context.WithCancel(context.Background())
	}
	want := map[string]netip.AddrPort{}
	for _, l := range snap.Listeners {
		if !l.Internal && l.Address.IsValid() && l.HBONE == nil { // the HBONE entry is the waypoint's HBONE server
			want[l.Name] = l.Address
		}
	}
	var opened []*socket
	for name, addr := range want {
		if s, ok := m.sockets[name]; ok && s.addr == addr {
			continue
		}
		ln, err := net.Listen("tcp", addr.String())
		if err != nil {
			for _, s := range opened {
				s.ln.Close()
			}
			return fmt.Errorf("listener %q: %w", name, err)
		}
		opened = append(opened, &socket{name: name, addr: addr, ln: ln})
	}
	for name, s := range m.sockets {
		if addr, ok := want[name]; !ok || addr != s.addr {
			s.ln.Close()
			delete(m.sockets, name)
		}
	}
	for _, s := range opened {
		m.sockets[s.name] = s
		drain := m.drain
		go m.acc.Serve(s.ln, func(c net.Conn) { m.serve(drain, s.name, c.(*net.TCPConn)) })
	}
	return nil
}

// Addr returns the bound address of the named listener, if it is open.
func (m *Manager) Addr(name string) (net.Addr, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sockets[name]
	if !ok {
		return nil, false
	}
	return s.ln.Addr(), true
}

// serve serves one accepted connection by the chain it matches, until it
// ends; the acceptor closes it after.
func (m *Manager) serve(drain context.Context, name string, tc *net.TCPConn) {
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
