package sniff

import (
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// oneByte delivers its input one byte per Read, as a slow peer would.
type oneByte struct{ b []byte }

func (o *oneByte) Read(p []byte) (int, error) {
	if len(o.b) == 0 {
		return 0, io.EOF
	}
	p[0] = o.b[0]
	o.b = o.b[1:]
	return 1, nil
}

func TestDetect(t *testing.T) {
	cases := []struct {
		name, in string
		want     Protocol
		wantRead int // bytes consumed when decided; -1: all of the input
	}{
		{"h2 preface", Preface + "\x00\x00\x00\x04", HTTP2, len(Preface)},
		{"GET", "GET /x HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1, len("GET /x HTTP/1.1\r\n")},
		{"POST 1.0", "POST / HTTP/1.0\r\n", HTTP1, -1},
		{"custom method", "PURGE /cache HTTP/1.1\r\n", HTTP1, -1},
		{"PRI as a method is not the preface", "PRI /x HTTP/1.1\r\n", HTTP1, -1},
		{"dubbo magic", "\xda\xbb\xc2\x00", Dubbo, 2},
		{"TLS client hello", "\x16\x03\x01\x02\x00", TCP, 1},
		{"lower-case method", "get / HTTP/1.1\r\n", TCP, 1},
		{"HTTP/2.0 request line", "GET / HTTP/2.0\r\n", TCP, -1},
		{"bare LF request line", "GET / HTTP/1.1\n", TCP, -1},
		{"binary", "\x00\x01\x02", TCP, 1},
		{"redis", "*1\r\n$4\r\nPING\r\n", TCP, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			buf := make([]byte, MaxBytes)
			p, n, err := Detect(&oneByte{[]byte(c.in)}, buf, time.Second)
			if err != nil && err != io.EOF {
				t.Fatal(err)
			}
			want := c.wantRead
			if want < 0 {
				want = len(c.in)
			}
			if p != c.want || n != want {
				t.Errorf("Detect = %v after %d bytes, want %v after %d", p, n, c.want, want)
			}
			if string(buf[:n]) != c.in[:n] {
				t.Errorf("returned bytes %q are not the input's start", buf[:n])
			}
		})
	}
}

func TestDetectGivesUpOnLongTokens(t *testing.T) {
	in := make([]byte, 100)
	for i := range in {
		in[i] = 'A'
	}
	p, n, _ := Detect(&oneByte{in}, make([]byte, MaxBytes), time.Second)
	if p != TCP || n > 40 {
		t.Fatalf("Detect = %v after %d bytes, want TCP soon", p, n)
	}
}

func TestDetectTimesOutToTCPForServerFirstProtocols(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	p, n, err := Detect(server, make([]byte, MaxBytes), 50*time.Millisecond)
	if p != TCP || n != 0 || err != nil {
		t.Fatalf("Detect on a silent peer = %v, %d, %v; want TCP, 0, nil", p, n, err)
	}
	// The deadline is cleared: a later read waits for data.
	go client.Write([]byte("hello"))
	b := make([]byte, 5)
	if _, err := io.ReadFull(server, b); err != nil {
		t.Fatalf("read after Detect: %v", err)
	}
}
