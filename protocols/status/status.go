// Package status is the one place where the proxy's failures become answers:
// every failure on the data path is an *Error of some Kind, and this package
// maps a Kind to the HTTP status a client sees, the status an HBONE CONNECT
// is refused with, and the Envoy response flag telemetry records.
package status

import (
	"errors"
	"net/http"
)

// Kind classifies a failure.
type Kind uint8

// The kinds, with the HTTP status and Envoy response flag each maps to.
const (
	// Unknown is any error that is not an *Error: 503, no flag.
	Unknown Kind = iota
	// BadRequest: the request itself is malformed (400).
	BadRequest
	// Denied: policy refused the request (403; HBONE 401).
	Denied
	// NoRoute: nothing in config matches the destination (404, flag NR;
	// HBONE 503 as ztunnel answers).
	NoRoute
	// NoCluster: the matched route names an unknown cluster (503, NC).
	NoCluster
	// NoHealthyUpstream: the cluster has no endpoint to pick (503, UH).
	NoHealthyUpstream
	// ConnectFailure: the endpoint could not be reached (503, UF).
	ConnectFailure
	// UpstreamReset: the upstream reset the stream (503, UR).
	UpstreamReset
	// Timeout: the upstream did not answer in time (504, UT).
	Timeout
	// Overflow: a circuit breaker refused the request (503, UO).
	Overflow
	// RefusedStream: the upstream refused the stream before processing it
	// (HTTP/2 REFUSED_STREAM), safe to retry (503, UR).
	RefusedStream
	// DownstreamGone: the client went away before the answer (499, DC).
	DownstreamGone
	// InvalidHeader: a message the proxy was to send has a header field
	// the protocol cannot carry, such as a name that is not a token, set
	// by a filter; the codec refused it whole, before sending anything
	// (500, no flag; HBONE 503).
	InvalidHeader
	// ConnectionTermination: the upstream connection ended under a request
	// already (at least partly) sent, before its response was complete:
	// closed or reset by the upstream or the transport under it (an HBONE
	// tunnel or its connection). Envoy's reset reason "connection
	// termination" (503, UC). A reset of the one stream of a multiplexed
	// connection is UpstreamReset.
	ConnectionTermination
)

var kinds = [...]struct {
	name  string
	http  int
	hbone int
	flag  string
	dubbo int
}{
	Unknown:           {"unknown", http.StatusServiceUnavailable, http.StatusServiceUnavailable, "", DubboServerError},
	BadRequest:        {"bad request", http.StatusBadRequest, http.StatusBadRequest, "", DubboBadRequest},
	Denied:            {"denied", http.StatusForbidden, http.StatusUnauthorized, "RBAC", DubboBadRequest},
	NoRoute:           {"no route", http.StatusNotFound, http.StatusServiceUnavailable, "NR", DubboServiceNotFound},
	NoCluster:         {"no cluster", http.StatusServiceUnavailable, http.StatusServiceUnavailable, "NC", DubboServiceNotFound},
	NoHealthyUpstream: {"no healthy upstream", http.StatusServiceUnavailable, http.StatusServiceUnavailable, "UH", DubboServerError},
	ConnectFailure:    {"upstream connect failure", http.StatusServiceUnavailable, http.StatusServiceUnavailable, "UF", DubboServerError},
	UpstreamReset:     {"upstream reset", http.StatusServiceUnavailable, http.StatusServiceUnavailable, "UR", DubboServerError},
	Timeout:           {"upstream timeout", http.StatusGatewayTimeout, http.StatusServiceUnavailable, "UT", DubboServerTimeout},
	Overflow:          {"upstream overflow", http.StatusServiceUnavailable, http.StatusServiceUnavailable, "UO", DubboThreadpoolExhausted},
	RefusedStream:     {"upstream refused stream", http.StatusServiceUnavailable, http.StatusServiceUnavailable, "UR", DubboThreadpoolExhausted},
	DownstreamGone:    {"downstream disconnected", 499, 499, "DC", DubboClientError},
	InvalidHeader:     {"invalid header", http.StatusInternalServerError, http.StatusServiceUnavailable, "", DubboServerError},

	ConnectionTermination: {"upstream connection termination", http.StatusServiceUnavailable, http.StatusServiceUnavailable, "UC", DubboServerError},
}

// Dubbo response statuses a local reply may carry (Dubbo 2's status byte,
// restated so this package imports nothing).
const (
	DubboBadRequest          = 40
	DubboServiceNotFound     = 60
	DubboServerTimeout       = 31
	DubboServerError         = 80
	DubboClientError         = 90
	DubboThreadpoolExhausted = 100
)

// DubboStatus is the Dubbo response status of a local reply for k: 40 when
// denied or malformed, 60 when nothing routes, 31 on an upstream timeout,
// 100 on overflow, 80 otherwise.
func (k Kind) DubboStatus() int { return kinds[k].dubbo }

// String names the kind.
func (k Kind) String() string { return kinds[k].name }

// HTTPStatus is the status of a local reply for k.
func (k Kind) HTTPStatus() int { return kinds[k].http }

// HBONEStatus is the status a CONNECT is refused with for k, as ztunnel
// answers: 400 for a bad request, 401 when denied, 503 otherwise.
func (k Kind) HBONEStatus() int { return kinds[k].hbone }

// ResponseFlag is Envoy's short response flag for k ("" for none).
func (k Kind) ResponseFlag() string { return kinds[k].flag }

// Error is a classified failure. Err may be nil.
type Error struct {
	Kind Kind
	Err  error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.Kind.String()
	}
	return e.Kind.String() + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// New returns an *Error of kind k wrapping err.
func New(k Kind, err error) error { return &Error{Kind: k, Err: err} }

// KindOf returns the kind of the first *Error in err's chain, or Unknown.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Unknown
}
