package http2

import (
	"fmt"
	"time"
)

// Config holds the limits and timers of one connection, server or client.
// The zero value of a field selects its default; a Config is read once when
// the connection starts and never changed by this package.
type Config struct {
	// MaxConcurrentStreams is the SETTINGS_MAX_CONCURRENT_STREAMS a server
	// advertises: more streams open at once are refused (REFUSED_STREAM).
	// Default 100 (Envoy's recommended edge value).
	MaxConcurrentStreams uint32
	// InitialStreamWindow is our receive window per stream: how much DATA
	// a peer may send on one stream before the reader consumes it, and so
	// the most a stream buffers. Default 64 KiB.
	InitialStreamWindow int32
	// InitialConnWindow is our connection receive window: the most DATA
	// buffered for all streams together. Default 1 MiB.
	InitialConnWindow int32
	// MaxFrameSize is the largest frame payload we accept
	// (SETTINGS_MAX_FRAME_SIZE). Default and minimum 16 KiB.
	MaxFrameSize uint32
	// MaxHeaderListSize bounds a decoded header block, counted as RFC 7541
	// does (name + value + 32 per field); advertised as
	// SETTINGS_MAX_HEADER_LIST_SIZE. Default 60 KiB (Envoy's
	// max_request_headers_kb).
	MaxHeaderListSize uint32
	// MaxHeaderCount bounds the fields of one header block. Default 100
	// (Envoy's max_headers_count).
	MaxHeaderCount int

	// IdleTimeout closes (GOAWAY, then close) a connection that has had no
	// open stream for this long. Zero means never.
	IdleTimeout time.Duration
	// KeepAliveInterval sends a PING when nothing was received for this
	// long; KeepAliveTimeout closes the connection when nothing (not only
	// the PING ack) arrives within this long after the PING. Zero turns
	// keep-alive off; KeepAliveTimeout defaults to 20 s when the interval
	// is set.
	KeepAliveInterval, KeepAliveTimeout time.Duration
	// HandshakeTimeout bounds the wait for the peer's preface and first
	// SETTINGS frame. Default 10 s.
	HandshakeTimeout time.Duration
	// DrainTimeout bounds a graceful shutdown: once the server's context
	// is cancelled (or ClientConn.Shutdown is called) streams in flight get
	// this long to finish, then the connection is closed. Default 30 s.
	// After a ShutdownNotice it counts from the final GOAWAY.
	DrainTimeout time.Duration
	// ShutdownNotice, when positive, makes a server's graceful shutdown
	// whose context ended with ErrShutdownNotice as its cause
	// (context.WithCancelCause) begin with RFC 9113's notice: GOAWAY with
	// the last stream id 2^31-1, new streams still accepted for this long,
	// then the final GOAWAY with the last stream id processed (Envoy's
	// HCM drain_timeout). Any other end of the context sends the final
	// GOAWAY at once. Zero: never a notice.
	ShutdownNotice time.Duration
	// RequestHeadersTimeout bounds a request header block that comes in
	// more than one frame (HEADERS, then CONTINUATION): when it is not
	// complete this long after its HEADERS frame, its stream is answered
	// 408 with RST_STREAM(NO_ERROR), as Envoy answers a stream whose
	// request_headers_timeout passed, and the block is decoded (HPACK
	// stays in step) and dropped when it completes. OnRequestHeadersTimeout,
	// when set, is called each time, on a timer's goroutine; it must not
	// block. One timer per connection, armed only while a block is
	// incomplete. Zero: none. Servers only.
	RequestHeadersTimeout   time.Duration
	OnRequestHeadersTimeout func()

	// MaxOutboundFrames bounds the frames queued for writing and not yet
	// handed to the connection: exceeding it closes the connection. Stream
	// goroutines write their own HEADERS and DATA and block while the peer
	// does not read, so in practice the queue holds what the read loop
	// answers on its own (acks, resets, window updates). Default 10000
	// (Envoy's max_outbound_frames).
	MaxOutboundFrames int
	// MaxOutboundControlFrames bounds queued PING and SETTINGS acks and
	// RST_STREAM frames: a peer that sends them faster than it reads the
	// answers has the connection closed. Default 1000 (Envoy's
	// max_outbound_control_frames).
	MaxOutboundControlFrames int
	// MaxConsecutiveEmptyFrames bounds consecutive inbound HEADERS,
	// CONTINUATION and DATA frames with an empty payload and no
	// END_STREAM. Default 1 (Envoy's
	// max_consecutive_inbound_frames_with_empty_payload).
	MaxConsecutiveEmptyFrames int
	// MaxPriorityFramesPerStream: the connection is closed when the
	// PRIORITY frames received exceed this times (1 + streams opened).
	// Default 100 (Envoy's max_inbound_priority_frames_per_stream).
	MaxPriorityFramesPerStream int
	// MaxWindowUpdatesPerDataFrame: the connection is closed when the
	// WINDOW_UPDATE frames received exceed 5 + 2 * (streams opened + this
	// times DATA frames sent). Default 10 (Envoy's
	// max_inbound_window_update_frames_per_data_frame_sent).
	MaxWindowUpdatesPerDataFrame int

	// PrematureResetStreamCount and PrematureResetMinLifetime are the
	// rapid-reset (CVE-2023-44487) defence, as Envoy's runtime keys
	// overload.premature_reset_total_stream_count and
	// overload.premature_reset_min_stream_lifetime_seconds: a stream the
	// peer resets before we sent response headers and within
	// PrematureResetMinLifetime of its start is premature; once at least
	// half of PrematureResetStreamCount streams, or later half of all
	// closed streams, were premature, the server sends GOAWAY
	// (ENHANCE_YOUR_CALM) and closes. Defaults 500 and 1 s. Servers only.
	PrematureResetStreamCount int
	PrematureResetMinLifetime time.Duration
}

// Defaults, as documented on Config.
const (
	DefaultMaxConcurrentStreams         = 100
	DefaultInitialStreamWindow          = 64 << 10
	DefaultInitialConnWindow            = 1 << 20
	DefaultMaxFrameSize                 = 16 << 10
	DefaultMaxHeaderListSize            = 60 << 10
	DefaultMaxHeaderCount               = 100
	DefaultKeepAliveTimeout             = 20 * time.Second
	DefaultHandshakeTimeout             = 10 * time.Second
	DefaultDrainTimeout                 = 30 * time.Second
	DefaultMaxOutboundFrames            = 10000
	DefaultMaxOutboundControlFrames     = 1000
	DefaultMaxConsecutiveEmptyFrames    = 1
	DefaultMaxPriorityFramesPerStream   = 100
	DefaultMaxWindowUpdatesPerDataFrame = 10
	DefaultPrematureResetStreamCount    = 500
	DefaultPrematureResetMinLifetime    = time.Second
)

const (
	minMaxFrameSize = 1 << 14
	// frameHeaderLen is the size of every frame's header.
	frameHeaderLen  = 9
	maxMaxFrameSize = 1<<24 - 1
	maxWindow       = 1<<31 - 1
	// initialWindow is RFC 9113's window before SETTINGS say otherwise.
	initialWindow = 65535
	// writeBufferSize bounds the one buffered writer in front of the
	// connection (outBuf): a flush is one write to the transport, which
	// under TLS is one record per 16 KiB.
	writeBufferSize = 64 << 10
	// maxDataFrame is the largest DATA frame we send: with its 9-byte
	// header it fills one TLS record (16 KiB of plaintext) exactly, so that
	// bulk data goes out one full record per write instead of a full
	// record and a 9-byte one.
	maxDataFrame = 16<<10 - frameHeaderLen
	// DATA frames of largeDataMin to largeDataMax bytes are read straight
	// into receive-buffer chunks (each then at least half full, so the
	// chunks a window holds stay within twice its size); smaller ones are
	// packed into chunks, larger ones go through the Framer.
	largeDataMin = 8 << 10
	largeDataMax = 64 << 10
	// readBufferSize is the buffered reader the Framer reads from.
	readBufferSize = 16 << 10
	// maxIdleHandlers is how many handler goroutines a server connection
	// keeps waiting for its next stream, each for at most
	// handlerIdleTimeout.
	maxIdleHandlers    = 4
	handlerIdleTimeout = 10 * time.Second
	// goAwayTimeout bounds the wait for a final GOAWAY to be written to a
	// peer that may not be reading.
	goAwayTimeout = time.Second
	// pendingHandlersPerStream: a server queues new streams whose handler
	// cannot start yet (handlers of reset streams still running) up to
	// this times MaxConcurrentStreams, then closes the connection.
	pendingHandlersPerStream = 4
)

// withDefaults returns cfg with every zero field set to its default, or an
// error naming the first invalid field.
func (cfg Config) withDefaults() (Config, error) {
	c := cfg
	if c.MaxConcurrentStreams == 0 {
		c.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	if c.InitialStreamWindow == 0 {
		c.InitialStreamWindow = DefaultInitialStreamWindow
	}
	if c.InitialConnWindow == 0 {
		c.InitialConnWindow = DefaultInitialConnWindow
	}
	if c.MaxFrameSize == 0 {
		c.MaxFrameSize = DefaultMaxFrameSize
	}
	if c.MaxHeaderListSize == 0 {
		c.MaxHeaderListSize = DefaultMaxHeaderListSize
	}
	if c.MaxHeaderCount == 0 {
		c.MaxHeaderCount = DefaultMaxHeaderCount
	}
	if c.KeepAliveInterval > 0 && c.KeepAliveTimeout == 0 {
		c.KeepAliveTimeout = DefaultKeepAliveTimeout
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.MaxOutboundFrames == 0 {
		c.MaxOutboundFrames = DefaultMaxOutboundFrames
	}
	if c.MaxOutboundControlFrames == 0 {
		c.MaxOutboundControlFrames = DefaultMaxOutboundControlFrames
	}
	if c.MaxConsecutiveEmptyFrames == 0 {
		c.MaxConsecutiveEmptyFrames = DefaultMaxConsecutiveEmptyFrames
	}
	if c.MaxPriorityFramesPerStream == 0 {
		c.MaxPriorityFramesPerStream = DefaultMaxPriorityFramesPerStream
	}
	if c.MaxWindowUpdatesPerDataFrame == 0 {
		c.MaxWindowUpdatesPerDataFrame = DefaultMaxWindowUpdatesPerDataFrame
	}
	if c.PrematureResetStreamCount == 0 {
		c.PrematureResetStreamCount = DefaultPrematureResetStreamCount
	}
	if c.PrematureResetMinLifetime == 0 {
		c.PrematureResetMinLifetime = DefaultPrematureResetMinLifetime
	}
	switch {
	case c.InitialStreamWindow < 0:
		return c, fmt.Errorf("http2: config: InitialStreamWindow %d is negative", c.InitialStreamWindow)
	case c.InitialConnWindow < initialWindow:
		return c, fmt.Errorf("http2: config: InitialConnWindow %d is below the protocol's 65535", c.InitialConnWindow)
	case c.MaxFrameSize < minMaxFrameSize || c.MaxFrameSize > maxMaxFrameSize:
		return c, fmt.Errorf("http2: config: MaxFrameSize %d is outside [16384, 16777215]", c.MaxFrameSize)
	case c.MaxHeaderCount < 0, c.MaxOutboundFrames < 0, c.MaxOutboundControlFrames < 0,
		c.MaxConsecutiveEmptyFrames < 0, c.MaxPriorityFramesPerStream < 0,
		c.MaxWindowUpdatesPerDataFrame < 0, c.PrematureResetStreamCount < 0:
		return c, fmt.Errorf("http2: config: negative limit in %+v", cfg)
	case c.IdleTimeout < 0, c.KeepAliveInterval < 0, c.KeepAliveTimeout < 0,
		c.HandshakeTimeout < 0, c.DrainTimeout < 0, c.PrematureResetMinLifetime < 0,
		c.ShutdownNotice < 0, c.RequestHeadersTimeout < 0:
		return c, fmt.Errorf("http2: config: negative duration in %+v", cfg)
	}
	return c, nil
}
