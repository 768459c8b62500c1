package dubbo

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	hessian "github.com/apache/dubbo-go-hessian2"
)

// FuzzHeader feeds arbitrary bytes to the header codec and the frame
// reader. Nothing may panic; ParseHeader fails only on a bad magic and
// AppendHeader writes back the bytes it parsed; the reference decoder
// reads the same fields; the Reader, fed byte by byte or whole, cuts the
// input into the same frames, each exactly a slice of the input, and ends
// with io.EOF at a frame boundary or a *FrameError. The seed corpus is in
// testdata/fuzz/FuzzHeader, besides the seeds added here.
func FuzzHeader(f *testing.F) {
	seeds := [][]byte{
		refRequest(f, refCall{id: 1, path: "com.example.Greeter", version: "1.0.0", method: "hello", args: []any{"alice"}}),
		refRequest(f, refCall{id: 2, oneWay: true, path: "p", method: "m"}),
		refHeartbeat(f, 3, false), refHeartbeat(f, 3, true),
		refResponse(f, 4, StatusOK, "hi", nil, nil),
		refResponse(f, 5, StatusServerThreadpoolExhausted, nil, errors.New("busy"), nil),
		AppendReadonlyEvent(nil, 6),
		AppendHeader(nil, Header{Request: true, TwoWay: true, Serialization: Kryo, ID: 7, BodyLen: 1 << 30}),
		[]byte("GET / HTTP/1.1\r\n\r\n"),
		{0xda}, {0xda, 0xbb, 0xc2},
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Add(append(refHeartbeat(f, 8, false), refRequest(f, refCall{id: 9, path: "p", method: "m"})...))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) >= HeaderLen {
			h, err := ParseHeader(data)
			if IsDubbo(data) != (err == nil) {
				t.Fatalf("ParseHeader = %v for magic % x", err, data[:2])
			}
			if err == nil {
				if re := AppendHeader(nil, h); !bytes.Equal(re, data[:HeaderLen]) {
					t.Fatalf("AppendHeader(ParseHeader(% x)) = % x", data[:HeaderLen], re)
				}
				compareReference(t, data, h)
			} else if !errors.Is(err, ErrBadMagic) {
				t.Fatalf("ParseHeader: %v", err)
			}
		}
		const limit = 1 << 16
		whole := readAll(t, bytes.NewReader(data), limit)
		bytewise := readAll(t, iotest.OneByteReader(bytes.NewReader(data)), limit)
		if len(whole.frames) != len(bytewise.frames) || whole.err != bytewise.err {
			t.Fatalf("whole: %d frames, %v; byte by byte: %d frames, %v", len(whole.frames), whole.err, len(bytewise.frames), bytewise.err)
		}
		off := 0
		for i, fr := range whole.frames {
			if !bytes.Equal(fr, bytewise.frames[i]) {
				t.Fatalf("frame %d differs between the two reads", i)
			}
			// Skipped bodies over the limit come first: find the frame.
			j := bytes.Index(data[off:], fr)
			if j < 0 {
				t.Fatalf("frame %d is not in the input", i)
			}
			off += j + len(fr)
		}
	})
}

type readResult struct {
	frames [][]byte
	err    string
}

// readAll reads every frame of r; a body over limit is skipped, as the
// connection manager goes on after answering it.
func readAll(t *testing.T, r io.Reader, limit int) readResult {
	rd := NewReader(r, ReaderConfig{MaxBodyBytes: limit, ReadBufferSize: minReadBufferSize})
	defer rd.Close()
	var res readResult
	for {
		f, err := rd.Next()
		if err == nil {
			if len(f.Raw) != HeaderLen+f.Header.BodyLen || f.Header.BodyLen > limit {
				t.Fatalf("a frame of %d bytes for a header saying %d", len(f.Raw), f.Header.BodyLen)
			}
			res.frames = append(res.frames, append([]byte(nil), f.Raw...))
			f.Release()
			continue
		}
		var fe *FrameError
		switch {
		case err == io.EOF:
		case errors.As(err, &fe) && errors.Is(err, ErrTooLarge):
			continue
		case errors.As(err, &fe):
		default:
			t.Fatalf("Next: %v is neither io.EOF nor a *FrameError", err)
		}
		res.err = err.Error()
		return res
	}
}

// compareReference checks that the reference decoder reads h from data's
// first 16 bytes. It needs the whole body buffered, and refuses
// serialization id 0; its magic check lets some bad magics through.
func compareReference(t *testing.T, data []byte, h Header) {
	if h.Serialization == 0 {
		return
	}
	hdr := append([]byte(nil), data[:HeaderLen]...)
	binary.BigEndian.PutUint32(hdr[12:], 0) // no body: the reference checks it is buffered
	r := bufio.NewReaderSize(bytes.NewReader(hdr), 64)
	r.Peek(HeaderLen)
	var rh hessian.DubboHeader
	if err := hessian.NewHessianCodec(r).ReadHeader(&rh); err != nil {
		t.Fatalf("the reference refused % x: %v", hdr, err)
	}
	if rh.SerialID != byte(h.Serialization) || uint64(rh.ID) != h.ID {
		t.Fatalf("the reference read serialization %d id %d, we %d %d", rh.SerialID, rh.ID, h.Serialization, h.ID)
	}
	if got := rh.Type&hessian.PackageHeartbeat != 0; got != h.Event {
		t.Fatalf("event: the reference %v, we %v", got, h.Event)
	}
	if got := rh.Type&hessian.PackageRequest != 0; got != h.Request {
		t.Fatalf("request: the reference %v, we %v", got, h.Request)
	}
	if h.Request {
		if got := rh.Type&hessian.PackageRequest_TwoWay != 0; got != h.TwoWay {
			t.Fatalf("two-way: the reference %v, we %v", got, h.TwoWay)
		}
	} else if rh.ResponseStatus != byte(h.Status) {
		t.Fatalf("status: the reference %d, we %d", rh.ResponseStatus, h.Status)
	}
}

// FuzzDecodeRequest feeds arbitrary bodies to the request decoder:
// nothing may panic, errors are *BodyErrors, and a body that decodes is
// written back by AppendFrame byte for byte and decodes the same again.
func FuzzDecodeRequest(f *testing.F) {
	for _, c := range calls() {
		if b := refRequest(f, c)[HeaderLen:]; len(b) <= 4096 { // large seeds slow the fuzzer down
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var inv Invocation
		err := DecodeRequest(body, &inv)
		if err != nil {
			var be *BodyError
			if !errors.As(err, &be) {
				t.Fatalf("DecodeRequest: %v is not a *BodyError", err)
			}
			return
		}
		frame := inv.AppendFrame(nil, Header{Request: true, TwoWay: true, Serialization: Hessian2}, inv.Attachments)
		if inv.atts.mapStart != nil && !bytes.HasPrefix(body, frame[HeaderLen:]) {
			t.Fatal("AppendFrame did not write the body back as it came")
		}
		var again Invocation
		if err := DecodeRequest(frame[HeaderLen:], &again); err != nil {
			t.Fatalf("the re-encoded body does not decode: %v", err)
		}
		if string(again.Method) != string(inv.Method) || len(again.Attachments) != len(inv.Attachments) || again.NumArgs != inv.NumArgs {
			t.Fatal("the re-encoded body decodes differently")
		}
		for i := range min(inv.NumArgs, 8) + 1 {
			inv.Arg(i, nil)
		}
	})
}
