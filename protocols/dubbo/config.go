package dubbo

import "github.com/gowaypoint/waypoint/protocols/dubbo/hessian2"

// Defaults, chosen as Dubbo's and Envoy's.
const (
	// DefaultMaxBodyBytes is Dubbo's default payload limit (8 MiB), which
	// Envoy's dubbo_proxy applies too.
	DefaultMaxBodyBytes = 8 << 20
	// DefaultMaxAttachments bounds the entries of an attachments map, as
	// Envoy's max_headers_count bounds a header section.
	DefaultMaxAttachments = 100
	// DefaultMaxInFlight is the bound this package suggests for requests
	// in flight on one downstream connection (Dubbo itself has none; its
	// providers answer 100, threadpool exhausted, past 200 threads). The
	// connection manager enforces it: past it, it answers
	// StatusServerThreadpoolExhausted.
	DefaultMaxInFlight = 1024
	// DefaultReadBufferSize is the Reader's read buffer.
	DefaultReadBufferSize = 16 << 10
	// minReadBufferSize is the smallest read buffer accepted.
	minReadBufferSize = 512
)

// Limits bound what the body decoders accept. Zero fields take the
// defaults.
type Limits struct {
	// MaxAttachments bounds the entries of an attachments map; default
	// 100. Over it the body is refused.
	MaxAttachments int
	// Hessian bounds nesting and class definitions of a body.
	Hessian hessian2.Limits
}

func (l Limits) withDefaults() Limits {
	if l.MaxAttachments <= 0 {
		l.MaxAttachments = DefaultMaxAttachments
	}
	return l
}

// ReaderConfig configures a Reader. The zero value takes every default.
type ReaderConfig struct {
	// MaxBodyBytes bounds a frame's body; default 8 MiB. It is checked
	// against the header before the body is read.
	MaxBodyBytes int
	// ReadBufferSize is the read buffer's size; default 16 KiB, at least
	// 512 bytes. Frames larger than it are read straight into their own
	// buffer.
	ReadBufferSize int
}

func (c ReaderConfig) withDefaults() ReaderConfig {
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.ReadBufferSize <= 0 {
		c.ReadBufferSize = DefaultReadBufferSize
	}
	c.ReadBufferSize = max(c.ReadBufferSize, minReadBufferSize)
	return c
}
