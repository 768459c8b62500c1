package http2

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	xhttp2 "golang.org/x/net/http2"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// conn is the engine shared by a server connection and a ClientConn: the
// read loop, the writer, flow control, stream bookkeeping and shutdown.
type conn struct {
	cfg    Config
	server bool
	rwc    io.ReadWriteCloser

	// Read side: owned by the read loop.
	br *bufio.Reader
	rd capReader // under br
	// direct says rwc hands out data it already holds in memory (a TLS
	// connection's decrypted record): large DATA payloads are then read
	// from it straight into chunks, not through br (one copy fewer). While
	// such frames arrive (bulk > 0, counting down the frames since the
	// last of them), rd caps br's reads at the frame being read, its
	// header and then its payload, so that br never takes in the next
	// large payload with them, whatever the frames' alignment to records.
	direct   bool
	bulk     int
	fr       *xhttp2.Framer
	hdec     headerDecoder
	blk      block
	emptyRun int
	priority int64
	// dataChunks holds the chunks readLargeData reads one frame into.
	dataChunks [largeDataMax/(16<<10) + 1]*[]byte
	winUpdate  int64
	readSeen   atomic.Bool

	w writer

	// dataSent counts DATA frames written (window-update flood limit).
	dataSent atomic.Int64

	closeOnce sync.Once

	mu       sync.Mutex
	flowCond sync.Cond // send windows grew, or a stream or the conn ended
	streams  map[uint32]*stream
	// Send side (the peer's settings and windows).
	connSendWin    int64
	peerInitWin    int64
	peerMaxFrame   uint32
	peerMaxStreams uint32
	// peerSettings is set once the peer's first SETTINGS arrived;
	// peerConnectExt says it allows extended CONNECT (RFC 8441).
	peerSettings   bool
	peerConnectExt bool
	// Receive side (our windows).
	connRecvAvail int64 // DATA the peer may still send on the connection
	connUnacked   int64 // consumed, not yet returned by WINDOW_UPDATE
	settingsAcked bool
	// maxPeerID is the highest stream id the peer opened (server).
	maxPeerID uint32
	opened    int64 // streams opened, for the flood limits
	// resetIDs remembers streams we reset lately: frames the peer sent
	// before it saw our RST_STREAM are ignored, not answered.
	resetIDs [32]uint32
	resetPos int
	// Shutdown state.
	goAwaySent bool
	draining   bool // graceful shutdown started: no new streams
	graceful   bool // the transport is closed on purpose: EOF is clean
	closed     bool // shutdown ran: no new goroutines, every stream aborted
	// closedBy is the defence that closed the connection from outside the
	// read loop (keep-alive, ServerStream.CloseConn), with its reason.
	closedBy     Defence
	closedReason string
	err          error
	lastIdle     time.Time
	idleTimer    *time.Timer
	kaTimer      *time.Timer
	kaPinged     bool
	drainTimer   *time.Timer
	// wg tracks the goroutines the conn owns: flushers, handlers (server),
	// request body writers (client). Add only under mu while !closed.
	wg sync.WaitGroup

	srv serverState
	cli clientState
}

// block is the header block being read (HEADERS then CONTINUATION).
type block struct {
	id        uint32
	endStream bool
	frames    int
	encoded   int
	// s is the stream the block belongs to (trailers, response), nil for
	// a new request or a discarded block; req is a new request.
	s   *stream
	req *l7.Request
	// errCode, when set, is a stream error to report once the block has
	// been decoded (HPACK state must stay in step first).
	errCode   ErrCode
	errReason string
	hasErr    bool
	// timed says RequestHeadersTimeout runs for the block (server).
	timed bool
}

func newConn(rwc io.ReadWriteCloser, cfg Config, server bool) *conn {
	c := &conn{cfg: cfg, server: server, rwc: rwc}
	c.rd.r = rwc
	c.br = bufio.NewReaderSize(&c.rd, readBufferSize)
	_, c.direct = rwc.(recordReader)
	c.fr = xhttp2.NewFramer(nil, c.br)
	c.fr.SetReuseFrames()
	c.fr.SetMaxReadFrameSize(cfg.MaxFrameSize)
	c.hdec.init(&c.cfg)
	c.w.init(rwc, &c.cfg, func(error) { c.closeTransport() })
	c.flowCond.L = &c.mu
	c.streams = make(map[uint32]*stream)
	c.connSendWin = initialWindow
	c.peerInitWin = initialWindow
	c.peerMaxFrame = minMaxFrameSize
	c.peerMaxStreams = DefaultMaxConcurrentStreams
	c.connRecvAvail = int64(cfg.InitialConnWindow)
	c.lastIdle = time.Now()
	return c
}

// closeTransport closes the underlying connection once; reads and writes
// blocked on it fail.
func (c *conn) closeTransport() {
	c.closeOnce.Do(func() { c.rwc.Close() })
}

// writeSettings writes the client preface (client), our SETTINGS and the
// connection window update, and flushes.
func (c *conn) writeSettings() error {
	if err := c.w.lock(); err != nil {
		c.w.unlock()
		return err
	}
	if !c.server {
		c.w.bw.WriteString(xhttp2.ClientPreface)
	}
	settings := []xhttp2.Setting{
		{ID: xhttp2.SettingInitialWindowSize, Val: uint32(c.cfg.InitialStreamWindow)},
		{ID: xhttp2.SettingMaxFrameSize, Val: c.cfg.MaxFrameSize},
		{ID: xhttp2.SettingMaxHeaderListSize, Val: c.cfg.MaxHeaderListSize},
	}
	if c.server {
		settings = append(settings,
			xhttp2.Setting{ID: xhttp2.SettingMaxConcurrentStreams, Val: c.cfg.MaxConcurrentStreams},
			xhttp2.Setting{ID: xhttp2.SettingEnableConnectProtocol, Val: 1})
	} else {
		settings = append(settings, xhttp2.Setting{ID: xhttp2.SettingEnablePush, Val: 0})
	}
	c.w.fr.WriteSettings(settings...)
	if inc := c.cfg.InitialConnWindow - initialWindow; inc > 0 {
		c.w.fr.WriteWindowUpdate(0, uint32(inc))
	}
	c.w.unlock()
	return c.w.writeErr()
}

// sendCtrl queues frames encoded by enc. async is for the read loop and
// timers, which must not block on the transport: a flusher goroutine then
// writes; otherwise the caller writes and flushes itself when the lock is
// free. A flood closes the connection.
func (c *conn) sendCtrl(class frameClass, n int, async bool, enc func(fr *xhttp2.Framer)) error {
	start, err := c.w.queue(class, n, enc)
	if err != nil {
		if err == errFlood || err == errCtrlFlood {
			c.closeTransport()
		}
		return err
	}
	if start {
		if !async || !c.goTracked(c.w.unlock) {
			c.w.unlock()
		}
	}
	return nil
}

// goTracked runs f on a goroutine the conn owns (waited for by wg). It
// returns false, without running f, once the conn has shut down.
func (c *conn) goTracked(f func()) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		f()
	}()
	return true
}

// readFrames is the read loop: it returns a connErr to answer with
// GOAWAY, errFlood, or the transport's error.
func (c *conn) readFrames() error {
	keepAlive := c.cfg.KeepAliveInterval > 0
	for {
		c.rd.max = 0
		if c.bulk > 0 {
			c.rd.max = frameHeaderLen
		}
		fh, err := c.fr.ReadFrameHeader()
		if err == nil && fh.Type == xhttp2.FrameData && fh.Length >= largeDataMin && fh.Length <= largeDataMax {
			if keepAlive {
				c.readSeen.Store(true)
			}
			if err := c.readLargeData(fh); err != nil {
				if se, ok := err.(streamErr); ok {
					if err := c.streamError(se); err != nil {
						return err
					}
					continue
				}
				return err
			}
			continue
		}
		var f xhttp2.Frame
		if err == nil {
			if c.bulk > 0 {
				c.bulk--
				c.rd.max = max(int(fh.Length), 1)
			}
			f, err = c.fr.ReadFrameForHeader(fh)
			c.rd.max = 0
		}
		if err != nil {
			var se xhttp2.StreamError
			var ce xhttp2.ConnectionError
			switch {
			case errors.As(err, &se) && fh.Type == xhttp2.FrameHeaders:
				// x/net's only stream error for HEADERS is padding at least
				// as long as the payload: a connection error (RFC 9113
				// §6.2), and the block, never decoded, would leave HPACK
				// out of step for its CONTINUATION frames (§4.3).
				return connErr{code: ErrCodeProtocol, reason: "HEADERS frame with padding longer than its payload"}
			case errors.As(err, &se):
				if err := c.streamError(streamErr{se.StreamID, se.Code, "invalid frame"}); err != nil {
					return err
				}
				continue
			case errors.As(err, &ce):
				reason := "invalid frame"
				if d := c.fr.ErrorDetail(); d != nil {
					reason = d.Error()
				}
				return connErr{code: ErrCode(ce), reason: reason}
			case errors.Is(err, xhttp2.ErrFrameTooLarge):
				return connErr{code: ErrCodeFrameSize, reason: "frame larger than our SETTINGS_MAX_FRAME_SIZE"}
			}
			return err
		}
		if keepAlive {
			c.readSeen.Store(true)
		}
		if err := c.processFrame(f); err != nil {
			if se, ok := err.(streamErr); ok {
				if err := c.streamError(se); err != nil {
					return err
				}
				continue
			}
			return err
		}
	}
}

func (c *conn) processFrame(f xhttp2.Frame) error {
	switch f := f.(type) {
	case *xhttp2.DataFrame:
		if err := c.trackEmpty(f.Length, f.StreamEnded()); err != nil {
			return err
		}
		return c.onData(f)
	case *xhttp2.HeadersFrame:
		if err := c.trackEmpty(f.Length, f.StreamEnded()); err != nil {
			return err
		}
		return c.onHeaders(f)
	case *xhttp2.ContinuationFrame:
		if err := c.trackEmpty(f.Length, false); err != nil {
			return err
		}
		return c.onContinuation(f)
	}
	c.emptyRun = 0
	switch f := f.(type) {
	case *xhttp2.SettingsFrame:
		return c.onSettings(f)
	case *xhttp2.PingFrame:
		return c.onPing(f)
	case *xhttp2.WindowUpdateFrame:
		return c.onWindowUpdate(f)
	case *xhttp2.RSTStreamFrame:
		return c.onRSTStream(f)
	case *xhttp2.GoAwayFrame:
		return c.onGoAway(f)
	case *xhttp2.PriorityFrame:
		return c.onPriority(f)
	case *xhttp2.PushPromiseFrame:
		return connErr{code: ErrCodeProtocol, reason: "PUSH_PROMISE received; push is disabled"}
	}
	return nil // unknown frame types are ignored (RFC 9113 §5.5)
}

// trackEmpty enforces MaxConsecutiveEmptyFrames.
func (c *conn) trackEmpty(length uint32, endStream bool) error {
	if length != 0 || endStream {
		c.emptyRun = 0
		return nil
	}
	c.emptyRun++
	if c.emptyRun > c.cfg.MaxConsecutiveEmptyFrames {
		return connErr{code: ErrCodeEnhanceYourCalm, reason: "too many consecutive frames with an empty payload", def: DefenceEmptyFrames}
	}
	return nil
}

// isIdleLocked reports whether id names a stream that was never opened.
func (c *conn) isIdleLocked(id uint32) bool {
	if c.server {
		return id%2 == 0 || id > c.maxPeerID
	}
	return id%2 == 0 || id >= c.cli.nextID
}

func (c *conn) noteResetLocked(id uint32) {
	c.resetIDs[c.resetPos] = id
	c.resetPos = (c.resetPos + 1) % len(c.resetIDs)
}

func (c *conn) wasResetLocked(id uint32) bool {
	for _, r := range c.resetIDs {
		if r == id {
			return true
		}
	}
	return false
}

// streamError resets the stream of a stream error found while reading.
func (c *conn) streamError(e streamErr) error {
	c.mu.Lock()
	s := c.streams[e.id]
	if s != nil {
		s.refs.Add(1)
	}
	c.mu.Unlock()
	if s != nil {
		err := c.resetStream(s, e.code, e.reason, true)
		s.release()
		return err
	}
	c.mu.Lock()
	c.noteResetLocked(e.id)
	c.mu.Unlock()
	return c.sendCtrl(classControl, 1, true, func(fr *xhttp2.Framer) { fr.WriteRSTStream(e.id, e.code) })
}

// onData accounts a DATA frame against the connection window and hands
// it to its stream.
func (c *conn) onData(f *xhttp2.DataFrame) error {
	return c.onDataPayload(f.StreamID, int64(f.Length), f.StreamEnded(), payload{b: f.Data()})
}

// onDataPayload is onData for a frame of flen bytes (padding included)
// whose data is p, read by the Framer or straight into chunks
// (readLargeData). What is not delivered is released.
func (c *conn) onDataPayload(id uint32, flen int64, end bool, p payload) error {
	c.mu.Lock()
	if flen > c.connRecvAvail {
		c.mu.Unlock()
		p.release()
		return connErr{code: ErrCodeFlowControl, reason: "DATA beyond the connection window"}
	}
	c.connRecvAvail -= flen
	s := c.streams[id]
	if s == nil || s.remoteEnd {
		idle := s == nil && c.isIdleLocked(id)
		ignore := s == nil && c.wasResetLocked(id)
		c.mu.Unlock()
		p.release()
		if err := c.consumed(flen, true); err != nil {
			return err
		}
		switch {
		case idle:
			return connErr{code: ErrCodeProtocol, reason: "DATA on an idle stream"}
		case ignore:
			return nil
		}
		return streamErr{id, ErrCodeStreamClosed, "DATA after END_STREAM"}
	}
	s.refs.Add(1)
	c.mu.Unlock()
	defer s.release()
	if s.cs != nil && !s.cs.gotResp {
		p.release()
		c.consumed(flen, true)
		return streamErr{id, ErrCodeProtocol, "DATA before the response HEADERS"}
	}
	return s.deliver(p, flen, end)
}

// readLargeData reads a DATA frame whose header the read loop has read,
// its data straight into receive-buffer chunks: one copy fewer than the
// Framer's payload buffer and then the stream's buffer. It checks what the
// Framer's DATA parser checks.
func (c *conn) readLargeData(fh xhttp2.FrameHeader) error {
	end := fh.Flags.Has(xhttp2.FlagDataEndStream)
	if err := c.trackEmpty(fh.Length, end); err != nil {
		return err
	}
	if fh.StreamID == 0 {
		return connErr{code: ErrCodeProtocol, reason: "DATA frame with stream ID 0"}
	}
	n, pad := int(fh.Length), 0
	if fh.Flags.Has(xhttp2.FlagDataPadded) {
		b, err := c.br.ReadByte()
		if err != nil {
			return err
		}
		// A pad length (at most 255) cannot exceed a frame of
		// largeDataMin bytes, as it can a small one.
		pad = int(b)
		n -= 1 + pad
	}
	p := payload{chunks: c.dataChunks[:0], n: n}
	for left := n; left > 0; {
		ch := getChunk(left)
		m := min(left, cap(*ch))
		*ch = (*ch)[:m]
		p.chunks = append(p.chunks, ch)
		if err := c.readPayload(*ch); err != nil {
			p.release()
			return err
		}
		left -= m
	}
	if _, err := c.br.Discard(pad); err != nil {
		p.release()
		return err
	}
	if c.direct {
		c.bulk = bulkFrames
	}
	c.rd.max = 0
	return c.onDataPayload(fh.StreamID, int64(fh.Length), end, p)
}

// readPayload fills p: through br, or when direct, with what br holds
// and the rest straight from rwc.
func (c *conn) readPayload(p []byte) error {
	if !c.direct {
		_, err := io.ReadFull(c.br, p)
		return err
	}
	n := 0
	if c.br.Buffered() > 0 {
		n, _ = c.br.Read(p) // buffered bytes only: no read from rwc
	}
	if n < len(p) {
		_, err := io.ReadFull(c.rwc, p[n:])
		return err
	}
	return nil
}

// bulkFrames is how many other frames after a large DATA frame are still
// read with capped reads (conn.bulk): a few, for the small DATA frames and
// WINDOW_UPDATEs found between large ones.
const bulkFrames = 4

// recordReader is a transport whose reads copy out of a record it holds
// decrypted in memory, a *tls.Conn's: reading a frame's payload straight
// from it costs no system call, so the payload need not pass through br.
type recordReader interface {
	ConnectionState() tls.ConnectionState
}

// capReader is the reader under br: while max is set, a read takes at
// most max bytes.
type capReader struct {
	r   io.Reader
	max int
}

func (r *capReader) Read(p []byte) (int, error) {
	if r.max > 0 && len(p) > r.max {
		p = p[:r.max]
	}
	return r.r.Read(p)
}

// payload is a DATA frame's data: b, or n bytes in chunks from the
// receive-buffer pools.
type payload struct {
	b      []byte
	chunks []*[]byte
	n      int
}

func (p payload) len() int {
	if p.chunks != nil {
		return p.n
	}
	return len(p.b)
}

// release gives the chunks back to their pools (data not delivered).
func (p payload) release() {
	for i, ch := range p.chunks {
		putChunk(ch)
		p.chunks[i] = nil
	}
}

// consumed returns n bytes to the connection window: a WINDOW_UPDATE goes
// out once half the window is due.
func (c *conn) consumed(n int64, async bool) error {
	if n <= 0 {
		return nil
	}
	c.mu.Lock()
	c.connUnacked += n
	var inc int64
	if c.connUnacked >= int64(c.cfg.InitialConnWindow)/2 && !c.closed {
		inc = c.connUnacked
		c.connUnacked = 0
		c.connRecvAvail += inc
	}
	c.mu.Unlock()
	if inc == 0 {
		return nil
	}
	return c.sendCtrl(classOther, 1, async, func(fr *xhttp2.Framer) { fr.WriteWindowUpdate(0, uint32(inc)) })
}

func (c *conn) onHeaders(f *xhttp2.HeadersFrame) error {
	c.blk = block{id: f.StreamID, endStream: f.StreamEnded(), frames: 1}
	if f.HasPriority() && f.Priority.StreamDep == f.StreamID {
		c.blk.hasErr, c.blk.errCode, c.blk.errReason = true, ErrCodeProtocol, "stream depends on itself"
	}
	var err error
	if c.server {
		err = c.srvBeginHeaders()
	} else {
		err = c.cliBeginHeaders()
	}
	if err != nil {
		return err
	}
	if c.server && !f.HeadersEnded() && c.blk.req != nil && c.cfg.RequestHeadersTimeout > 0 {
		c.blk.timed = true
		c.armHeaderTimer(f.StreamID)
	}
	return c.headerFragment(f.HeaderBlockFragment(), f.HeadersEnded())
}

func (c *conn) onContinuation(f *xhttp2.ContinuationFrame) error {
	c.blk.frames++
	return c.headerFragment(f.HeaderBlockFragment(), f.HeadersEnded())
}

// maxBlockFrames bounds the frames of one header block: enough for a
// block of twice the limit in minimum-size frames, and then some.
func (c *conn) maxBlockFrames() int {
	return 2*int(c.cfg.MaxHeaderListSize/minMaxFrameSize) + 8
}

// headerFragment decodes one fragment, enforcing the CONTINUATION flood
// bounds, and finishes the block at END_HEADERS.
func (c *conn) headerFragment(frag []byte, end bool) error {
	c.blk.encoded += len(frag)
	if c.blk.encoded > 2*int(c.cfg.MaxHeaderListSize) || c.blk.frames > c.maxBlockFrames() {
		c.blockDone()
		return connErr{code: ErrCodeEnhanceYourCalm, reason: "header block too large", def: DefenceHeaderOverflow}
	}
	if err := c.hdec.write(frag); err != nil {
		c.blockDone()
		return connErr{code: ErrCodeCompression, reason: "hpack: " + err.Error()}
	}
	if !end {
		return nil
	}
	if err := c.hdec.end(); err != nil {
		c.blockDone()
		return connErr{code: ErrCodeCompression, reason: "hpack: " + err.Error()}
	}
	if c.blk.timed {
		c.blk.timed = false
		if c.headerBlockDone(c.blk.id) {
			// Answered 408 by RequestHeadersTimeout: decoded for HPACK's
			// sake only.
			if req := c.blk.req; req != nil {
				c.blk.req = nil
				putRequest(req)
			}
			c.blockDone()
			return nil
		}
	}
	var err error
	if c.server {
		err = c.srvEndHeaders()
	} else {
		err = c.cliEndHeaders()
	}
	c.blockDone()
	return err
}

// blockDone drops the read loop's hold on the block's stream.
func (c *conn) blockDone() {
	if s := c.blk.s; s != nil {
		c.blk.s = nil
		s.release()
	}
	c.hdec.begin(blockDiscard, nil, nil, nil)
}

func (c *conn) onSettings(f *xhttp2.SettingsFrame) error {
	if f.IsAck() {
		c.mu.Lock()
		c.settingsAcked = true
		c.mu.Unlock()
		return nil
	}
	c.mu.Lock()
	c.peerSettings = true
	c.mu.Unlock()
	err := f.ForeachSetting(func(s xhttp2.Setting) error {
		if err := s.Valid(); err != nil {
			var ce xhttp2.ConnectionError
			if errors.As(err, &ce) {
				return connErr{code: ErrCode(ce), reason: "invalid setting " + s.String()}
			}
			return connErr{code: ErrCodeProtocol, reason: "invalid setting " + s.String()}
		}
		return c.applySetting(s)
	})
	if err != nil {
		return err
	}
	return c.sendCtrl(classControl, 1, true, func(fr *xhttp2.Framer) { fr.WriteSettingsAck() })
}

func (c *conn) applySetting(s xhttp2.Setting) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch s.ID {
	case xhttp2.SettingMaxConcurrentStreams:
		c.peerMaxStreams = s.Val
		c.cli.notifySlotsLocked()
	case xhttp2.SettingInitialWindowSize:
		delta := int64(s.Val) - c.peerInitWin
		c.peerInitWin = int64(s.Val)
		for _, st := range c.streams {
			st.sendWin += delta
			if st.sendWin > maxWindow {
				return connErr{code: ErrCodeFlowControl, reason: "SETTINGS_INITIAL_WINDOW_SIZE overflows a stream window"}
			}
		}
		c.flowCond.Broadcast()
	case xhttp2.SettingMaxFrameSize:
		c.peerMaxFrame = s.Val
	case xhttp2.SettingHeaderTableSize:
		c.w.setTableSize(s.Val)
	case xhttp2.SettingEnablePush:
		if !c.server && s.Val != 0 {
			return connErr{code: ErrCodeProtocol, reason: "server enabled push"}
		}
	case xhttp2.SettingEnableConnectProtocol:
		c.peerConnectExt = s.Val == 1
	}
	return nil
}

func (c *conn) onPing(f *xhttp2.PingFrame) error {
	if f.IsAck() {
		return nil // any frame counts as liveness; see keepAliveTick
	}
	data := f.Data
	return c.sendCtrl(classControl, 1, true, func(fr *xhttp2.Framer) { fr.WritePing(true, data) })
}

func (c *conn) onWindowUpdate(f *xhttp2.WindowUpdateFrame) error {
	c.winUpdate++
	c.mu.Lock()
	limit := 5 + 2*(c.opened+int64(c.cfg.MaxWindowUpdatesPerDataFrame)*c.dataSent.Load())
	if c.winUpdate > limit {
		c.mu.Unlock()
		return connErr{code: ErrCodeEnhanceYourCalm, reason: "too many WINDOW_UPDATE frames", def: DefenceWindowUpdateFlood}
	}
	inc := int64(f.Increment)
	if f.StreamID == 0 {
		c.connSendWin += inc
		if c.connSendWin > maxWindow {
			c.mu.Unlock()
			return connErr{code: ErrCodeFlowControl, reason: "connection send window over 2^31-1"}
		}
		c.flowCond.Broadcast()
		c.mu.Unlock()
		return nil
	}
	s := c.streams[f.StreamID]
	if s == nil {
		idle := c.isIdleLocked(f.StreamID)
		c.mu.Unlock()
		if idle {
			return connErr{code: ErrCodeProtocol, reason: "WINDOW_UPDATE on an idle stream"}
		}
		return nil
	}
	s.sendWin += inc
	if s.sendWin > maxWindow {
		c.mu.Unlock()
		return streamErr{f.StreamID, ErrCodeFlowControl, "stream send window over 2^31-1"}
	}
	c.flowCond.Broadcast()
	c.mu.Unlock()
	return nil
}

func (c *conn) onRSTStream(f *xhttp2.RSTStreamFrame) error {
	c.mu.Lock()
	s := c.streams[f.StreamID]
	if s == nil {
		idle := c.isIdleLocked(f.StreamID)
		c.mu.Unlock()
		if idle {
			return connErr{code: ErrCodeProtocol, reason: "RST_STREAM on an idle stream"}
		}
		return nil
	}
	s.refs.Add(1)
	c.mu.Unlock()
	defer s.release()
	return c.remoteReset(s, f.ErrCode)
}

func (c *conn) onPriority(f *xhttp2.PriorityFrame) error {
	c.priority++
	c.mu.Lock()
	limit := int64(c.cfg.MaxPriorityFramesPerStream) * (1 + c.opened)
	c.mu.Unlock()
	if c.priority > limit {
		return connErr{code: ErrCodeEnhanceYourCalm, reason: "too many PRIORITY frames", def: DefencePriorityFlood}
	}
	if f.StreamDep == f.StreamID {
		return streamErr{f.StreamID, ErrCodeProtocol, "stream depends on itself"}
	}
	return nil
}

func (c *conn) onGoAway(f *xhttp2.GoAwayFrame) error {
	if c.server {
		// A client going away opens no more streams; finish the ones in
		// flight, then close.
		c.mu.Lock()
		c.draining = true
		c.maybeIdleLocked()
		c.mu.Unlock()
		return nil
	}
	return c.cliGoAway(f)
}

// resetStream resets s from our side: RST_STREAM with code, reads and
// writes fail, its context is cancelled.
func (c *conn) resetStream(s *stream, code ErrCode, reason string, async bool) error {
	err := &StreamError{StreamID: s.id, Code: code, Reason: reason}
	c.mu.Lock()
	if s.closed {
		c.mu.Unlock()
		return nil
	}
	s.sendErr = err
	c.noteResetLocked(s.id)
	c.closeStreamLocked(s)
	c.mu.Unlock()
	s.abort(err, true)
	if s.id == 0 {
		return nil
	}
	return c.sendCtrl(classControl, 1, async, func(fr *xhttp2.Framer) { fr.WriteRSTStream(s.id, code) })
}

// remoteReset ends s on the peer's RST_STREAM.
func (c *conn) remoteReset(s *stream, code ErrCode) error {
	err := &StreamError{StreamID: s.id, Code: code, Remote: true}
	c.mu.Lock()
	if s.closed {
		c.mu.Unlock()
		return nil
	}
	s.sendErr = err
	premature := c.server && !s.responded && time.Since(s.start) < c.cfg.PrematureResetMinLifetime
	c.closeStreamLocked(s)
	if premature {
		c.srv.premature++
	}
	flood := c.server && c.srv.tooManyPrematureResetsLocked(&c.cfg)
	c.mu.Unlock()
	// RST_STREAM(NO_ERROR) after a complete answer only asks us to stop
	// sending: what was received stays readable (RFC 9113 §8.1, "clients
	// MUST NOT discard responses as a result").
	s.abort(err, code != ErrCodeNo)
	if flood {
		return connErr{code: ErrCodeEnhanceYourCalm, reason: "too many streams reset by the client before a response (rapid reset)", def: DefencePrematureResets}
	}
	return nil
}

// closeStreamLocked removes s from the connection: it no longer counts
// against the stream limits and the read loop forgets it.
func (c *conn) closeStreamLocked(s *stream) {
	if s.closed {
		return
	}
	s.closed = true
	s.localEnd, s.remoteEnd = true, true
	if s.id != 0 && c.streams[s.id] == s {
		delete(c.streams, s.id)
		if c.server {
			c.srv.closed++
		}
	}
	if !c.server {
		c.cli.active--
		c.cli.notifySlotsLocked()
	}
	c.flowCond.Broadcast()
	c.maybeIdleLocked()
	s.cancelCtx()
	if cs := s.cs; cs != nil && cs.stopCtx != nil {
		if !cs.stopCtx() {
			// The context's callback runs or ran: it may still touch
			// the stream, which therefore must not be recycled.
			cs.noRecycle = true
		}
		cs.stopCtx = nil
	}
	s.release()
}

// maybeIdleLocked notes that the connection went idle: arms the idle
// timer, or finishes a graceful shutdown.
func (c *conn) maybeIdleLocked() {
	if c.closed || !c.idleLocked() {
		return
	}
	c.lastIdle = time.Now()
	if c.draining {
		c.goTrackedLocked(func() { c.closeGracefully(true) })
		return
	}
	if c.idleTimer != nil {
		c.idleTimer.Reset(c.cfg.IdleTimeout)
	}
}

func (c *conn) idleLocked() bool {
	if c.server {
		return len(c.streams) == 0 && c.srv.handlers == 0 && len(c.srv.pending) == 0
	}
	return c.cli.active == 0
}

// goTrackedLocked is goTracked with c.mu held.
func (c *conn) goTrackedLocked(f func()) {
	if c.closed {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
}

// closeGracefully sends GOAWAY (NO_ERROR) unless one was sent, flushes
// (waiting at most goAwayTimeout for a peer that does not read) and
// closes the transport; the read loop then ends without error. It blocks:
// call it from an owned goroutine.
func (c *conn) closeGracefully(sendGoAway bool) {
	c.mu.Lock()
	if c.closed || c.graceful {
		c.mu.Unlock()
		return
	}
	c.graceful = true
	last := c.maxPeerID
	send := sendGoAway && !c.goAwaySent
	c.goAwaySent = true
	c.mu.Unlock()
	t := time.AfterFunc(goAwayTimeout, c.closeTransport)
	held := false
	if send {
		held, _ = c.w.queue(classFinal, 1, func(fr *xhttp2.Framer) { fr.WriteGoAway(last, ErrCodeNo, nil) })
	}
	if !held {
		c.w.lock()
	}
	c.w.unlock()
	t.Stop()
	c.closeTransport()
}

// fail answers a connection error: GOAWAY with its code (bounded wait),
// then shutdown. Called by the read loop as it exits.
func (c *conn) fail(code ErrCode, reason string) {
	c.mu.Lock()
	last := c.maxPeerID
	send := !c.goAwaySent || code != ErrCodeNo
	c.goAwaySent = true
	c.mu.Unlock()
	if send {
		t := time.AfterFunc(goAwayTimeout, c.closeTransport)
		debug := []byte(reason)
		start, err := c.w.queue(classFinal, 1, func(fr *xhttp2.Framer) { fr.WriteGoAway(last, code, debug) })
		if err == nil {
			if !start {
				c.w.lock()
			}
			c.w.unlock()
		}
		t.Stop()
	}
	c.shutdown(&ConnError{Code: code, Reason: reason})
}

// shutdown ends the connection: closes the transport, fails every stream
// with err and wakes everything waiting. Idempotent.
func (c *conn) shutdown(err error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.err = err
	streams := make([]*stream, 0, len(c.streams))
	for _, s := range c.streams {
		s.refs.Add(1) // held until aborted below, outside c.mu
		streams = append(streams, s)
	}
	for _, st := range c.srv.pending {
		st.s.release() // its handler never runs
	}
	c.srv.pending = nil
	c.releaseIdleHandlersLocked()
	for _, s := range streams {
		if s.sendErr == nil {
			s.sendErr = err
		}
		c.closeStreamLocked(s)
	}
	for _, t := range []*time.Timer{c.idleTimer, c.kaTimer, c.drainTimer, c.srv.noticeTimer, c.srv.hdrTimer} {
		if t != nil {
			t.Stop()
		}
	}
	c.cli.closeLocked()
	c.flowCond.Broadcast()
	c.mu.Unlock()
	c.closeTransport()
	for _, s := range streams {
		s.abort(err, false)
		s.release()
	}
}

// startTimers arms the idle and keep-alive timers.
func (c *conn) startTimers() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cfg.IdleTimeout > 0 {
		c.idleTimer = time.AfterFunc(c.cfg.IdleTimeout, c.idleTick)
	}
	if c.cfg.KeepAliveInterval > 0 {
		c.kaTimer = time.AfterFunc(c.cfg.KeepAliveInterval, c.keepAliveTick)
	}
}

// idleTick closes the connection gracefully if it is still idle.
func (c *conn) idleTick() {
	c.mu.Lock()
	if c.closed || !c.idleLocked() {
		c.mu.Unlock()
		return
	}
	if d := c.cfg.IdleTimeout - time.Since(c.lastIdle); d > 0 {
		c.idleTimer.Reset(d)
		c.mu.Unlock()
		return
	}
	c.draining = true
	c.goTrackedLocked(func() { c.closeGracefully(true) })
	c.mu.Unlock()
}

// keepAliveTick sends a PING when nothing arrived for KeepAliveInterval,
// and closes the connection when nothing arrived for KeepAliveTimeout
// after it.
func (c *conn) keepAliveTick() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if c.readSeen.Swap(false) {
		c.kaPinged = false
		c.kaTimer.Reset(c.cfg.KeepAliveInterval)
		return
	}
	if c.kaPinged {
		if c.closedBy == DefenceNone {
			c.closedBy, c.closedReason = DefenceKeepAliveTimeout, "keep-alive PING not answered"
		}
		c.closeTransport()
		return
	}
	c.kaPinged = true
	c.kaTimer.Reset(c.cfg.KeepAliveTimeout)
	c.goTrackedLocked(func() {
		c.sendCtrl(classOther, 1, false, func(fr *xhttp2.Framer) {
			fr.WritePing(false, [8]byte{'k', 'e', 'e', 'p', 'a', 'l', 'i', 'v'})
		})
	})
}

// afterFunc is context.AfterFunc that skips contexts that never end.
func afterFunc(ctx context.Context, f func()) (stop func() bool) {
	if ctx.Done() == nil {
		return stopNothing
	}
	return context.AfterFunc(ctx, f)
}

func stopNothing() bool { return true }
