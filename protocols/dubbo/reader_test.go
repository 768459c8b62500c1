package dubbo

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// stream is a few frames one after the other, as a consumer sends them.
func stream(t *testing.T) [][]byte {
	big := strings.Repeat("x", 100<<10) // over the read buffer
	return [][]byte{
		refRequest(t, refCall{id: 1, path: "com.example.Greeter", version: "1.0.0", method: "hello", args: []any{"alice"}}),
		refHeartbeat(t, 2, false),
		refRequest(t, refCall{id: 3, oneWay: true, path: "com.example.Greeter", method: "fire", args: []any{int32(1)}}),
		refRequest(t, refCall{id: 4, path: "com.example.Greeter", method: "echo", args: []any{big}}),
		refResponse(t, 5, StatusOK, "hi", nil, map[string]string{"dubbo": "2.0.2"}),
	}
}

func TestReaderFrames(t *testing.T) {
	frames := stream(t)
	all := bytes.Join(frames, nil)
	readers := map[string]func() io.Reader{
		"whole":                 func() io.Reader { return bytes.NewReader(all) },
		"one byte":              func() io.Reader { return iotest.OneByteReader(bytes.NewReader(all)) },
		"halves":                func() io.Reader { return iotest.HalfReader(bytes.NewReader(all)) },
		"data and EOF together": func() io.Reader { return iotest.DataErrReader(bytes.NewReader(all)) },
	}
	for _, size := range []int{0, minReadBufferSize} {
		for name, src := range readers {
			t.Run(name, func(t *testing.T) {
				r := NewReader(src(), ReaderConfig{ReadBufferSize: size})
				defer r.Close()
				for i, want := range frames {
					f, err := r.Next()
					if err != nil {
						t.Fatalf("frame %d: %v", i, err)
					}
					if !bytes.Equal(f.Raw, want) {
						t.Fatalf("frame %d: %d bytes differ from the %d sent", i, len(f.Raw), len(want))
					}
					h, _ := ParseHeader(want)
					if f.Header != h || len(f.Body()) != h.BodyLen {
						t.Fatalf("frame %d: header %+v, want %+v", i, f.Header, h)
					}
					f.Release()
				}
				if _, err := r.Next(); err != io.EOF {
					t.Fatalf("after the last frame: %v, want io.EOF", err)
				}
				if _, err := r.Next(); err != io.EOF {
					t.Fatalf("again: %v, want io.EOF", err)
				}
			})
		}
	}
}

func TestReaderRefusals(t *testing.T) {
	req := refRequest(t, refCall{id: 42, path: "com.example.Greeter", method: "hello", args: []any{"alice"}})
	next := refRequest(t, refCall{id: 43, path: "com.example.Greeter", method: "hello", args: []any{"bob"}})
	h, _ := ParseHeader(req)
	cases := []struct {
		name    string
		in      []byte
		cfg     ReaderConfig
		want    error
		header  bool // the error carries the header
		offset  int64
		discard int
		after   []byte // the frame Next returns after the error; nil: the error sticks
	}{
		{"bad magic", append([]byte("GET / HTTP/1.1\r\n"), req...), ReaderConfig{}, ErrBadMagic, false, 0, 0, nil},
		{"bad magic after a frame", append(append([]byte{}, req...), 0xda, 0xba), ReaderConfig{}, ErrBadMagic, false, int64(len(req)), 0, nil},
		{"one byte of a header", req[:1], ReaderConfig{}, io.ErrUnexpectedEOF, false, 0, 0, nil},
		{"half a header", req[:10], ReaderConfig{}, io.ErrUnexpectedEOF, false, 0, 0, nil},
		{"truncated body", req[:len(req)-1], ReaderConfig{}, io.ErrUnexpectedEOF, true, 0, 0, nil},
		{"truncated large body", req[:len(req)-1], ReaderConfig{ReadBufferSize: minReadBufferSize}, io.ErrUnexpectedEOF, true, 0, 0, nil},
		{"body over the limit", append(append([]byte{}, req...), next...), ReaderConfig{MaxBodyBytes: h.BodyLen - 1},
			ErrTooLarge, true, 0, h.BodyLen, next},
		{"body over the limit, small buffer", append(append([]byte{}, req...), next...),
			ReaderConfig{MaxBodyBytes: h.BodyLen - 1, ReadBufferSize: minReadBufferSize}, ErrTooLarge, true, 0, h.BodyLen, next},
		{"length over 2 GiB", append(AppendHeader(nil, Header{Request: true, TwoWay: true, Serialization: Hessian2, ID: 42, BodyLen: 1<<32 - 1}), 'N'),
			ReaderConfig{}, ErrTooLarge, true, 0, 1<<32 - 1, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := NewReader(iotest.HalfReader(bytes.NewReader(c.in)), c.cfg)
			defer r.Close()
			if c.offset > 0 {
				f, err := r.Next()
				if err != nil {
					t.Fatal(err)
				}
				f.Release()
			}
			_, err := r.Next()
			var fe *FrameError
			if !errors.Is(err, c.want) || !errors.As(err, &fe) {
				t.Fatalf("Next = %v, want a *FrameError of %v", err, c.want)
			}
			if fe.HasHeader != c.header || (c.header && fe.Header.ID != 42) {
				t.Fatalf("header %v %+v, want it %v with id 42", fe.HasHeader, fe.Header, c.header)
			}
			if fe.Offset != c.offset || fe.Discard != c.discard {
				t.Fatalf("offset %d discard %d, want %d and %d", fe.Offset, fe.Discard, c.offset, c.discard)
			}
			f, err2 := r.Next()
			switch {
			case c.after != nil && err2 != nil:
				t.Fatalf("after the refused frame: %v", err2)
			case c.after != nil && !bytes.Equal(f.Raw, c.after):
				t.Fatal("after the refused frame: not the next frame")
			case c.after == nil && c.want == ErrTooLarge && !errors.Is(err2, io.ErrUnexpectedEOF):
				t.Fatalf("after a refused body cut short: %v", err2)
			case c.after == nil && c.want != ErrTooLarge && err2 != err:
				t.Fatalf("the error did not stick: %v", err2)
			}
			if f != nil {
				f.Release()
			}
		})
	}
}

func TestReaderSourceError(t *testing.T) {
	boom := errors.New("connection reset")
	req := refRequest(t, refCall{id: 1, path: "p", method: "m"})
	r := NewReader(io.MultiReader(bytes.NewReader(req[:20]), iotest.ErrReader(boom)), ReaderConfig{})
	defer r.Close()
	if _, err := r.Next(); err != boom {
		t.Fatalf("Next = %v, want the source's error", err)
	}
}

func TestFrameErrorText(t *testing.T) {
	e := &FrameError{Err: ErrTooLarge, HasHeader: true, Header: Header{ID: 9, BodyLen: 100}, Offset: 32, Detail: "limit 10 bytes"}
	want := "dubbo: frame at byte 32: body over the size limit (request id 9, body 100 bytes): limit 10 bytes"
	if e.Error() != want {
		t.Fatalf("%q, want %q", e.Error(), want)
	}
}

func TestFramePoolTiers(t *testing.T) {
	for _, n := range []int{HeaderLen, 256, 257, 5000, DefaultMaxBodyBytes + HeaderLen, DefaultMaxBodyBytes + HeaderLen + 1} {
		f := getFrame(n)
		if len(f.Raw) != n || cap(f.Raw) != n {
			t.Fatalf("getFrame(%d): len %d cap %d", n, len(f.Raw), cap(f.Raw))
		}
		f.Release()
	}
}
