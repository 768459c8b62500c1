package pbcheck

import (
	"fmt"
	"strconv"
	"strings"
)

// FieldError is an error at a field path relative to some message, such as
// "filter_chains[2].filters[0]".
type FieldError struct {
	Path string
	Err  error
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *FieldError) Unwrap() error { return e.Err }

// At places err under the field path segment seg. A nil err stays nil.
func At(seg string, err error) error {
	if err == nil {
		return nil
	}
	if fe, ok := err.(*FieldError); ok {
		return &FieldError{Path: JoinPath(seg, fe.Path), Err: fe.Err}
	}
	return &FieldError{Path: seg, Err: err}
}

// ErrAt is a new error at the field path seg.
func ErrAt(seg, format string, args ...any) error {
	return &FieldError{Path: seg, Err: fmt.Errorf(format, args...)}
}

// JoinPath joins two field paths.
func JoinPath(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	case strings.HasPrefix(b, "["):
		return a + b
	default:
		return a + "." + b
	}
}

// Idx names element i of the repeated field name: "filters[0]".
func Idx(name string, i int) string { return name + "[" + strconv.Itoa(i) + "]" }

// Key names the entry k of the map field name: `map["9080"]`.
func Key(name, k string) string { return name + "[" + strconv.Quote(k) + "]" }
