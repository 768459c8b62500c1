package http1

import "time"

// Defaults, chosen as Envoy's.
const (
	// DefaultMaxHeaderBytes is Envoy's max_request_headers_kb (60 KiB).
	DefaultMaxHeaderBytes = 60 << 10
	// DefaultMaxHeaders is Envoy's max_headers_count.
	DefaultMaxHeaders = 100
	// DefaultBufferSize is the default size of the read and write buffers.
	DefaultBufferSize = 16 << 10
	// DefaultIdleTimeout is Envoy's HTTP connection manager idle_timeout.
	DefaultIdleTimeout = time.Hour
)

// Fixed limits that no configuration needs to change.
const (
	// maxChunkLine bounds a chunk-size line with its extensions.
	maxChunkLine = 1024
	// maxLeadingCRLF is how many empty lines may precede a request line
	// (RFC 9112 section 2.2 asks servers to ignore at least one).
	maxLeadingCRLF = 4
	// maxInterim bounds the 1xx responses skipped before a final one.
	maxInterim = 10
	// maxNominated bounds the field names a Connection header may list.
	maxNominated = 16
	// minRoom is the least free space a read asks for, so that a buffer
	// mostly held by a message head is not read into a few bytes at a time.
	minRoom = 4 << 10
	// minBuffer is the smallest read or write buffer accepted.
	minBuffer = 512
)

// Limits bound what a peer may send in one message head. Zero fields take
// the defaults.
type Limits struct {
	// MaxHeaderBytes bounds the start line plus the header section, and
	// separately a trailer section; default 60 KiB. Over it: 431 (414 when
	// the request line alone is over it).
	MaxHeaderBytes int
	// MaxHeaders bounds the fields of a header or trailer section;
	// default 100. Over it: 431.
	MaxHeaders int
}

func (l Limits) withDefaults() Limits {
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if l.MaxHeaders <= 0 {
		l.MaxHeaders = DefaultMaxHeaders
	}
	return l
}

// ServerConfig configures a ServerConn. The zero value takes every default.
type ServerConfig struct {
	Limits Limits
	// ReadBufferSize is the read buffer's size; default 16 KiB. It grows
	// up to MaxHeaderBytes to hold one header section.
	ReadBufferSize int
	// WriteBufferSize is the write buffer's size; default 16 KiB.
	WriteBufferSize int
	// IdleTimeout bounds how long ReadRequest waits for a complete
	// request head; default 1 h, negative for none. It is applied with
	// SetReadDeadline only when the stream has that method and only while
	// ReadRequest blocks; the read deadline is cleared when it returns.
	IdleTimeout time.Duration
	// HeadStarted, when set, is called on the goroutine of ReadRequest
	// when the first bytes of a request head have arrived and the rest
	// must be waited for (never for a head that arrives whole): the
	// connection manager starts its request_headers_timeout there.
	HeadStarted func()
}

// ClientConfig configures a ClientConn. The zero value takes every default.
// ClientConn applies no timeout: the router owns upstream timeouts.
type ClientConfig struct {
	Limits Limits
	// ReadBufferSize is the read buffer's size; default 16 KiB. It grows
	// up to MaxHeaderBytes to hold one header section.
	ReadBufferSize int
	// WriteBufferSize is the write buffer's size; default 16 KiB.
	WriteBufferSize int
}

func bufferSize(n int) int {
	if n <= 0 {
		return DefaultBufferSize
	}
	return max(n, minBuffer)
}
