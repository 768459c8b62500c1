package hbone

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gowaypoint/waypoint/protocols/http2"
	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/telemetry/metrics"
)

// Refusals are counted every one (telemetry/metrics refusals.go) and
// logged quietly: each at debug with its detail, and at INFO at most one
// line per reason per second (lograte), which carries the detail of the
// event that wrote it and how many were held back since the last one.
// Anyone who can reach the port can cause them, so none of this
// allocates before the debug level is known to be on or a line is due.

type prometheusCounter = prometheus.Counter

// streamRefusal classifies a refused CONNECT stream.
type streamRefusal uint8

const (
	refusedBadRequest  streamRefusal = iota // 400: a method other than CONNECT, an authority not ip:port
	refusedNoRoute                          // flag NR: no filter chain takes the destination
	refusedDenied                           // 401/403: policy
	refusedUnavailable                      // anything else (503: the upstream failed...)
	numStreamRefusals
)

var streamRefusalNames = [numStreamRefusals]string{"bad_request", "no_route", "denied", "unavailable"}

func (r streamRefusal) String() string { return streamRefusalNames[r] }

// peersFault says whether the peer alone caused the refusal: those count
// towards MaxRefusedStreams.
func (r streamRefusal) peersFault() bool { return r == refusedBadRequest || r == refusedNoRoute }

func classifyStream(status int, flag string) streamRefusal {
	switch {
	case status == http.StatusBadRequest:
		return refusedBadRequest
	case flag == "NR":
		return refusedNoRoute
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return refusedDenied
	}
	return refusedUnavailable
}

func (s *Server) initRefusals() {
	s.lstats = metrics.HBONEListener(s.cfg.StatName)
	s.hcm = metrics.HCM(s.cfg.StatName)
	for r := range numStreamRefusals {
		s.streamStats[r] = metrics.RefusedStream(r.String())
	}
}

// markHello wraps a server's GetConfigForClient (nil: none) to note on the
// connection that its ClientHello was read.
func markHello(next func(*tls.ClientHelloInfo) (*tls.Config, error)) func(*tls.ClientHelloInfo) (*tls.Config, error) {
	return func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
		if rs, ok := hi.Conn.(*recordSocket); ok {
			rs.hello.Store(true)
		}
		if next != nil {
			return next(hi)
		}
		return nil, nil
	}
}

// classifyHandshake says why a server handshake failed; hello is whether
// the ClientHello had been read.
func classifyHandshake(err error, hello bool) metrics.HandshakeReason {
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) {
		return metrics.ReasonPlaintext
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		if hello {
			return metrics.ReasonHandshakeTimeout
		}
		return metrics.ReasonClientHelloTimeout
	}
	var cve *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	msg := err.Error()
	switch {
	case strings.Contains(msg, "didn't provide a certificate"), strings.Contains(msg, "presented no certificate"):
		return metrics.ReasonNoCertificate
	case strings.Contains(msg, "is not in trust domain"):
		return metrics.ReasonPeerIdentity
	case errors.As(err, &cve), errors.As(err, &ua), errors.As(err, &ci), strings.Contains(msg, "bad certificate"),
		strings.Contains(msg, "certificate has expired"), strings.Contains(msg, "certificate is not yet valid"),
		strings.Contains(msg, "leaf certificate is a CA"):
		return metrics.ReasonBadCertificate
	case strings.Contains(msg, "spiffe: "), strings.Contains(msg, "SPIFFE"):
		return metrics.ReasonPeerIdentity // verified, but no usable SPIFFE identity
	case strings.Contains(msg, "verify client certificate"):
		return metrics.ReasonBadCertificate
	case strings.Contains(msg, "unsupported versions"), strings.Contains(msg, "protocol version"),
		strings.Contains(msg, "no cipher suite"), strings.Contains(msg, "no ECDHE curve"), strings.Contains(msg, "no mutually supported"):
		return metrics.ReasonProtocolVersion
	case strings.Contains(msg, "application protocol"):
		return metrics.ReasonALPN
	}
	return metrics.ReasonHandshakeOther
}

// refuseConn counts and logs a connection refused before its first
// stream.
func (s *Server) refuseConn(r metrics.HandshakeReason, remote netip.AddrPort, detail string) {
	s.lstats.Refused(r)
	if ok, n := s.connLog[r].Allow(); ok {
		s.log.Info("hbone: refused connection", "reason", r.String(), "remote", remote, "detail", detail, "suppressed", n)
		return
	}
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("hbone: refused connection", "reason", r.String(), "remote", remote, "detail", detail)
	}
}

// defended counts and logs a connection an HTTP/2 defence closed.
func (s *Server) defended(d http2.Defence, ci *connInfo, err error) {
	s.hcm.Defence(d)
	if ok, n := s.defenceLog[d].Allow(); ok {
		s.log.Info("hbone: connection closed by a defence", "defence", d.String(), "remote", ci.remote,
			"peer", ci.peer.String(), "error", err, "suppressed", n)
		return
	}
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("hbone: connection closed by a defence", "defence", d.String(), "remote", ci.remote,
			"peer", ci.peer.String(), "error", err)
	}
}

// refusedStream counts and logs a refused CONNECT stream, and closes its
// connection when the peer's refusals pass MaxRefusedStreams.
func (s *Server) refusedStream(st *ServerStream, status int, flag, reason string) {
	r := classifyStream(status, flag)
	s.streamStats[r].Inc()
	if ok, n := s.streamLog[r].Allow(); ok {
		s.logRefusal(slog.LevelInfo, st.Peer, st.PeerAddr, st.Authority, status, r, reason, n)
	} else if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.logRefusal(slog.LevelDebug, st.Peer, st.PeerAddr, st.Authority, status, r, reason, 0)
	}
	if !r.peersFault() || s.cfg.MaxRefusedStreams < 0 || st.ci == nil {
		return
	}
	refused := st.ci.refused.Add(1)
	if refused >= int64(s.cfg.MaxRefusedStreams) && refused > st.ci.accepted.Load() && !st.ci.closing.Swap(true) {
		st.st.CloseConn("too many refused CONNECT streams")
	}
}

func (s *Server) logRefusal(level slog.Level, peer spiffe.ID, remote netip.AddrPort, authority string, status int,
	r streamRefusal, reason string, suppressed uint64) {
	s.log.Log(context.Background(), level, "hbone: refused stream", "peer", peer.String(), "remote", remote,
		"authority", authority, "status", status, "class", r.String(), "reason", reason, "suppressed", suppressed)
}
