package dubbo

import (
	"errors"
	"math"
	"testing"

	hessian "github.com/apache/dubbo-go-hessian2"
	"github.com/google/go-cmp/cmp"
)

func TestParseHeaderReferenceFrames(t *testing.T) {
	cases := []struct {
		name  string
		frame []byte
		want  Header
	}{
		{"two-way request", refRequest(t, refCall{id: 7, path: "com.example.Greeter", method: "hello", args: []any{"x"}}),
			Header{Request: true, TwoWay: true, Serialization: Hessian2, ID: 7}},
		{"one-way request", refRequest(t, refCall{id: 8, oneWay: true, path: "com.example.Greeter", method: "fire"}),
			Header{Request: true, Serialization: Hessian2, ID: 8}},
		{"largest id", refRequest(t, refCall{id: math.MaxInt64, path: "p", method: "m"}),
			Header{Request: true, TwoWay: true, Serialization: Hessian2, ID: math.MaxInt64}},
		{"heartbeat request", refHeartbeat(t, 9, false),
			Header{Request: true, TwoWay: true, Event: true, Serialization: Hessian2, ID: 9}},
		{"heartbeat response", refHeartbeat(t, 9, true),
			Header{Event: true, Serialization: Hessian2, Status: StatusOK, ID: 9}},
		{"OK response", refResponse(t, 10, StatusOK, "hi", nil, nil),
			Header{Serialization: Hessian2, Status: StatusOK, ID: 10}},
		{"error response", refResponse(t, 11, StatusServiceNotFound, nil, errors.New("no such service"), nil),
			Header{Serialization: Hessian2, Status: StatusServiceNotFound, ID: 11}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.want.BodyLen = len(c.frame) - HeaderLen
			got, err := ParseHeader(c.frame)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Fatalf("header (-want +got):\n%s", diff)
			}
			if re := AppendHeader(nil, got); string(re) != string(c.frame[:HeaderLen]) {
				t.Fatalf("AppendHeader = % x, the reference wrote % x", re, c.frame[:HeaderLen])
			}
			if FrameID(c.frame) != c.want.ID {
				t.Fatalf("FrameID = %d", FrameID(c.frame))
			}
		})
	}
}

func TestAppendHeaderReadByReference(t *testing.T) {
	cases := []struct {
		name     string
		h        Header
		wantType hessian.PackageType
	}{
		{"two-way request", Header{Request: true, TwoWay: true, Serialization: Hessian2, ID: 1},
			hessian.PackageRequest | hessian.PackageRequest_TwoWay},
		{"one-way request", Header{Request: true, Serialization: Hessian2, ID: 2}, hessian.PackageRequest},
		{"heartbeat", Header{Request: true, TwoWay: true, Event: true, Serialization: Hessian2, ID: 3},
			hessian.PackageRequest | hessian.PackageRequest_TwoWay | hessian.PackageHeartbeat},
		{"response", Header{Serialization: Hessian2, Status: StatusOK, ID: 4}, hessian.PackageResponse},
		{"error response", Header{Serialization: Hessian2, Status: StatusServerError, ID: 5},
			hessian.PackageResponse | hessian.PackageResponse_Exception},
		{"kryo", Header{Request: true, TwoWay: true, Serialization: Kryo, ID: 6},
			hessian.PackageRequest | hessian.PackageRequest_TwoWay},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.h.BodyLen = 1
			frame := append(AppendHeader(nil, c.h), 'N')
			_, got := refCodec(t, frame)
			want := hessian.DubboHeader{SerialID: byte(c.h.Serialization), Type: c.wantType, ID: int64(c.h.ID), BodyLen: 1}
			if !c.h.Request {
				want.ResponseStatus = byte(c.h.Status)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("the reference read (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseHeaderErrors(t *testing.T) {
	good := AppendHeader(nil, Header{Request: true, TwoWay: true, Serialization: Hessian2, ID: 1})
	if _, err := ParseHeader(good[:HeaderLen-1]); err == nil {
		t.Fatal("a 15-byte header parsed")
	}
	bad := append([]byte{0xda, 0xbc}, good[2:]...)
	_, err := ParseHeader(bad)
	if !errors.Is(err, ErrBadMagic) {
		t.Fatalf("bad magic: %v", err)
	}
	if want := "dubbo: frame at byte 0: bad magic number: bytes 0xdabc"; err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
}

func TestHeaderFieldsInPlace(t *testing.T) {
	frame := AppendHeader(nil, Header{Request: true, TwoWay: true, Serialization: Hessian2, ID: 1, BodyLen: 0})
	SetID(frame, 0x0102030405060708)
	h, err := ParseHeader(frame)
	if err != nil || h.ID != 0x0102030405060708 || !h.Request || !h.TwoWay {
		t.Fatalf("after SetID: %+v, %v", h, err)
	}
	setBodyLen(frame, 1<<20)
	if h, _ := ParseHeader(frame); h.BodyLen != 1<<20 {
		t.Fatalf("body length %d", h.BodyLen)
	}
	if !IsDubbo(frame) || IsDubbo(frame[:1]) || IsDubbo([]byte("GET /")) {
		t.Fatal("IsDubbo")
	}
}

func TestStatusAndSerializationNames(t *testing.T) {
	for s, want := range map[Status]string{StatusOK: "OK", StatusServiceNotFound: "SERVICE_NOT_FOUND",
		StatusServerThreadpoolExhausted: "SERVER_THREADPOOL_EXHAUSTED_ERROR", 21: "status 21"} {
		if s.String() != want {
			t.Errorf("Status(%d) = %q, want %q", s, s, want)
		}
	}
	valid := 0
	for s := range 256 {
		if Status(s).Valid() {
			valid++
		}
	}
	if valid != 10 {
		t.Errorf("%d valid statuses, want 10", valid)
	}
	if Hessian2.String() != "hessian2" || Serialization(30).String() != "serialization 30" {
		t.Error("serialization names")
	}
}
