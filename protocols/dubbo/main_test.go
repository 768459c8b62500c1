package dubbo

// The tests of this package open no socket.

import (
	"bufio"
	"bytes"
	"testing"
	"time"

	hessian "github.com/apache/dubbo-go-hessian2"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The reference encoder and decoder of these tests is
// github.com/apache/dubbo-go-hessian2 (its HessianCodec writes and reads
// whole Dubbo frames as dubbo-go does).

// refCall is a request for the reference encoder.
type refCall struct {
	id          int64
	oneWay      bool
	path, iface string
	version     string
	group       string
	method      string
	timeout     time.Duration
	args        []any
	attachments map[string]string
}

// refRequest encodes c with the reference codec.
func refRequest(t testing.TB, c refCall) []byte {
	t.Helper()
	typ := hessian.PackageRequest_TwoWay
	if c.oneWay {
		typ = hessian.PackageRequest
	}
	atts := map[string]string{}
	for k, v := range c.attachments {
		atts[k] = v
	}
	args := c.args
	if args == nil {
		args = []any{}
	}
	b, err := hessian.NewHessianCodec(nil).Write(
		hessian.Service{Path: c.path, Interface: c.iface, Version: c.version, Group: c.group, Method: c.method, Timeout: c.timeout},
		hessian.DubboHeader{SerialID: byte(Hessian2), Type: typ, ID: c.id},
		hessian.NewRequest(args, atts))
	if err != nil {
		t.Fatalf("reference encoder: %v", err)
	}
	return b
}

// refResponse encodes a response with the reference codec: status OK with
// value or exception, or another status with err's message.
func refResponse(t testing.TB, id int64, status Status, value any, exc error, atts map[string]string) []byte {
	t.Helper()
	b, err := hessian.NewHessianCodec(nil).Write(hessian.Service{},
		hessian.DubboHeader{SerialID: byte(Hessian2), Type: hessian.PackageResponse, ID: id, ResponseStatus: byte(status)},
		hessian.NewResponse(value, exc, atts))
	if err != nil {
		t.Fatalf("reference encoder: %v", err)
	}
	return b
}

// refHeartbeat encodes a heartbeat request (response false) or response.
func refHeartbeat(t testing.TB, id int64, response bool) []byte {
	t.Helper()
	h := hessian.DubboHeader{SerialID: byte(Hessian2), Type: hessian.PackageHeartbeat, ID: id}
	var body any = []any{}
	if response {
		h.ResponseStatus = byte(StatusOK)
		body = nil
	}
	b, err := hessian.NewHessianCodec(nil).Write(hessian.Service{}, h, body)
	if err != nil {
		t.Fatalf("reference encoder: %v", err)
	}
	return b
}

// refFrame is a frame as the reference decodes it.
type refFrame struct {
	header hessian.DubboHeader
	// request is the decoded request body: dubbo version, path, service
	// version, method, descriptor, []any args, map[string]string
	// attachments.
	request []any
	// response is the decoded response.
	response *hessian.Response
}

// refCodec returns a reference codec that has read frame's header.
func refCodec(t testing.TB, frame []byte) (*hessian.HessianCodec, hessian.DubboHeader) {
	t.Helper()
	// ReadHeader needs the whole frame buffered: fill the reader first.
	r := bufio.NewReaderSize(bytes.NewReader(frame), len(frame)+16)
	r.Peek(len(frame))
	codec := hessian.NewHessianCodec(r)
	var h hessian.DubboHeader
	if err := codec.ReadHeader(&h); err != nil {
		t.Fatalf("reference header decoder: %v", err)
	}
	return codec, h
}

// refDecode decodes one whole frame with the reference codec.
func refDecode(t testing.TB, frame []byte) refFrame {
	t.Helper()
	var f refFrame
	codec, h := refCodec(t, frame)
	f.header = h
	switch {
	case f.header.Type&hessian.PackageHeartbeat != 0:
		if err := codec.ReadBody(nil); err != nil {
			t.Fatalf("reference body decoder: %v", err)
		}
	case f.header.Type&hessian.PackageRequest != 0:
		f.request = make([]any, 7)
		if err := codec.ReadBody(f.request); err != nil {
			t.Fatalf("reference body decoder: %v", err)
		}
	default:
		f.response = &hessian.Response{}
		if err := codec.ReadBody(f.response); err != nil {
			t.Fatalf("reference body decoder: %v", err)
		}
	}
	return f
}
