package http2

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"slices"
	"testing"

	xhttp2 "golang.org/x/net/http2"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// sumHandler answers each request with the length and SHA-256 of its body.
var sumHandler = HandlerFunc(func(st *ServerStream) {
	h := sha256.New()
	n, err := io.Copy(h, st.Request().Body)
	if err != nil {
		st.Reset(ErrCodeCancel)
		return
	}
	resp := &l7.Response{Status: 200}
	st.WriteHeaders(resp, false)
	io.WriteString(st, hex.EncodeToString(h.Sum(nil))+" "+itoa(n))
	st.CloseWrite()
})

func itoa(n int64) string { return string(appendInt(nil, n)) }

func appendInt(b []byte, n int64) []byte {
	if n >= 10 {
		b = appendInt(b, n/10)
	}
	return append(b, byte('0'+n%10))
}

// TestLargeData covers DATA frames large enough to be read straight into
// receive-buffer chunks (largeDataMin and up), padded or not, and the
// checks that path makes in place of the Framer's: each case opens stream
// 1 on a raw connection and sends its frames; malformed ones must end the
// stream or the connection as a Framer-parsed frame would.
func TestLargeData(t *testing.T) {
	big := pattern(largeDataMax)
	type frame = largeDataFrame
	tests := []largeDataCase{
		{name: "one large frame", frames: []frame{{id: 1, data: big[:largeDataMin], end: true}}, body: big[:largeDataMin]},
		{name: "padded", frames: []frame{{id: 1, data: big[:12345], pad: 255, end: true}}, body: big[:12345]},
		{name: "largest direct frames, in chunks", frames: []frame{{id: 1, data: big[:16<<10]}, {id: 1, data: big[16<<10 : 40<<10]}, {id: 1, data: big[40<<10:], end: true}}, body: big},
		{name: "small then large", frames: []frame{{id: 1, data: big[:100]}, {id: 1, data: big[100 : 100+largeDataMin]}, {id: 1, data: big[100+largeDataMin : 200+largeDataMin], end: true}}, body: big[:200+largeDataMin]},
		{name: "large, small, large", frames: []frame{{id: 1, data: big[:16<<10]}, {id: 1, data: big[16<<10 : 17<<10]}, {id: 1, data: big[17<<10 : 33<<10], pad: 7}, {id: 1, data: big[33<<10 : 34<<10], end: true}}, body: big[:34<<10]},
		{name: "over the largest direct frame", frames: []frame{{id: 1, data: pattern(largeDataMax + 1), end: true}}, body: pattern(largeDataMax + 1)},
		{name: "stream 0", frames: []frame{{id: 0, data: big[:largeDataMin]}}, end: isGoAway(ErrCodeProtocol)},
		{name: "idle stream", frames: []frame{{id: 5, data: big[:largeDataMin]}}, end: isGoAway(ErrCodeProtocol)},
		{name: "after END_STREAM", frames: []frame{{id: 1, data: big[:10], end: true}, {id: 1, data: big[:largeDataMin]}}, end: isRST(1, ErrCodeStreamClosed)},
		// Once the client has acknowledged our SETTINGS, the stream's
		// window is the configured 16 KiB.
		{name: "beyond the stream window", window: 16 << 10, handler: waitHandler, frames: slices.Repeat([]frame{{id: 1, data: big[:largeDataMin]}}, 3), end: isRST(1, ErrCodeFlowControl)},
	}
	for _, tt := range tests {
		for _, direct := range []bool{false, true} {
			name := tt.name
			var wrap func(io.ReadWriteCloser) io.ReadWriteCloser
			if direct { // payloads read from the transport, not through br
				name += ", direct"
				wrap = func(c io.ReadWriteCloser) io.ReadWriteCloser { return recordConn{c} }
			}
			t.Run(name, func(t *testing.T) { testLargeData(t, tt, wrap) })
		}
	}
}

type largeDataFrame struct {
	id   uint32
	data []byte
	pad  int
	end  bool
}

type largeDataCase struct {
	name    string
	window  int32 // the stream window, acknowledged before the frames
	handler Handler
	frames  []largeDataFrame
	body    []byte                  // what sumHandler must have read
	end     func(xhttp2.Frame) bool // else: the expected RST or GOAWAY
}

// testLargeData runs one case of TestLargeData against a server whose
// connection is wrap(conn) (when wrap is not nil).
func testLargeData(t *testing.T, tt largeDataCase, wrap func(io.ReadWriteCloser) io.ReadWriteCloser) {
	cfg := Config{InitialStreamWindow: 1 << 20, InitialConnWindow: 4 << 20, MaxFrameSize: 1 << 17}
	if tt.window > 0 {
		cfg.InitialStreamWindow = tt.window
	}
	h := tt.handler
	if h == nil {
		h = sumHandler
	}
	srv := serveOneWrapped(t, cfg, h, false, wrap)
	c := dialRaw(t, srv.addr, false)
	if tt.window > 0 {
		cfg.InitialStreamWindow = tt.window
		c.readUntil(func(f xhttp2.Frame) bool { s, ok := f.(*xhttp2.SettingsFrame); return ok && !s.IsAck() })
		if err := c.fr.WriteSettingsAck(); err != nil {
			t.Fatal(err)
		}
	}
	c.headers(1, false)
	for _, f := range tt.frames {
		if err := c.fr.WriteDataPadded(f.id, f.end, f.data, make([]byte, f.pad)); err != nil {
			t.Fatal(err)
		}
	}
	if tt.end != nil {
		if c.readUntil(tt.end) == nil {
			t.Fatal("the connection ended without the expected frame")
		}
		return
	}
	want := sha256.Sum256(tt.body)
	var got []byte
	c.readUntil(func(f xhttp2.Frame) bool {
		if d, ok := f.(*xhttp2.DataFrame); ok && d.StreamID == 1 {
			got = append(got, d.Data()...)
			return d.StreamEnded()
		}
		return false
	})
	if w := hex.EncodeToString(want[:]) + " " + itoa(int64(len(tt.body))); string(got) != w {
		t.Fatalf("server read %q, want %q", got, w)
	}
}

// TestTryReadChunk reads a request body as the chunks it arrived in,
// after a partial Read of the first one, and checks the bytes and the end
// of the body. More than a window's worth flows, so each taken chunk must
// count as read; the client's writes vary in size, so that small frames
// (packed into chunks) and large ones (read straight into them) mix.
func TestTryReadChunk(t *testing.T) {
	body := pattern(3 << 20)
	got := make(chan []byte, 1)
	h := HandlerFunc(func(st *ServerStream) {
		head := make([]byte, 10)
		n, _ := io.ReadFull(st.Request().Body, head)
		b := append([]byte(nil), head[:n]...)
		for {
			if err := st.WaitRead(); err != nil {
				break
			}
			ch, err := st.TryReadChunk()
			b = append(b, ch.Bytes()...)
			ch.Release()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Errorf("TryReadChunk: %v", err)
				break
			}
		}
		got <- b
		st.WriteResponse(&l7.Response{Status: 200})
	})
	srv := startServer(t, Config{InitialStreamWindow: 256 << 10}, h)
	cc := dialClient(t, srv.addr(), Config{})
	req := newRequest("POST", "example.com", "/")
	req.Body = &varyingReader{b: body}
	resp, err := cc.RoundTrip(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 200 {
		t.Fatalf("status %d", resp.Status)
	}
	if b := <-got; !bytes.Equal(b, body) {
		t.Fatalf("handler read %d bytes, want the %d sent, equal", len(b), len(body))
	}
}

// varyingReader reads b in pieces of 700 B, 16 KiB, 9,000 B and 40 KiB in
// turn.
type varyingReader struct {
	b []byte
	i int
}

func (r *varyingReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := min([]int{700, 16 << 10, 9000, 40 << 10}[r.i%4], len(r.b), len(p))
	r.i++
	copy(p, r.b[:n])
	r.b = r.b[n:]
	return n, nil
}

// TestWriteVec sends buffers of mixed sizes, empty ones among them, with
// ClientStream.WriteVec over a window smaller than their sum (so that a
// call waits for WINDOW_UPDATEs part-way), and checks that the server read
// exactly their concatenation.
func TestWriteVec(t *testing.T) {
	big := pattern(200 << 10)
	bufs := [][]byte{nil, big[:100], big[100 : 100+16<<10], {}, big[100+16<<10 : 150<<10], big[150<<10:], nil}
	srv := startServer(t, Config{InitialStreamWindow: 32 << 10}, sumHandler)
	cc := dialClient(t, srv.addr(), Config{})
	cs, err := cc.OpenStream(context.Background(), newRequest("POST", "example.com", "/"))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	for range 2 {
		n, err := cs.WriteVec(bufs)
		if err != nil || n != len(big) {
			t.Fatalf("WriteVec = %d, %v; want %d", n, err, len(big))
		}
	}
	if err := cs.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	resp, err := cs.Response()
	if err != nil || resp.Status != 200 {
		t.Fatalf("response %v %v", resp, err)
	}
	got, err := io.ReadAll(cs)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(append(slices.Clone(big), big...))
	if want := hex.EncodeToString(sum[:]) + " " + itoa(int64(2*len(big))); string(got) != want {
		t.Fatalf("server read %q, want %q", got, want)
	}
}
