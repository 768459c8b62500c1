package xds

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ResourceError is the failure to decode or validate one resource. It names
// the resource so that an xDS client can NACK exactly that one; Err carries the
// field path inside the resource when there is one.
type ResourceError struct {
	Kind string // "listener", "cluster" or "cluster_load_assignment"
	Name string // the resource's name as given, possibly empty
	Err  error
}

// Error renders `kind "name": path: reason`.
func (e *ResourceError) Error() string {
	return e.Kind + " " + strconv.Quote(e.Name) + ": " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *ResourceError) Unwrap() error { return e.Err }

// errNotSupported is the reason given for a populated field that the waypoint
// does not implement.
var errNotSupported = errors.New("not supported yet")

// fieldError is an error at a field path relative to some message, such as
// "filter_chains[2].filters[0]".
type fieldError struct {
	path string
	err  error
}

func (e *fieldError) Error() string { return e.path + ": " + e.err.Error() }
func (e *fieldError) Unwrap() error { return e.err }

// at places err under the field path segment seg. A nil err stays nil.
func at(seg string, err error) error {
	if err == nil {
		return nil
	}
	if fe, ok := err.(*fieldError); ok {
		return &fieldError{path: joinPath(seg, fe.path), err: fe.err}
	}
	return &fieldError{path: seg, err: err}
}

// errAt is a new error at the field path seg.
func errAt(seg, format string, args ...any) error {
	return &fieldError{path: seg, err: fmt.Errorf(format, args...)}
}

func joinPath(a, b string) string {
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

// idx names element i of the repeated field name: "filters[0]".
func idx(name string, i int) string { return name + "[" + strconv.Itoa(i) + "]" }

// key names the entry k of the map field name: `map["9080"]`.
func key(name, k string) string { return name + "[" + strconv.Quote(k) + "]" }
