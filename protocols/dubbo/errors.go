package dubbo

import (
	"errors"
	"strconv"
)

// Causes of a *FrameError, for errors.Is. A truncated frame has cause
// io.ErrUnexpectedEOF.
var (
	// ErrBadMagic: the bytes where a frame starts are not Dubbo's. The
	// connection must be closed: there is no telling where a frame starts.
	ErrBadMagic = errors.New("bad magic number")
	// ErrTooLarge: the body is over the limit. The header is known: a
	// request can be answered with StatusBadRequest. The Reader skips the
	// body on the next call to Next (FrameError.Discard bytes); closing the
	// connection instead saves reading them.
	ErrTooLarge = errors.New("body over the size limit")
)

var errShortHeader = errors.New("dubbo: a header needs 16 bytes")

// FrameError is a frame the Reader could not read.
type FrameError struct {
	// Err is the cause: ErrBadMagic, ErrTooLarge or io.ErrUnexpectedEOF.
	Err error
	// Header is the frame's header when HasHeader is set (a body too large
	// or truncated), so that a request's id is known.
	Header    Header
	HasHeader bool
	// Offset is where the frame starts in the connection's bytes.
	Offset int64
	// Discard is how many body bytes the Reader skips before the next
	// frame (ErrTooLarge only).
	Discard int
	// Detail says more where there is more to say.
	Detail string
}

// Error returns "dubbo: frame at byte <offset>: <cause>" and details.
func (e *FrameError) Error() string {
	s := "dubbo: frame at byte " + strconv.FormatInt(e.Offset, 10) + ": " + e.Err.Error()
	if e.HasHeader {
		s += " (request id " + strconv.FormatUint(e.Header.ID, 10) + ", body " + strconv.Itoa(e.Header.BodyLen) + " bytes)"
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap returns the cause.
func (e *FrameError) Unwrap() error { return e.Err }

// BodyError is a body the decoders refuse: malformed, over a limit, or
// ambiguous. A request refused so is answered with StatusBadRequest, a
// response with StatusBadResponse; neither is forwarded.
type BodyError struct {
	// Part names what was being read ("request attachments"...).
	Part string
	// Reason says what was wrong when Err is nil.
	Reason string
	// Err is the hessian2 error, if one.
	Err error
}

// Error returns "dubbo: <part>: <reason or cause>".
func (e *BodyError) Error() string {
	if e.Err != nil {
		return "dubbo: " + e.Part + ": " + e.Err.Error()
	}
	return "dubbo: " + e.Part + ": " + e.Reason
}

// Unwrap returns the hessian2 error, if one.
func (e *BodyError) Unwrap() error { return e.Err }

func bodyErr(part string, err error) error { return &BodyError{Part: part, Err: err} }

func bodyReason(part, reason string) error { return &BodyError{Part: part, Reason: reason} }
