package dubbo

import (
	"errors"
	"strings"
	"testing"

	hessian "github.com/apache/dubbo-go-hessian2"
	"github.com/apache/dubbo-go-hessian2/java_exception"
)

func TestDecodeResponseMatchesReference(t *testing.T) {
	withAtts := map[string]string{"dubbo": "2.0.2", "x-served-by": "pod-a"}
	cases := []struct {
		name   string
		frame  []byte
		flag   ResponseFlag
		value  bool
		atts   map[string]string
		errMsg string
	}{
		{"value", refResponse(t, 1, StatusOK, "hello", nil, nil), FlagValue, true, nil, ""},
		{"null", refResponse(t, 2, StatusOK, nil, nil, nil), FlagNull, false, nil, ""},
		{"object", refResponse(t, 3, StatusOK, sampleOrder(), nil, nil), FlagValue, true, nil, ""},
		{"exception", refResponse(t, 4, StatusOK, nil, java_exception.NewThrowable("boom"), nil), FlagException, true, nil, ""},
		{"value with attachments", refResponse(t, 5, StatusOK, int32(7), nil, withAtts), FlagValueWithAttachments, true, withAtts, ""},
		{"null with attachments", refResponse(t, 6, StatusOK, nil, nil, withAtts), FlagNullWithAttachments, false, withAtts, ""},
		{"exception with attachments", refResponse(t, 7, StatusOK, nil, java_exception.NewThrowable("boom"), withAtts),
			FlagExceptionWithAttachments, true, withAtts, ""},
		{"error status", refResponse(t, 8, StatusServiceNotFound, nil, errors.New("no provider"), nil), 0, false, nil, "no provider"},
		{"threadpool exhausted", refResponse(t, 9, StatusServerThreadpoolExhausted, nil, errors.New("busy"), nil), 0, false, nil, "busy"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, _ := ParseHeader(c.frame)
			var ri ResponseInfo
			if err := DecodeResponse(h.Status, c.frame[HeaderLen:], &ri); err != nil {
				t.Fatal(err)
			}
			if string(ri.ErrorMessage) != c.errMsg {
				t.Fatalf("error message %q, want %q", ri.ErrorMessage, c.errMsg)
			}
			if h.Status != StatusOK {
				return
			}
			if ri.Flag != c.flag || (ri.ValueEnd > ri.ValueStart) != c.value {
				t.Fatalf("flag %v value [%d,%d), want %v and a value %v", ri.Flag, ri.ValueStart, ri.ValueEnd, c.flag, c.value)
			}
			if len(ri.Attachments) != len(c.atts) {
				t.Fatalf("%d attachments, want %d", len(ri.Attachments), len(c.atts))
			}
			for k, v := range c.atts {
				if got, ok := ri.Attachment(k); !ok || string(got) != v {
					t.Fatalf("attachment %q = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestDecodeResponseRefusals(t *testing.T) {
	for name, body := range map[string][]byte{
		"empty":            nil,
		"flag not an int":  {0x01, 'x'},
		"unknown flag":     {0x96},
		"value missing":    {0x91},
		"attachments gone": {0x94, 0x90},
		"bad attachments":  {0x94, 0x90, 'H', 0x01, 'a'},
	} {
		var ri ResponseInfo
		var be *BodyError
		if err := DecodeResponse(StatusOK, body, &ri); !errors.As(err, &be) {
			t.Errorf("%s: %v, want a *BodyError", name, err)
		}
	}
	var ri ResponseInfo
	if err := DecodeResponse(StatusServerError, []byte{0x90}, &ri); err == nil {
		t.Error("an error status with an int for a message decoded")
	}
	if err := DecodeResponse(StatusServerError, []byte{'N'}, &ri); err != nil || ri.ErrorMessage != nil {
		t.Errorf("an error status with a null message: %v %q", err, ri.ErrorMessage)
	}
}

func TestAppendErrorResponseReadByReference(t *testing.T) {
	msg := "waypoint: no route for com.example.Greeter/hello (" + strings.Repeat("é", 10) + ")"
	frame := AppendErrorResponse(nil, 77, StatusServiceNotFound, msg)
	f := refDecode(t, frame)
	if f.header.ID != 77 || f.header.ResponseStatus != byte(StatusServiceNotFound) || f.header.Type&hessian.PackageResponse_Exception == 0 {
		t.Fatalf("header %+v", f.header)
	}
	if f.response.Exception == nil || !strings.Contains(f.response.Exception.Error(), msg) {
		t.Fatalf("the reference read %v", f.response.Exception)
	}
	var ri ResponseInfo
	if err := DecodeResponse(StatusServiceNotFound, frame[HeaderLen:], &ri); err != nil || string(ri.ErrorMessage) != msg {
		t.Fatalf("read back %q, %v", ri.ErrorMessage, err)
	}
}

func TestEvents(t *testing.T) {
	cases := []struct {
		name  string
		frame []byte
		want  Event
	}{
		{"reference heartbeat request", refHeartbeat(t, 1, false), EventHeartbeat},
		{"reference heartbeat response", refHeartbeat(t, 1, true), EventHeartbeat},
		{"our heartbeat request", AppendHeartbeatRequest(nil, 2), EventHeartbeat},
		{"our heartbeat response", AppendHeartbeatResponse(nil, 2), EventHeartbeat},
		{"readonly", AppendReadonlyEvent(nil, 3), EventReadonly},
		{"writeable", append(AppendHeader(nil, Header{Request: true, Event: true, Serialization: Hessian2, BodyLen: 2}), 0x01, 'W'), EventWriteable},
		{"empty body", AppendHeader(nil, Header{Request: true, Event: true, Serialization: Hessian2}), EventHeartbeat},
		{"something else", append(AppendHeader(nil, Header{Request: true, Event: true, Serialization: Hessian2, BodyLen: 1}), 0x90), EventOther},
		{"fastjson null", append(AppendHeader(nil, Header{Request: true, Event: true, Serialization: FastJSON, BodyLen: 5}), "null\n"...), EventHeartbeat},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, err := ParseHeader(c.frame)
			if err != nil || !h.Event {
				t.Fatalf("%+v %v", h, err)
			}
			if got := DecodeEvent(h.Serialization, c.frame[HeaderLen:]); got != c.want {
				t.Fatalf("DecodeEvent = %v, want %v", got, c.want)
			}
		})
	}
	// The reference reads ours as heartbeats.
	for _, frame := range [][]byte{AppendHeartbeatRequest(nil, 5), AppendHeartbeatResponse(nil, 5)} {
		f := refDecode(t, frame)
		if f.header.Type&hessian.PackageHeartbeat == 0 || f.header.ID != 5 {
			t.Fatalf("the reference read %+v", f.header)
		}
	}
	if EventReadonly.String() != "readonly" || Event(9).String() != "other event" {
		t.Fatal("event names")
	}
}

func TestResponseFlagNames(t *testing.T) {
	if FlagValueWithAttachments.String() != "RESPONSE_VALUE_WITH_ATTACHMENTS" || ResponseFlag(9).String() != "response flag 9" {
		t.Fatal("flag names")
	}
	if !FlagExceptionWithAttachments.IsException() || FlagNull.HasValue() || !FlagNullWithAttachments.HasAttachments() {
		t.Fatal("flag predicates")
	}
}

func TestAppendNullResponseReadByReference(t *testing.T) {
	frame := AppendNullResponse(nil, 3)
	f := refDecode(t, frame)
	if f.header.ID != 3 || f.header.ResponseStatus != byte(StatusOK) || f.response.RspObj != nil || f.response.Exception != nil {
		t.Fatalf("the reference read %+v %+v", f.header, f.response)
	}
	var ri ResponseInfo
	if err := DecodeResponse(StatusOK, frame[HeaderLen:], &ri); err != nil || ri.Flag != FlagNull {
		t.Fatalf("read back %v %v", ri.Flag, err)
	}
}
