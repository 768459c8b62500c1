package http1

import (
	"errors"
	"strconv"
)

// Error is a message the codec refuses: malformed, ambiguous, over a
// limit or unsupported. Status is the HTTP status to answer with: from
// ReadRequest the downstream's fault (400, 414, 431, 501, 505); from
// ReadResponse, a response body, or WriteResponse the upstream's (502);
// from WriteRequest 400, a request HTTP/1.1 cannot carry. Reason says what
// was wrong and where; it is meant for logs, not for the peer. After an
// Error from reading, the connection must be closed.
type Error struct {
	Status int
	Reason string
}

// Error returns "http1: " followed by the status and the reason.
func (e *Error) Error() string {
	return "http1: " + strconv.Itoa(e.Status) + " " + e.Reason
}

func newError(status int, reason string) *Error {
	return &Error{Status: status, Reason: reason}
}

func badRequest(reason string) *Error { return newError(400, reason) }

// upstreamError turns a parse error of the shared code into a ClientConn
// error: the upstream sent something unusable, which is a 502 whatever
// the server-side status would have been.
func upstreamError(err error) error {
	if e, ok := errors.AsType[*Error](err); ok {
		return newError(502, "upstream "+e.Reason)
	}
	return err
}

// ConnError is a ClientConn's failure of the connection itself: writing
// the request on the stream failed, or reading the response head failed
// or met the end of the stream. It is neither a message the codec refused
// (*Error) nor a failure to read the request body being sent. The
// connection is broken and must be closed.
type ConnError struct {
	Op  string // "writing request" or "reading response head"
	Err error  // the stream's error; io.ErrUnexpectedEOF for its end
	// NoResponse says no byte of the response had been read: the server
	// may have closed the connection, idle, as the request went out.
	NoResponse bool
}

// Error returns "http1: " followed by the operation and the stream's error.
func (e *ConnError) Error() string { return "http1: " + e.Op + ": " + e.Err.Error() }

// Unwrap returns the stream's error.
func (e *ConnError) Unwrap() error { return e.Err }

var (
	errNotReusable    = errors.New("http1: connection is not reusable (closed, hijacked or broken)")
	errResponseOwed   = errors.New("http1: ReadRequest before the previous response was written")
	errResponseUnread = errors.New("http1: ReadResponse before the previous response body was read to its end")
	errRequestUnsent  = errors.New("http1: ReadResponse before WriteRequest")
	errNoProgress     = errors.New("http1: stream returned no data and no error repeatedly")
	errWouldBlock     = errors.New("http1: more input needed") // internal, never returned
)

func itoa(n int) string { return strconv.Itoa(n) }
