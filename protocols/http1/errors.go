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

var (
	errNotReusable    = errors.New("http1: connection is not reusable (closed, hijacked or broken)")
	errResponseOwed   = errors.New("http1: ReadRequest before the previous response was written")
	errResponseUnread = errors.New("http1: ReadResponse before the previous response body was read to its end")
	errRequestUnsent  = errors.New("http1: ReadResponse before WriteRequest")
	errNoProgress     = errors.New("http1: stream returned no data and no error repeatedly")
	errWouldBlock     = errors.New("http1: more input needed") // internal, never returned
)

func itoa(n int) string { return strconv.Itoa(n) }
