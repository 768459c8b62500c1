package http2

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	xhttp2 "golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// The fuzz targets of this file drive one connection of the engine on a
// net.Pipe with frames decoded from the fuzz input (fuzzFrames), and
// require that it never panics, ends within fuzzBound of its peer
// closing, and leaves no goroutine behind. The seed corpora are the
// frame sequences of real exchanges (fuzzSeeds*) and what the fuzzer
// kept in testdata/fuzz/FuzzServerFrames and FuzzClientFrames.

// fuzzBound bounds every wait of a fuzz iteration: the engine must have
// answered the closing PING, or ended, within it. Far above any honest
// run (microseconds); only a hang reaches it.
const fuzzBound = 10 * time.Second

// fuzzPingData marks the PING that ends a fuzz input: its ack says the
// peer has read every frame before it.
var fuzzPingData = [8]byte{'f', 'u', 'z', 'z', 'e', 'n', 'd', '!'}

// fuzzFrames cuts data into frames. Each frame is a 4-byte record head:
// type (mod 11; 10 is an unknown type 0x20), flags, stream id (0 to 127),
// payload length (0 to 127, or with the top bit set 15 bits with the next
// byte), then the payload (cut short at the end of data). Frames go out
// raw: lengths, flags and ids need not be valid.
func fuzzFrames(data []byte) []fuzzFrame {
	var out []fuzzFrame
	for len(data) >= 4 {
		f := fuzzFrame{typ: data[0] % 11, flags: data[1], id: uint32(data[2] & 0x7f)}
		n := int(data[3])
		data = data[4:]
		if n&0x80 != 0 && len(data) > 0 {
			n = (n&0x7f)<<8 | int(data[0])
			data = data[1:]
		}
		n = min(n, len(data))
		f.payload, data = data[:n], data[n:]
		if f.typ == 10 {
			f.typ = 0x20
		}
		out = append(out, f)
	}
	return out
}

type fuzzFrame struct {
	typ, flags uint8
	id         uint32
	payload    []byte
}

// appendFuzzFrame encodes a frame as fuzzFrames reads it (the seeds).
func appendFuzzFrame(b []byte, typ xhttp2.FrameType, flags xhttp2.Flags, id uint32, payload []byte) []byte {
	t := byte(typ)
	if typ == 0x20 {
		t = 10
	}
	b = append(b, t, byte(flags), byte(id))
	if len(payload) < 0x80 {
		b = append(b, byte(len(payload)))
	} else {
		b = append(b, byte(len(payload)>>8)|0x80, byte(len(payload)))
	}
	return append(b, payload...)
}

// fuzzBlock HPACK-encodes fields (name, value pairs) with a fresh encoder.
func fuzzBlock(fields ...string) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for i := 0; i+1 < len(fields); i += 2 {
		enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return buf.Bytes()
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func settingsPayload(kv ...uint32) []byte {
	var b []byte
	for i := 0; i+1 < len(kv); i += 2 {
		b = binary.BigEndian.AppendUint16(b, uint16(kv[i]))
		b = binary.BigEndian.AppendUint32(b, kv[i+1])
	}
	return b
}

// fuzzSeedsServer are client frame sequences of real exchanges.
func fuzzSeedsServer() [][]byte {
	const (
		hdrs  = xhttp2.FrameHeaders
		data  = xhttp2.FrameData
		cont  = xhttp2.FrameContinuation
		es    = xhttp2.FlagHeadersEndStream
		eh    = xhttp2.FlagHeadersEndHeaders
		pad   = xhttp2.FlagHeadersPadded
		prio  = xhttp2.FlagHeadersPriority
		dEnd  = xhttp2.FlagDataEndStream
		dPad  = xhttp2.FlagDataPadded
		setAk = xhttp2.FlagSettingsAck
	)
	get := fuzzBlock(":method", "GET", ":scheme", "http", ":authority", "example.com", ":path", "/", "user-agent", "fuzz")
	post := fuzzBlock(":method", "POST", ":scheme", "http", ":authority", "example.com", ":path", "/upload", "content-length", "5", "te", "trailers")
	grpc := fuzzBlock(":method", "POST", ":scheme", "http", ":authority", "svc:8080", ":path", "/pkg.Svc/Call", "content-type", "application/grpc", "te", "trailers", "grpc-timeout", "1S")
	connect := fuzzBlock(":method", "CONNECT", ":authority", "10.0.0.1:8080", "baggage", "k=v")
	extConnect := fuzzBlock(":method", "CONNECT", ":protocol", "websocket", ":scheme", "http", ":authority", "a", ":path", "/ws")
	trailers := fuzzBlock("grpc-status", "0", "x-t", "v")
	cookies := fuzzBlock(":method", "GET", ":scheme", "https", ":path", "/c", ":authority", "a", "cookie", "a=1", "cookie", "b=2", "host", "a")
	ack := appendFuzzFrame(nil, xhttp2.FrameSettings, setAk, 0, nil)

	var seeds [][]byte
	add := func(b []byte) { seeds = append(seeds, b) }
	// GET, acked settings.
	add(appendFuzzFrame(ack, hdrs, es|eh, 1, get))
	// POST with a body and trailers, window updates.
	b := appendFuzzFrame(ack, hdrs, eh, 1, post)
	b = appendFuzzFrame(b, data, 0, 1, []byte("hel"))
	b = appendFuzzFrame(b, data, 0, 1, []byte("lo"))
	b = appendFuzzFrame(b, hdrs, es|eh, 1, fuzzBlock("x-trailer", "1"))
	b = appendFuzzFrame(b, xhttp2.FrameWindowUpdate, 0, 0, u32(1<<20))
	add(b)
	// gRPC with a length-prefixed message and trailers; a second stream
	// reusing the dynamic table.
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", "svc"}, {":path", "/a"}, {"x-dyn", "value"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	first := append([]byte(nil), buf.Bytes()...)
	buf.Reset()
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", "svc"}, {":path", "/a"}, {"x-dyn", "value"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	second := append([]byte(nil), buf.Bytes()...)
	b = appendFuzzFrame(ack, hdrs, eh, 1, grpc)
	b = appendFuzzFrame(b, data, dEnd, 1, []byte{0, 0, 0, 0, 2, 8, 1})
	b = appendFuzzFrame(b, hdrs, es|eh, 3, first)
	b = appendFuzzFrame(b, hdrs, es|eh, 5, second)
	add(b)
	// CONNECT tunnel: DATA both ways, half-close, RST.
	b = appendFuzzFrame(ack, hdrs, eh, 1, connect)
	b = appendFuzzFrame(b, data, 0, 1, bytes.Repeat([]byte("x"), 300))
	b = appendFuzzFrame(b, data, dEnd, 1, nil)
	b = appendFuzzFrame(b, hdrs, eh, 3, extConnect)
	b = appendFuzzFrame(b, xhttp2.FrameRSTStream, 0, 3, u32(uint32(xhttp2.ErrCodeCancel)))
	add(b)
	// Header block split over CONTINUATION, padded and prioritised HEADERS.
	b = appendFuzzFrame(ack, hdrs, 0, 1, get[:5])
	b = appendFuzzFrame(b, cont, 0, 1, get[5:9])
	b = appendFuzzFrame(b, cont, eh, 1, get[9:])
	p := append([]byte{3}, u32(1)...) // pad length, dependency
	p = append(p, 15)                 // weight
	p = append(append(p, get...), 0, 0, 0)
	b = appendFuzzFrame(b, hdrs, es|eh|pad|prio, 3, p)
	b = appendFuzzFrame(b, xhttp2.FramePriority, 0, 5, append(u32(3), 200))
	add(b)
	// Padded DATA, settings changes, ping, unknown frame, goaway.
	b = appendFuzzFrame(nil, xhttp2.FrameSettings, 0, 0, settingsPayload(uint32(xhttp2.SettingInitialWindowSize), 10, uint32(xhttp2.SettingHeaderTableSize), 0, uint32(xhttp2.SettingMaxFrameSize), 20000, uint32(xhttp2.SettingEnablePush), 0))
	b = appendFuzzFrame(b, hdrs, eh, 1, post)
	b = appendFuzzFrame(b, data, dPad|dEnd, 1, append([]byte{2, 'h', 'e', 'l', 'l', 'o'}, 0, 0))
	b = appendFuzzFrame(b, xhttp2.FramePing, 0, 0, []byte("12345678"))
	b = appendFuzzFrame(b, 0x20, 0, 1, []byte("unknown"))
	b = appendFuzzFrame(b, xhttp2.FrameWindowUpdate, 0, 1, u32(100))
	b = appendFuzzFrame(b, xhttp2.FrameGoAway, 0, 0, append(u32(1), u32(0)...))
	add(b)
	// Cookies, a 431 (too many fields for the fuzz config), rapid resets.
	b = appendFuzzFrame(ack, hdrs, es|eh, 1, cookies)
	var many []string
	for i := range 20 {
		many = append(many, fmt.Sprintf("x-%d", i), strings.Repeat("v", 40))
	}
	b = appendFuzzFrame(b, hdrs, es|eh, 3, fuzzBlock(append([]string{":method", "GET", ":scheme", "http", ":authority", "a", ":path", "/"}, many...)...))
	for id := uint32(5); id < 30; id += 2 {
		b = appendFuzzFrame(b, hdrs, eh, id, get)
		b = appendFuzzFrame(b, xhttp2.FrameRSTStream, 0, id, u32(uint32(xhttp2.ErrCodeCancel)))
	}
	add(b)
	// Malformed: uppercase name, connection-specific field, bad content-length.
	b = appendFuzzFrame(ack, hdrs, es|eh, 1, fuzzBlock(":method", "GET", ":scheme", "http", ":authority", "a", ":path", "/", "X-Up", "1"))
	b = appendFuzzFrame(b, hdrs, es|eh, 3, fuzzBlock(":method", "GET", ":scheme", "http", ":authority", "a", ":path", "/", "connection", "close"))
	b = appendFuzzFrame(b, hdrs, eh, 5, post)
	b = appendFuzzFrame(b, data, dEnd, 5, []byte("toolongbody"))
	b = appendFuzzFrame(b, hdrs, es|eh, 7, trailers)
	add(b)
	return seeds
}

// fuzzConfig is a small configuration, so that limits are reached by
// short inputs.
func fuzzConfig() Config {
	return Config{
		MaxConcurrentStreams:      4,
		InitialStreamWindow:       1024,
		MaxHeaderListSize:         1024,
		MaxHeaderCount:            16,
		PrematureResetStreamCount: 8,
		MaxOutboundFrames:         64,
		MaxOutboundControlFrames:  16,
	}
}

// fuzzHandler answers by the request's path: it reads the body (at most
// 4 KiB), then writes headers, the body back and trailers, only headers,
// resets, or a response whose writes may block on flow control.
var fuzzHandler = HandlerFunc(func(st *ServerStream) {
	req := st.Request()
	var body []byte
	if req.Body != nil {
		var err error
		body, err = io.ReadAll(io.LimitReader(req.Body, 4096))
		if err != nil {
			return
		}
	}
	switch {
	case bytes.HasPrefix(req.Path, []byte("/reset")):
		st.Reset(xhttp2.ErrCodeInternal)
	case bytes.HasPrefix(req.Path, []byte("/big")):
		if st.WriteHeaders(&l7.Response{Status: 200}, false) == nil {
			st.Write(make([]byte, 100<<10))
			st.CloseWrite()
		}
	case req.Method == l7.MethodConnect:
		if st.WriteHeaders(&l7.Response{Status: 200}, false) == nil {
			st.Write(body)
			st.CloseWrite()
		}
	default:
		resp := &l7.Response{Status: 200}
		resp.Header.Add("content-type", "text/plain")
		if st.WriteHeaders(resp, false) != nil {
			return
		}
		st.Write(body)
		var tr l7.Header
		tr.Add("grpc-status", "0")
		st.WriteTrailers(&tr)
	}
})

// FuzzServerFrames writes the client preface, an empty SETTINGS, the
// fuzzed frames and a closing PING to ServeConn on a net.Pipe, reading
// everything the server writes. The server must answer the PING or end,
// then end once the client side closes, with every goroutine it started.
func FuzzServerFrames(f *testing.F) {
	for _, s := range fuzzSeedsServer() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		frames := fuzzFrames(data)
		base := runtime.NumGoroutine()
		cli, srv := net.Pipe()
		served := make(chan error, 1)
		go func() { served <- ServeConn(context.Background(), srv, fuzzConfig(), fuzzHandler) }()

		synced := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { // the peer's reader: every frame until the end
			defer wg.Done()
			defer close(synced)
			fr := xhttp2.NewFramer(nil, cli)
			fr.AllowIllegalReads = true
			for {
				f, err := fr.ReadFrame()
				if err != nil {
					return
				}
				if p, ok := f.(*xhttp2.PingFrame); ok && p.IsAck() && p.Data == fuzzPingData {
					return
				}
			}
		}()
		go func() { // the peer's writer
			defer wg.Done()
			fr := xhttp2.NewFramer(cli, nil)
			fr.AllowIllegalWrites = true
			if _, err := io.WriteString(cli, xhttp2.ClientPreface); err != nil {
				return
			}
			if fr.WriteSettings() != nil {
				return
			}
			for _, f := range frames {
				if fr.WriteRawFrame(xhttp2.FrameType(f.typ), xhttp2.Flags(f.flags), f.id, f.payload) != nil {
					return
				}
			}
			fr.WritePing(false, fuzzPingData)
		}()
		hang := time.NewTimer(fuzzBound)
		defer hang.Stop()
		select {
		case <-synced:
		case <-hang.C:
			cli.Close()
			failHang(t, "the server neither answered the closing PING nor ended")
		}
		cli.Close()
		select {
		case <-served:
		case <-hang.C:
			failHang(t, "ServeConn did not return after the peer closed")
		}
		wg.Wait()
		checkGoroutines(t, base)
	})
}

// failHang fails the iteration with every goroutine's stack.
func failHang(t *testing.T, what string) {
	buf := make([]byte, 1<<20)
	t.Fatalf("%s within %v:\n%s", what, fuzzBound, buf[:runtime.Stack(buf, true)])
}

// checkGoroutines waits (within fuzzBound) for the goroutine count to be
// back at base: goroutines that have been told to end get the time to.
func checkGoroutines(t *testing.T, base int) {
	deadline := time.Now().Add(fuzzBound)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines left over (from %d):\n%s", runtime.NumGoroutine()-base, base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(time.Millisecond)
	}
}

// fuzzSeedsClient are server frame sequences of real exchanges for the
// client's three streams (1: GET, 3: POST, 5: CONNECT).
func fuzzSeedsClient() [][]byte {
	const (
		hdrs = xhttp2.FrameHeaders
		data = xhttp2.FrameData
		es   = xhttp2.FlagHeadersEndStream
		eh   = xhttp2.FlagHeadersEndHeaders
		dEnd = xhttp2.FlagDataEndStream
	)
	ok := fuzzBlock(":status", "200", "content-type", "text/plain", "content-length", "2")
	ack := appendFuzzFrame(nil, xhttp2.FrameSettings, xhttp2.FlagSettingsAck, 0, nil)
	var seeds [][]byte
	add := func(b []byte) { seeds = append(seeds, b) }
	b := appendFuzzFrame(ack, hdrs, eh, 1, ok)
	b = appendFuzzFrame(b, data, dEnd, 1, []byte("ok"))
	b = appendFuzzFrame(b, hdrs, eh, 3, fuzzBlock(":status", "100"))
	b = appendFuzzFrame(b, hdrs, eh, 3, fuzzBlock(":status", "200", "content-type", "application/grpc"))
	b = appendFuzzFrame(b, data, 0, 3, []byte{0, 0, 0, 0, 0})
	b = appendFuzzFrame(b, hdrs, es|eh, 3, fuzzBlock("grpc-status", "0", "grpc-message", ""))
	b = appendFuzzFrame(b, hdrs, eh, 5, fuzzBlock(":status", "200"))
	b = appendFuzzFrame(b, data, 0, 5, []byte("tunnel bytes"))
	b = appendFuzzFrame(b, data, dEnd, 5, nil)
	add(b)
	// Settings, window updates, a reset stream, GOAWAY with a last id.
	b = appendFuzzFrame(nil, xhttp2.FrameSettings, 0, 0, settingsPayload(uint32(xhttp2.SettingMaxConcurrentStreams), 1, uint32(xhttp2.SettingInitialWindowSize), 1, uint32(xhttp2.SettingMaxHeaderListSize), 100))
	b = appendFuzzFrame(b, xhttp2.FrameWindowUpdate, 0, 3, u32(1000))
	b = appendFuzzFrame(b, xhttp2.FrameRSTStream, 0, 1, u32(uint32(xhttp2.ErrCodeRefusedStream)))
	b = appendFuzzFrame(b, hdrs, es|eh, 3, fuzzBlock(":status", "503", "x-envoy", "a"))
	b = appendFuzzFrame(b, xhttp2.FrameGoAway, 0, 0, append(u32(3), u32(uint32(xhttp2.ErrCodeNo))...))
	add(b)
	// Push promise (refused: push is off), ping, a response split over
	// CONTINUATION, malformed statuses.
	b = appendFuzzFrame(ack, xhttp2.FramePushPromise, xhttp2.FlagPushPromiseEndHeaders, 1, append(u32(2), ok...))
	b = appendFuzzFrame(b, xhttp2.FramePing, 0, 0, []byte("abcdefgh"))
	b = appendFuzzFrame(b, hdrs, 0, 1, ok[:2])
	b = appendFuzzFrame(b, xhttp2.FrameContinuation, eh, 1, ok[2:])
	b = appendFuzzFrame(b, data, dEnd, 1, []byte("toolong"))
	b = appendFuzzFrame(b, hdrs, es|eh, 3, fuzzBlock(":status", "2000"))
	b = appendFuzzFrame(b, hdrs, es|eh, 5, fuzzBlock(":status", "200", ":path", "/"))
	add(b)
	return seeds
}

// FuzzClientFrames runs a ClientConn on a net.Pipe against a fuzzed
// server: the server side sends an empty SETTINGS, waits for the client's
// three request HEADERS (streams 1, 3, 5), writes the fuzzed frames and a
// closing PING and closes once the client has answered it (or ended). The
// client's streams must then all end with a response or an error, and
// the connection with every goroutine it started.
func FuzzClientFrames(f *testing.F) {
	for _, s := range fuzzSeedsClient() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		frames := fuzzFrames(data)
		base := runtime.NumGoroutine()
		cli, srv := net.Pipe()

		opened := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // the fuzzed server
			defer wg.Done()
			defer srv.Close()
			pre := make([]byte, len(xhttp2.ClientPreface))
			if _, err := io.ReadFull(srv, pre); err != nil {
				return
			}
			sawHeaders := make(chan struct{}, 8)
			synced := make(chan struct{})
			var rwg sync.WaitGroup
			rwg.Add(1)
			go func() {
				defer rwg.Done()
				defer close(synced)
				fr := xhttp2.NewFramer(nil, srv)
				fr.AllowIllegalReads = true
				for {
					f, err := fr.ReadFrame()
					if err != nil {
						return
					}
					switch f := f.(type) {
					case *xhttp2.HeadersFrame:
						select {
						case sawHeaders <- struct{}{}:
						default:
						}
					case *xhttp2.PingFrame:
						if f.IsAck() && f.Data == fuzzPingData {
							return
						}
					}
				}
			}()
			defer rwg.Wait()
			defer srv.Close()
			fw := xhttp2.NewFramer(srv, nil)
			fw.AllowIllegalWrites = true
			if fw.WriteSettings() != nil {
				return
			}
			select { // the client opens its streams once it has our SETTINGS
			case <-opened:
			case <-synced:
				return
			}
			for range 3 {
				select {
				case <-sawHeaders:
				case <-synced:
					return
				}
			}
			for _, f := range frames {
				if fw.WriteRawFrame(xhttp2.FrameType(f.typ), xhttp2.Flags(f.flags), f.id, f.payload) != nil {
					return
				}
			}
			if fw.WritePing(false, fuzzPingData) != nil {
				return
			}
			<-synced
		}()

		// The watchdog: past fuzzBound it records every stack and closes
		// both ends, so that a hang ends the iteration and is reported.
		var hung []byte
		watchdog := time.AfterFunc(fuzzBound, func() {
			buf := make([]byte, 1<<20)
			hung = buf[:runtime.Stack(buf, true)]
			cli.Close()
			srv.Close()
		})
		cfg := fuzzConfig()
		cc, err := NewClientConn(cli, cfg)
		if err != nil {
			cli.Close()
			close(opened)
			wg.Wait()
			t.Fatalf("NewClientConn: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), fuzzBound)
		defer cancel()
		var streams []*ClientStream
		for _, r := range []struct {
			req  *l7.Request
			body string
		}{
			{req: newRequest("GET", "example.com", "/")},
			{req: &l7.Request{Method: "POST", Scheme: "http", Authority: []byte("example.com"), Path: []byte("/p"), ContentLength: 5}, body: "hello"},
			{req: &l7.Request{Method: l7.MethodConnect, Authority: []byte("10.0.0.1:80"), ContentLength: -1}},
		} {
			var cs *ClientStream
			var err error
			switch {
			case r.req.Method == l7.MethodConnect:
				cs, err = cc.OpenStream(ctx, r.req)
			case r.body != "":
				cs, err = cc.open(ctx, r.req, false, strings.NewReader(r.body), false)
			default:
				cs, err = cc.open(ctx, r.req, true, nil, false)
			}
			if err != nil {
				break
			}
			streams = append(streams, cs)
		}
		if len(streams) == 3 {
			if _, err := streams[2].Write([]byte("more")); err == nil {
				streams[2].CloseWrite()
			}
		}
		close(opened)
		for _, cs := range streams {
			if resp, err := cs.Response(); err == nil && resp.Body != nil {
				io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			}
			cs.Close()
		}
		wg.Wait() // the server has closed: the client connection must end
		cc.Close()
		if !watchdog.Stop() {
			t.Fatalf("the client did not end within %v of the server closing:\n%s", fuzzBound, hung)
		}
		checkGoroutines(t, base)
	})
}

// TestHeadersPaddingOverrun is FuzzServerFrames' crasher ba65e486b8b2cdd1,
// on both sides: a HEADERS frame without END_HEADERS whose padding is
// longer than its payload (x/net's Framer calls it a stream error and
// still expects CONTINUATION), then CONTINUATION. The engine decoded the
// CONTINUATION's fragment in a block that had never begun and panicked;
// it must close the connection with PROTOCOL_ERROR (RFC 9113 §6.2).
func TestHeadersPaddingOverrun(t *testing.T) {
	frames := []fuzzFrame{
		{typ: uint8(xhttp2.FrameHeaders), flags: uint8(xhttp2.FlagHeadersPadded), id: 1, payload: []byte{0x82, 0x86, 0x41, 0x88, 0x2f}},
		{typ: uint8(xhttp2.FrameContinuation), flags: uint8(xhttp2.FlagContinuationEndHeaders), id: 1, payload: fuzzBlock(":method", "GET", ":path", "/")},
	}
	t.Run("server", func(t *testing.T) {
		s := serveOne(t, Config{}, echoHandler, false)
		c := dialRaw(t, s.addr, false)
		for _, f := range frames {
			if err := c.fr.WriteRawFrame(xhttp2.FrameType(f.typ), xhttp2.Flags(f.flags), f.id, f.payload); err != nil {
				t.Fatal(err)
			}
		}
		if c.readUntil(isGoAway(ErrCodeProtocol)) == nil {
			t.Fatal("no GOAWAY(PROTOCOL_ERROR)")
		}
		if err := <-s.done; err == nil || !strings.Contains(err.Error(), "padding") {
			t.Fatalf("ServeConn: %v, want the padding error", err)
		}
	})
	t.Run("client", func(t *testing.T) {
		cli, srv := net.Pipe()
		defer srv.Close()
		sawRequest := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // the client's bytes: its request's HEADERS let the server answer
			defer wg.Done()
			fr := xhttp2.NewFramer(nil, srv)
			if _, err := io.ReadFull(srv, make([]byte, len(xhttp2.ClientPreface))); err != nil {
				return
			}
			for {
				f, err := fr.ReadFrame()
				if err != nil {
					return
				}
				if _, ok := f.(*xhttp2.HeadersFrame); ok {
					close(sawRequest)
				}
			}
		}()
		defer wg.Wait()
		defer srv.Close()
		cc, err := NewClientConn(cli, Config{})
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		fr := xhttp2.NewFramer(srv, nil)
		fr.AllowIllegalWrites = true
		if err := fr.WriteSettings(); err != nil {
			t.Fatal(err)
		}
		cs, err := cc.open(context.Background(), newRequest("GET", "a", "/"), true, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		<-sawRequest
		for _, f := range frames {
			fr.WriteRawFrame(xhttp2.FrameType(f.typ), xhttp2.Flags(f.flags), f.id, f.payload)
		}
		if _, err := cs.Response(); err == nil || !strings.Contains(err.Error(), "padding") {
			t.Fatalf("response over a connection that sent an invalid HEADERS frame: %v, want the padding error", err)
		}
		cs.Close()
	})
}
