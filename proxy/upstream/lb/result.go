package lb

import (
	"strconv"

	"github.com/gowaypoint/waypoint/protocols/status"
)

// Result is how one request to a host ended, as reported to the function
// returned by [Host.Begin]: an HTTP status the host sent ([Status]), or a
// local-origin event. Outlier detection counts it.
type Result uint32

// Local-origin results. Without split_external_local_origin_errors, a
// connect failure or a reset counts as a 503 and a timeout as a 504, as in
// Envoy; with it, they count as local-origin failures.
const (
	// ConnectFailed: the connection (or HBONE tunnel) to the host could not
	// be opened.
	ConnectFailed Result = 1<<16 + iota
	// Reset: the stream or connection was reset before a response,
	// HTTP/2 REFUSED_STREAM and a connection termination included (as
	// Envoy's router reports resets).
	Reset
	// Timeout: the host did not answer in time.
	Timeout
	// Connected: a TCP connection to the host was opened and served, the
	// whole transaction for a TCP proxy (Envoy's LocalOriginConnectSuccessFinal).
	Connected
	// Canceled: the request ended for a reason that says nothing about the
	// host (the downstream went away, a circuit breaker refused it); not
	// counted.
	Canceled
)

// ResultOf maps the kind of a failed upstream attempt to the Result to
// report, as Envoy's router does: overflows, a vanished downstream and
// anything not about the host are Canceled.
func ResultOf(k status.Kind) Result {
	switch k {
	case status.ConnectFailure:
		return ConnectFailed
	case status.UpstreamReset, status.RefusedStream, status.ConnectionTermination:
		return Reset
	case status.Timeout:
		return Timeout
	}
	return Canceled
}

// Status is the Result of a response with HTTP status code (100-999).
func Status(code int) Result { return Result(uint32(code) & 0xffff) }

// Code returns the HTTP status of a Status result.
func (r Result) Code() (int, bool) {
	if r < 1<<16 {
		return int(r), true
	}
	return 0, false
}

// String names the result.
func (r Result) String() string {
	switch r {
	case ConnectFailed:
		return "connect failure"
	case Reset:
		return "reset"
	case Timeout:
		return "timeout"
	case Connected:
		return "connected"
	case Canceled:
		return "canceled"
	}
	if c, ok := r.Code(); ok {
		return "status " + strconv.Itoa(c)
	}
	return "Result(" + strconv.FormatUint(uint64(r), 10) + ")"
}
