package xds

import (
	"strconv"

	"github.com/gowaypoint/waypoint/internal/pbcheck"
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

// The field-path helpers are pbcheck's, shared with the filters' decoders.
var (
	errNotSupported = pbcheck.ErrNotSupported
	at              = pbcheck.At
	errAt           = pbcheck.ErrAt
	joinPath        = pbcheck.JoinPath
	idx             = pbcheck.Idx
	key             = pbcheck.Key
)

type fieldError = pbcheck.FieldError
