package dubbo

// Event is what an event frame (Header.Event) carries.
type Event uint8

// Events. A heartbeat request (two-way, body null) is answered with a
// heartbeat response by whoever receives it; neither is forwarded. A
// provider that shuts down sends its consumers a readonly event (a one-way
// request event whose body is the string "R"): it takes no new calls, so
// the proxy stops sending it any; Dubbo 3 sends "W" when it takes calls
// again.
const (
	EventHeartbeat Event = iota
	EventReadonly
	EventWriteable
	EventOther
)

// String names e.
func (e Event) String() string {
	switch e {
	case EventHeartbeat:
		return "heartbeat"
	case EventReadonly:
		return "readonly"
	case EventWriteable:
		return "writeable"
	}
	return "other event"
}

// DecodeEvent tells what the body of an event frame of serialization s
// carries. An empty body, or a null first value, is a heartbeat (Java
// compares the body with its serialization's null); only Hessian2 bodies
// are read further, for the readonly and writeable strings. Bytes after
// the first value are ignored (dubbo-go appends a null).
func DecodeEvent(s Serialization, body []byte) Event {
	if len(body) == 0 {
		return EventHeartbeat
	}
	if s != Hessian2 {
		if string(body) == "null" || string(body) == "null\n" {
			return EventHeartbeat
		}
		return EventOther
	}
	switch {
	case body[0] == 'N':
		return EventHeartbeat
	case len(body) >= 2 && body[0] == 0x01 && body[1] == 'R':
		return EventReadonly
	case len(body) >= 2 && body[0] == 0x01 && body[1] == 'W':
		return EventWriteable
	}
	return EventOther
}

// AppendHeartbeatRequest appends a heartbeat request: a two-way Hessian2
// event with a null body.
func AppendHeartbeatRequest(dst []byte, id uint64) []byte {
	dst = AppendHeader(dst, Header{Request: true, TwoWay: true, Event: true, Serialization: Hessian2, ID: id, BodyLen: 1})
	return append(dst, 'N')
}

// AppendHeartbeatResponse appends the answer to heartbeat request id: an
// OK Hessian2 event response with a null body. It is Hessian2 whatever the
// request's serialization: Java decodes a response by its own header's
// serialization id, and every Dubbo has Hessian2.
func AppendHeartbeatResponse(dst []byte, id uint64) []byte {
	dst = AppendHeader(dst, Header{Event: true, Serialization: Hessian2, Status: StatusOK, ID: id, BodyLen: 1})
	return append(dst, 'N')
}

// AppendReadonlyEvent appends the readonly event the proxy sends its
// consumers when it drains: a one-way Hessian2 request event whose body is
// "R".
func AppendReadonlyEvent(dst []byte, id uint64) []byte {
	dst = AppendHeader(dst, Header{Request: true, Event: true, Serialization: Hessian2, ID: id, BodyLen: 2})
	return append(dst, 0x01, 'R')
}
