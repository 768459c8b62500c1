package http2

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	xhttp2 "golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

func TestConfigDefaults(t *testing.T) {
	tests := []struct {
		name    string
		in      Config
		check   func(Config) bool
		wantErr string
	}{
		{"zero is Envoy-like", Config{}, func(c Config) bool {
			return c.MaxConcurrentStreams == 100 && c.InitialStreamWindow == 64<<10 && c.InitialConnWindow == 1<<20 &&
				c.MaxFrameSize == 16<<10 && c.MaxHeaderListSize == 60<<10 && c.MaxHeaderCount == 100 &&
				c.MaxOutboundFrames == 10000 && c.MaxOutboundControlFrames == 1000 && c.MaxConsecutiveEmptyFrames == 1 &&
				c.MaxPriorityFramesPerStream == 100 && c.MaxWindowUpdatesPerDataFrame == 10 &&
				c.PrematureResetStreamCount == 500 && c.PrematureResetMinLifetime == time.Second &&
				c.IdleTimeout == 0 && c.KeepAliveInterval == 0 && c.KeepAliveTimeout == 0
		}, ""},
		{"keep-alive timeout defaults with the interval", Config{KeepAliveInterval: time.Second}, func(c Config) bool {
			return c.KeepAliveTimeout == 20*time.Second
		}, ""},
		{"set values kept", Config{MaxConcurrentStreams: 7, MaxFrameSize: 1 << 20}, func(c Config) bool {
			return c.MaxConcurrentStreams == 7 && c.MaxFrameSize == 1<<20
		}, ""},
		{"frame size too small", Config{MaxFrameSize: 1000}, nil, "MaxFrameSize"},
		{"frame size too large", Config{MaxFrameSize: 1 << 24}, nil, "MaxFrameSize"},
		{"connection window below the protocol's", Config{InitialConnWindow: 1000}, nil, "InitialConnWindow"},
		{"negative stream window", Config{InitialStreamWindow: -1}, nil, "InitialStreamWindow"},
		{"negative limit", Config{MaxOutboundFrames: -1}, nil, "negative limit"},
		{"negative duration", Config{IdleTimeout: -time.Second}, nil, "negative duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.in.withDefaults()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !tt.check(got) {
				t.Fatalf("withDefaults: %+v, %v", got, err)
			}
		})
	}
}

func TestRecvBuf(t *testing.T) {
	tests := []struct {
		name   string
		writes []int
		reads  []int
	}{
		{"small", []int{10}, []int{4, 6}},
		{"chunk boundary", []int{1024, 1}, []int{1025}},
		{"many frames", []int{16384, 16384, 100, 5000}, []int{1, 20000, 17867}},
		{"interleaved", []int{3000, 3000}, []int{2000, 2000, 2000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b recvBuf
			var want bytes.Buffer
			for i, n := range tt.writes {
				p := bytes.Repeat([]byte{byte('a' + i)}, n)
				b.write(p)
				want.Write(p)
			}
			if b.n != want.Len() {
				t.Fatalf("buffered %d, want %d", b.n, want.Len())
			}
			var got bytes.Buffer
			for _, n := range tt.reads {
				p := make([]byte, n)
				got.Write(p[:b.read(p)])
			}
			if !bytes.Equal(got.Bytes(), want.Bytes()) || b.n != 0 || len(b.chunks) != 0 {
				t.Fatalf("read %d bytes (equal %v), %d left in %d chunks", got.Len(), bytes.Equal(got.Bytes(), want.Bytes()), b.n, len(b.chunks))
			}
			b.write([]byte("x"))
			if n := b.reset(); n != 1 || b.n != 0 {
				t.Fatalf("reset dropped %d", n)
			}
		})
	}
}

// blockedWriter blocks every Write until released: a peer that does not
// read.
type blockedWriter struct{ release chan struct{} }

func (w blockedWriter) Write(p []byte) (int, error) {
	<-w.release
	return 0, io.ErrClosedPipe
}

func TestWriterBounds(t *testing.T) {
	tests := []struct {
		name  string
		class frameClass
		max   int
	}{
		{"control frames", classControl, 3},
		{"other frames", classOther, 5},
		{"GOAWAY is never refused", classFinal, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bw := blockedWriter{make(chan struct{})}
			var w writer
			failed := make(chan error, 1)
			w.init(bw, &Config{MaxOutboundControlFrames: 3, MaxOutboundFrames: 5}, func(err error) { failed <- err })
			// A holder stuck on the transport.
			locked := make(chan struct{})
			stuck := make(chan struct{})
			go func() {
				w.lock()
				close(locked)
				w.fr.WriteData(1, false, make([]byte, writeBufferSize))
				w.unlock()
				close(stuck)
			}()
			<-locked
			queued := 0
			for ; queued < 20; queued++ {
				start, err := w.queue(tt.class, 1, func(fr *xhttp2.Framer) { fr.WritePing(true, [8]byte{}) })
				if start {
					t.Fatal("became the holder while the lock was held")
				}
				if err != nil {
					want := errFlood
					if tt.class == classControl {
						want = errCtrlFlood // MaxOutboundControlFrames (3) comes before MaxOutboundFrames (5)
					}
					if !errors.Is(err, want) {
						t.Fatal(err)
					}
					break
				}
			}
			if tt.max >= 0 && queued != tt.max {
				t.Fatalf("queued %d frames before errFlood, want %d", queued, tt.max)
			}
			if tt.max < 0 && queued != 20 {
				t.Fatalf("refused after %d", queued)
			}
			close(bw.release)
			<-stuck
			if err := <-failed; err == nil {
				t.Fatal("no write error reported")
			}
			if _, err := w.queue(classOther, 1, func(fr *xhttp2.Framer) {}); err == nil {
				t.Fatal("queue accepted frames after a write error")
			}
		})
	}
}

func TestEncoderPolicy(t *testing.T) {
	var e headerEncoder
	e.init()
	var resp l7.Response
	resp.Status = 503
	for _, f := range [][2]string{
		{"content-type", "text/plain"}, {"connection", "close"}, {"transfer-encoding", "chunked"},
		{"te", "gzip"}, {"set-cookie", "id=1"}, {"authorization", "secret"}, {"x-long", strings.Repeat("v", 300)},
	} {
		resp.Header.Add(f[0], f[1])
	}
	resp.ContentLength = 42
	block := e.response(&resp, false)
	var fields []hpack.HeaderField
	dec := hpack.NewDecoder(4096, func(f hpack.HeaderField) { fields = append(fields, f) })
	if _, err := dec.Write(block); err != nil {
		t.Fatal(err)
	}
	type field struct {
		Name, Value string
		Sensitive   bool
	}
	var got []field
	for _, f := range fields {
		v := f.Value
		if len(v) > 20 {
			v = v[:3] + "..."
		}
		got = append(got, field{f.Name, v, f.Sensitive})
	}
	want := []field{
		{":status", "503", false},
		{"content-type", "text/plain", false},
		{"set-cookie", "id=1", true},
		{"authorization", "secret", true},
		{"x-long", "vvv...", true},
		{"content-length", "42", true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("encoded fields (-want +got):\n%s", diff)
	}
	// Indexed fields come back as one-byte references the second time.
	again := e.response(&l7.Response{Status: 503, Header: resp.Header}, false)
	if len(again) >= len(block) {
		t.Fatalf("second block %d bytes, first %d: nothing was indexed", len(again), len(block))
	}
}
