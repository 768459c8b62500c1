package dubbo

import (
	"bufio"
	"bytes"
	"testing"
	"time"

	hessian "github.com/apache/dubbo-go-hessian2"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// benchCall is a typical call: a service with a version and a group, a
// string, an int and a POJO as arguments, and the attachments a Java
// consumer sends.
func benchCall(b *testing.B) []byte {
	return refRequest(b, refCall{id: 1, path: "com.example.OrderService", iface: "com.example.OrderService",
		version: "1.0.0", group: "prod", method: "placeOrder", timeout: 3 * time.Second,
		args: []any{"customer-42", int32(3), sampleOrder()},
		attachments: map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
			"x-user": "alice", "remote.application": "checkout"}})
}

func BenchmarkParseHeader(b *testing.B) {
	frame := benchCall(b)
	b.ReportAllocs()
	b.SetBytes(HeaderLen)
	for b.Loop() {
		if _, err := ParseHeader(frame); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadFrame reads frames one after the other from a stream, as
// the connection manager does.
func BenchmarkReadFrame(b *testing.B) {
	frame := benchCall(b)
	stream := bytes.Repeat(frame, 64)
	src := bytes.NewReader(stream)
	r := NewReader(src, ReaderConfig{})
	defer r.Close()
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for i := 0; b.Loop(); i++ {
		if i%64 == 0 {
			src.Reset(stream)
		}
		f, err := r.Next()
		if err != nil {
			b.Fatal(err)
		}
		f.Release()
	}
}

// BenchmarkDecodeRequestPrefix decodes the body's prefix: version,
// service, method, descriptor.
func BenchmarkDecodeRequestPrefix(b *testing.B) {
	body := benchCall(b)[HeaderLen:]
	var inv Invocation
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := DecodeRequestPrefix(body, &inv); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeRequest decodes what routing and policy read: the prefix,
// the arguments skipped, the attachments.
func BenchmarkDecodeRequest(b *testing.B) {
	body := benchCall(b)[HeaderLen:]
	var inv Invocation
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := DecodeRequest(body, &inv); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFillRequest is DecodeRequest and the request model the filters
// see, as the connection manager runs them per call.
func BenchmarkFillRequest(b *testing.B) {
	body := benchCall(b)[HeaderLen:]
	var inv Invocation
	var req l7.Request
	var names Interner
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := DecodeRequest(body, &inv); err != nil {
			b.Fatal(err)
		}
		inv.FillRequest(&req, &names)
	}
}

// BenchmarkDecodeRequestReference is the reference: dubbo-go-hessian2
// decoding the same request (header, then the whole body into values).
func BenchmarkDecodeRequestReference(b *testing.B) {
	frame := benchCall(b)
	br := bytes.NewReader(frame)
	r := bufio.NewReaderSize(br, len(frame)+16)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame) - HeaderLen))
	for b.Loop() {
		br.Reset(frame)
		r.Reset(br)
		r.Peek(len(frame))
		codec := hessian.NewHessianCodec(r)
		var h hessian.DubboHeader
		if err := codec.ReadHeader(&h); err != nil {
			b.Fatal(err)
		}
		req := make([]any, 7)
		if err := codec.ReadBody(req); err != nil {
			b.Fatal(err)
		}
	}
}
