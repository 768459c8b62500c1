package hessian2

import (
	"errors"
	"strconv"
)

// Causes of an *Error, for errors.Is.
var (
	// ErrTruncated: the input ends inside a value.
	ErrTruncated = errors.New("input ends inside a value")
	// ErrSyntax: a byte that cannot be there (an unknown tag, a string
	// chunk where one must follow, a byte that cannot start a character,
	// a negative length, an undefined class).
	ErrSyntax = errors.New("malformed value")
	// ErrType: the value is well formed but not of the kind asked for.
	ErrType = errors.New("unexpected kind of value")
	// ErrDepth: lists, maps and objects nested deeper than the limit.
	ErrDepth = errors.New("values nested too deep")
	// ErrLimit: more class definitions than the limit.
	ErrLimit = errors.New("too many class definitions")
)

// Error is a value the Reader could not read: what it was reading, at
// which offset of the input, and why (one of the Err variables, which
// errors.Is matches).
type Error struct {
	// Offset is where, in the input given to Reset, the offending byte
	// (or the end of input) is.
	Offset int
	// What names what was being read ("string", "class definition"...).
	What string
	// Err is the cause.
	Err error
	// Tag is the offending byte when Err is ErrSyntax or ErrType.
	Tag byte
}

// Error returns "hessian2: <what> at offset <n>: <cause>".
func (e *Error) Error() string {
	s := "hessian2: " + e.What + " at offset " + strconv.Itoa(e.Offset) + ": " + e.Err.Error()
	if e.Err == ErrSyntax || e.Err == ErrType {
		s += " (byte 0x" + strconv.FormatUint(uint64(e.Tag), 16) + ")"
	}
	return s
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

func (r *Reader) fail(off int, what string, cause error) error {
	e := &Error{Offset: off, What: what, Err: cause}
	if off < len(r.buf) {
		e.Tag = r.buf[off]
	}
	return e
}
