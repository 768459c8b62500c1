package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gowaypoint/waypoint/protocols/http2"
	"github.com/gowaypoint/waypoint/telemetry/stats"
)

// Refusals and defences: what the waypoint turns away on its HBONE
// listener and inside the tunnels, under Envoy's names where Envoy counts
// the same thing (docs/hardening.md lists them):
//
//	envoy_listener_ssl_connection_error{listener}                         TLS handshakes failed, not by certificate verification (plaintext, protocol version, ALPN, other)
//	envoy_listener_ssl_fail_verify_no_cert{listener}                      handshakes failed: no client certificate
//	envoy_listener_ssl_fail_verify_error{listener}                        handshakes failed: the certificate does not verify (unknown CA, expired...)
//	envoy_listener_ssl_fail_verify_san{listener}                          certificate verified, identity refused (no SPIFFE URI, foreign trust domain)
//	envoy_listener_downstream_pre_cx_timeout{listener}                    no ClientHello within the handshake timeout
//	envoy_listener_downstream_cx_transport_socket_connect_timeout{listener} ClientHello received, handshake not done within the timeout
//	envoy_listener_no_filter_chain_match{listener}                        CONNECT streams no filter chain takes (no route)
//	envoy_http2_<defence>                                                 HTTP/2 connections closed by a flood defence (http2.Defence names)
//	envoy_http_downstream_rq_too_many_premature_resets{http_conn_manager_prefix}  connections closed for rapid reset
//	envoy_http_downstream_rq_header_timeout{http_conn_manager_prefix}     requests whose headers did not arrive within request_headers_timeout
//	envoy_http_downstream_rq_idle_timeout{http_conn_manager_prefix}       streams ended by stream_idle_timeout
//	envoy_http_downstream_rq_timeout{http_conn_manager_prefix}            requests not received whole within request_timeout
//	envoy_http_downstream_rq_max_duration_reached{http_conn_manager_prefix}  streams ended by max_stream_duration
//	envoy_http_downstream_cx_max_duration_reached{http_conn_manager_prefix}  connections drained by max_connection_duration
//	waypoint_hbone_refused_connections_total{reason}                      every refused HBONE connection by reason (HandshakeReason)
//	waypoint_hbone_refused_streams_total{reason}                          every refused CONNECT stream by reason
//	waypoint_http2_too_many_pending_streams_total                         HTTP/2 connections closed for streams waiting for a handler (no Envoy analogue)
//	waypoint_hbone_too_many_refused_streams_total                         HBONE connections closed for refused CONNECT streams (no Envoy analogue)
var (
	sslConnError    = stats.NewCounterVec(prometheus.CounterOpts{Name: "envoy_listener_ssl_connection_error", Help: "TLS handshakes failed, certificate verification aside."}, []string{"listener"})
	sslNoCert       = stats.NewCounterVec(prometheus.CounterOpts{Name: "envoy_listener_ssl_fail_verify_no_cert", Help: "TLS handshakes failed for want of a client certificate."}, []string{"listener"})
	sslVerifyError  = stats.NewCounterVec(prometheus.CounterOpts{Name: "envoy_listener_ssl_fail_verify_error", Help: "TLS handshakes failed certificate verification."}, []string{"listener"})
	sslVerifySAN    = stats.NewCounterVec(prometheus.CounterOpts{Name: "envoy_listener_ssl_fail_verify_san", Help: "TLS peers whose identity was refused."}, []string{"listener"})
	preCxTimeout    = stats.NewCounterVec(prometheus.CounterOpts{Name: "envoy_listener_downstream_pre_cx_timeout", Help: "Connections closed without a ClientHello within the handshake timeout."}, []string{"listener"})
	tsTimeout       = stats.NewCounterVec(prometheus.CounterOpts{Name: "envoy_listener_downstream_cx_transport_socket_connect_timeout", Help: "Connections whose TLS handshake did not finish within the timeout."}, []string{"listener"})
	noChain         = stats.NewCounterVec(prometheus.CounterOpts{Name: "envoy_listener_no_filter_chain_match", Help: "Connections no filter chain matched."}, []string{"listener"})
	refusedConns    = stats.NewCounterVec(prometheus.CounterOpts{Name: "waypoint_hbone_refused_connections_total", Help: "HBONE connections refused, by reason."}, []string{"reason"})
	refusedStreams  = stats.NewCounterVec(prometheus.CounterOpts{Name: "waypoint_hbone_refused_streams_total", Help: "HBONE CONNECT streams refused, by reason."}, []string{"reason"})
	prematureResets = stats.NewCounterVec(prometheus.CounterOpts{Name: "envoy_http_downstream_rq_too_many_premature_resets", Help: "Connections closed for too many requests reset before a response."}, []string{"http_conn_manager_prefix"})
	headerTimeouts  = stats.NewCounterVec(prometheus.CounterOpts{Name: "envoy_http_downstream_rq_header_timeout", Help: "Requests closed because their headers did not arrive within request_headers_timeout."}, []string{"http_conn_manager_prefix"})
	idleTimeouts    = stats.NewCounterVec(prometheus.CounterOpts{Name: "envoy_http_downstream_rq_idle_timeout", Help: "Streams ended by stream_idle_timeout."}, []string{"http_conn_manager_prefix"})
	rqTimeouts      = stats.NewCounterVec(prometheus.CounterOpts{Name: "envoy_http_downstream_rq_timeout", Help: "Requests not received whole within request_timeout."}, []string{"http_conn_manager_prefix"})
	rqMaxDuration   = stats.NewCounterVec(prometheus.CounterOpts{Name: "envoy_http_downstream_rq_max_duration_reached", Help: "Streams ended by max_stream_duration."}, []string{"http_conn_manager_prefix"})
	cxMaxDuration   = stats.NewCounterVec(prometheus.CounterOpts{Name: "envoy_http_downstream_cx_max_duration_reached", Help: "Connections drained by max_connection_duration."}, []string{"http_conn_manager_prefix"})
	defences        [http2.NumDefences]prometheus.Counter // unlabelled codec counters; nil for those counted per connection manager
)

func init() {
	for d := http2.Defence(1); int(d) < http2.NumDefences; d++ {
		name := "envoy_http2_" + d.String()
		help := "HTTP/2 connections closed by the " + d.String() + " defence."
		switch d {
		case http2.DefencePrematureResets:
			continue
		case http2.DefencePendingStreams:
			name = "waypoint_http2_too_many_pending_streams_total"
		case http2.DefenceRefusedStreams:
			name = "waypoint_hbone_too_many_refused_streams_total"
		}
		defences[d] = stats.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
}

// HandshakeReason classifies a connection the HBONE listener refused
// before its first stream. Its String is the reason label.
type HandshakeReason uint8

// The reasons, each counted in waypoint_hbone_refused_connections_total
// and in the Envoy listener counter named beside it.
const (
	ReasonPlaintext          HandshakeReason = iota // not TLS at all (ssl.connection_error)
	ReasonProtocolVersion                           // TLS below 1.3, or no common cipher or group (ssl.connection_error)
	ReasonBadCertificate                            // the certificate does not verify (ssl.fail_verify_error)
	ReasonNoCertificate                             // no client certificate (ssl.fail_verify_no_cert)
	ReasonPeerIdentity                              // verified, identity refused (ssl.fail_verify_san)
	ReasonALPN                                      // ALPN other than h2 (ssl.connection_error)
	ReasonClientHelloTimeout                        // nothing, or not a whole ClientHello, in time (downstream_pre_cx_timeout)
	ReasonHandshakeTimeout                          // ClientHello in, handshake not done in time (downstream_cx_transport_socket_connect_timeout)
	ReasonHandshakeOther                            // the peer left or anything else (ssl.connection_error)
	NumHandshakeReasons
)

var handshakeReasons = [NumHandshakeReasons]string{
	"plaintext", "protocol_version", "bad_certificate", "no_certificate", "peer_identity", "alpn",
	"client_hello_timeout", "handshake_timeout", "other",
}

func (r HandshakeReason) String() string {
	if r < NumHandshakeReasons {
		return handshakeReasons[r]
	}
	return "unknown"
}

// HBONEListenerStats are the refusal counters of one HBONE listener,
// resolved once. Safe for concurrent use.
type HBONEListenerStats struct {
	refused [NumHandshakeReasons]prometheus.Counter // waypoint_hbone_refused_connections_total
	envoy   [NumHandshakeReasons]prometheus.Counter // the Envoy listener counter of each reason
}

// Refused counts a connection refused for r.
func (s *HBONEListenerStats) Refused(r HandshakeReason) {
	if r >= NumHandshakeReasons {
		r = ReasonHandshakeOther
	}
	s.refused[r].Inc()
	s.envoy[r].Inc()
}

var (
	refusalMu      sync.Mutex
	hboneListeners = map[string]*HBONEListenerStats{} // guarded by refusalMu
	streamReasons  = map[string]prometheus.Counter{}  // guarded by refusalMu
	perPrefix      = map[string]*HCMStats{}           // guarded by refusalMu
)

// HBONEListener returns the refusal counters of the named HBONE listener.
func HBONEListener(name string) *HBONEListenerStats {
	refusalMu.Lock()
	defer refusalMu.Unlock()
	if s := hboneListeners[name]; s != nil {
		return s
	}
	s := &HBONEListenerStats{}
	for r := HandshakeReason(0); r < NumHandshakeReasons; r++ {
		s.refused[r] = refusedConns.WithLabelValues(r.String())
		var v *prometheus.CounterVec
		switch r {
		case ReasonBadCertificate:
			v = sslVerifyError
		case ReasonNoCertificate:
			v = sslNoCert
		case ReasonPeerIdentity:
			v = sslVerifySAN
		case ReasonClientHelloTimeout:
			v = preCxTimeout
		case ReasonHandshakeTimeout:
			v = tsTimeout
		default:
			v = sslConnError
		}
		s.envoy[r] = v.WithLabelValues(name)
	}
	hboneListeners[name] = s
	return s
}

// RefusedStream returns the counter of CONNECT streams refused for reason
// (a short snake_case word from a fixed set: the caller's, never the
// peer's input).
func RefusedStream(reason string) prometheus.Counter {
	refusalMu.Lock()
	defer refusalMu.Unlock()
	c := streamReasons[reason]
	if c == nil {
		c = refusedStreams.WithLabelValues(reason)
		streamReasons[reason] = c
	}
	return c
}

// NoFilterChainMatch returns the listener's no_filter_chain_match counter.
func NoFilterChainMatch(listener string) prometheus.Counter {
	return noChain.WithLabelValues(listener)
}

// HCMStats are the defence and timeout counters of one HTTP connection
// manager (by stat_prefix), resolved once. Safe for concurrent use.
type HCMStats struct {
	prematureResets prometheus.Counter
	// HeaderTimeouts counts requests closed by request_headers_timeout.
	HeaderTimeouts prometheus.Counter
	// IdleTimeouts counts streams ended by stream_idle_timeout,
	// RequestTimeouts requests not whole within request_timeout,
	// MaxDurationReached streams ended by max_stream_duration, and
	// CxMaxDurationReached connections drained by max_connection_duration.
	IdleTimeouts         prometheus.Counter
	RequestTimeouts      prometheus.Counter
	MaxDurationReached   prometheus.Counter
	CxMaxDurationReached prometheus.Counter
}

// HCM returns the counters of the connection manager with stat_prefix.
func HCM(prefix string) *HCMStats {
	refusalMu.Lock()
	defer refusalMu.Unlock()
	s := perPrefix[prefix]
	if s == nil {
		s = &HCMStats{prematureResets: prematureResets.WithLabelValues(prefix), HeaderTimeouts: headerTimeouts.WithLabelValues(prefix),
			IdleTimeouts: idleTimeouts.WithLabelValues(prefix), RequestTimeouts: rqTimeouts.WithLabelValues(prefix),
			MaxDurationReached: rqMaxDuration.WithLabelValues(prefix), CxMaxDurationReached: cxMaxDuration.WithLabelValues(prefix)}
		perPrefix[prefix] = s
	}
	return s
}

// Defence counts an HTTP/2 connection of this connection manager closed
// by d; DefenceNone counts nothing.
func (s *HCMStats) Defence(d http2.Defence) {
	switch {
	case d == http2.DefencePrematureResets:
		s.prematureResets.Inc()
	case d > 0 && int(d) < http2.NumDefences:
		defences[d].Inc()
	}
}

// RefusedConnection returns the counter of HBONE connections refused for
// reason outside the handshake reasons (peer_connection_limit...; a short
// snake_case word from a fixed set: the caller's, never the peer's input).
func RefusedConnection(reason string) prometheus.Counter {
	return refusedConns.WithLabelValues(reason)
}
