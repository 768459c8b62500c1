package http2

import (
	"errors"
	"strconv"

	xhttp2 "golang.org/x/net/http2"
)

// ErrCode is an HTTP/2 error code (RFC 9113 §7), x/net's type re-exported
// so that callers need not import x/net.
type ErrCode = xhttp2.ErrCode

// Error codes.
const (
	ErrCodeNo                 = xhttp2.ErrCodeNo
	ErrCodeProtocol           = xhttp2.ErrCodeProtocol
	ErrCodeInternal           = xhttp2.ErrCodeInternal
	ErrCodeFlowControl        = xhttp2.ErrCodeFlowControl
	ErrCodeSettingsTimeout    = xhttp2.ErrCodeSettingsTimeout
	ErrCodeStreamClosed       = xhttp2.ErrCodeStreamClosed
	ErrCodeFrameSize          = xhttp2.ErrCodeFrameSize
	ErrCodeRefusedStream      = xhttp2.ErrCodeRefusedStream
	ErrCodeCancel             = xhttp2.ErrCodeCancel
	ErrCodeCompression        = xhttp2.ErrCodeCompression
	ErrCodeConnect            = xhttp2.ErrCodeConnect
	ErrCodeEnhanceYourCalm    = xhttp2.ErrCodeEnhanceYourCalm
	ErrCodeInadequateSecurity = xhttp2.ErrCodeInadequateSecurity
	ErrCodeHTTP11Required     = xhttp2.ErrCodeHTTP11Required
)

var (
	// ErrClosed is returned for work on a connection that has ended
	// without a more specific error (closed by us, or EOF from the peer).
	ErrClosed = errors.New("http2: connection closed")
	// ErrStreamDone is returned by writes after the stream's sending side
	// was ended (END_STREAM sent) and by reads after Close.
	ErrStreamDone = errors.New("http2: stream already ended")
	// ErrHeadersSent is returned by WriteHeaders called twice on a stream.
	ErrHeadersSent = errors.New("http2: response headers already written")
	// ErrHeadersNotSent is returned by Write, WriteTrailers and CloseWrite
	// before WriteHeaders.
	ErrHeadersNotSent = errors.New("http2: response headers not written yet")
)

// StreamError is a stream ended by RST_STREAM, sent or received.
type StreamError struct {
	StreamID uint32
	Code     ErrCode
	// Remote is true when the peer sent the RST_STREAM.
	Remote bool
	// Reason says what went wrong when we reset the stream; empty for a
	// remote reset.
	Reason string
}

func (e *StreamError) Error() string {
	s := "http2: stream " + strconv.FormatUint(uint64(e.StreamID), 10)
	if e.Remote {
		s += " reset by peer: " + e.Code.String()
	} else {
		s += " reset: " + e.Code.String()
	}
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// ConnError is a connection ended by a GOAWAY with an error, sent or
// received, or by a broken transport.
type ConnError struct {
	Code ErrCode
	// Remote is true when the peer sent the GOAWAY.
	Remote bool
	// Reason says what went wrong; for a remote GOAWAY, its debug data.
	Reason string
	// Defence is the flood or abuse limit that closed the connection
	// (a server's or client's own decision); DefenceNone otherwise.
	Defence Defence
}

// TransportError fails the streams of a client connection whose transport
// broke: a read from it failed with Err (not a clean end, which is
// ErrClosed). The connection ended under the streams; it was not one of
// them that was reset, even when Err is itself a *StreamError (the
// transport an HTTP/2 stream, as an HBONE tunnel is).
type TransportError struct{ Err error }

func (e *TransportError) Error() string { return "http2: connection lost: " + e.Err.Error() }

// Unwrap returns the transport's error.
func (e *TransportError) Unwrap() error { return e.Err }

// Defence names a limit of the engine that closes a connection when a
// peer passes it (see "Limits and defences" in the package doc). Its
// String is the name of the counter Envoy keeps for the same limit, or
// the waypoint's own name where Envoy has none.
type Defence uint8

// The defences. The zero value is none.
const (
	DefenceNone Defence = iota
	// DefenceEmptyFrames: consecutive DATA, HEADERS or CONTINUATION frames
	// with an empty payload (MaxConsecutiveEmptyFrames).
	DefenceEmptyFrames
	// DefencePriorityFlood: PRIORITY frames past MaxPriorityFramesPerStream.
	DefencePriorityFlood
	// DefenceWindowUpdateFlood: WINDOW_UPDATE frames past their bound.
	DefenceWindowUpdateFlood
	// DefenceHeaderOverflow: a header block past twice MaxHeaderListSize
	// or its frame bound (the CONTINUATION flood).
	DefenceHeaderOverflow
	// DefenceOutboundFlood: more frames queued for the peer than
	// MaxOutboundFrames (a peer that does not read).
	DefenceOutboundFlood
	// DefenceOutboundControlFlood: more PING and SETTINGS answers and
	// RST_STREAM queued than MaxOutboundControlFrames (PING or SETTINGS
	// flood).
	DefenceOutboundControlFlood
	// DefencePrematureResets: too many streams reset by the client before
	// a response (rapid reset, CVE-2023-44487).
	DefencePrematureResets
	// DefencePendingStreams: more than 4 × MaxConcurrentStreams streams
	// waiting for a handler.
	DefencePendingStreams
	// DefenceKeepAliveTimeout: a keep-alive PING went unanswered.
	DefenceKeepAliveTimeout
	// DefenceRefusedStreams: the handler closed the connection because
	// its streams kept being refused (ServerStream.CloseConn).
	DefenceRefusedStreams
	numDefences
)

// NumDefences is one more than the highest Defence, for tables indexed by
// Defence.
const NumDefences = int(numDefences)

var defenceNames = [numDefences]string{
	DefenceNone:                 "none",
	DefenceEmptyFrames:          "inbound_empty_frames_flood",
	DefencePriorityFlood:        "inbound_priority_frames_flood",
	DefenceWindowUpdateFlood:    "inbound_window_update_frames_flood",
	DefenceHeaderOverflow:       "header_overflow",
	DefenceOutboundFlood:        "outbound_flood",
	DefenceOutboundControlFlood: "outbound_control_flood",
	DefencePrematureResets:      "downstream_rq_too_many_premature_resets",
	DefencePendingStreams:       "too_many_pending_streams",
	DefenceKeepAliveTimeout:     "keepalive_timeout",
	DefenceRefusedStreams:       "too_many_refused_streams",
}

// String is the defence's counter name (Envoy's http2.* codec stat, or
// http.*.downstream_rq_too_many_premature_resets for rapid reset; the
// waypoint's own for too_many_pending_streams and too_many_refused_streams).
func (d Defence) String() string {
	if d < numDefences {
		return defenceNames[d]
	}
	return "defence(" + strconv.Itoa(int(d)) + ")"
}

// DefenceOf returns the defence that ended a connection with err (as
// ServeConn returns it), DefenceNone when err is not a defence's.
func DefenceOf(err error) Defence {
	var ce *ConnError
	if errors.As(err, &ce) && !ce.Remote {
		return ce.Defence
	}
	return DefenceNone
}

func (e *ConnError) Error() string {
	s := "http2: connection error: " + e.Code.String()
	if e.Remote {
		s = "http2: connection closed by peer: " + e.Code.String()
	}
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// GoAwayError fails a client stream that the server will not process
// because of its GOAWAY: the stream id is above LastStreamID (or the stream
// was never sent). Such a request is safe to retry on another connection.
type GoAwayError struct {
	LastStreamID uint32
	Code         ErrCode
	Debug        string
}

func (e *GoAwayError) Error() string {
	s := "http2: stream not processed: server sent GOAWAY (last stream " +
		strconv.FormatUint(uint64(e.LastStreamID), 10) + ", " + e.Code.String() + ")"
	if e.Debug != "" {
		s += ": " + e.Debug
	}
	return s
}

// IsUnprocessed reports whether err says the peer did not process the
// request at all (REFUSED_STREAM, or a stream above a GOAWAY's last
// stream id), so that it may be retried even if it is not idempotent.
func IsUnprocessed(err error) bool {
	var se *StreamError
	if errors.As(err, &se) {
		return se.Remote && se.Code == ErrCodeRefusedStream
	}
	var ge *GoAwayError
	return errors.As(err, &ge)
}

// connErr is a connection error found while reading: GOAWAY with code.
type connErr struct {
	code   ErrCode
	reason string
	def    Defence // the limit that tripped; DefenceNone for a protocol error
}

func (e connErr) Error() string {
	return "http2: connection error " + e.code.String() + ": " + e.reason
}

// streamErr is a stream error found while reading: RST_STREAM with code.
type streamErr struct {
	id     uint32
	code   ErrCode
	reason string
}

func (e streamErr) Error() string {
	return "http2: stream " + strconv.FormatUint(uint64(e.id), 10) + " error " + e.code.String() + ": " + e.reason
}
