//go:build !linux

package park

import (
	"errors"
	"net"
	"time"
)

// Parker is not available on this system: New returns
// errors.ErrUnsupported, and callers wait for input as they would without
// one.
type Parker struct{}

// New returns errors.ErrUnsupported.
func New() (*Parker, error) { return nil, errors.ErrUnsupported }

// Park returns errors.ErrUnsupported and leaves c to the caller.
func (p *Parker) Park(c net.Conn, deadline time.Time, owner Owner) error {
	return errors.ErrUnsupported
}

// Len returns 0.
func (p *Parker) Len() int { return 0 }

// Close does nothing.
func (p *Parker) Close() {}
