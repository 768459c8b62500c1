package dubbo

import (
	"encoding/binary"
	"strconv"
)

// HeaderLen is the size of a frame header.
const HeaderLen = 16

// Magic is the number every frame starts with.
const Magic = 0xdabb

// Bits of the flag byte (the third of a header).
const (
	flagRequest       = 0x80
	flagTwoWay        = 0x40
	flagEvent         = 0x20
	serializationMask = 0x1f
)

// Header is a frame header: magic (2 bytes), flags (request, two-way,
// event, and the serialization id in the low 5 bits), status (responses
// only), request id (8 bytes) and body length (4 bytes), big-endian.
type Header struct {
	// Request is set on requests (and on events sent as requests:
	// heartbeats, readonly); responses have it clear.
	Request bool
	// TwoWay is set on requests that expect a response; a one-way
	// request gets none.
	TwoWay bool
	// Event marks heartbeats and other events, answered by each hop
	// rather than forwarded.
	Event bool
	// Serialization is the serialization of the body.
	Serialization Serialization
	// Status is a response's status; requests carry 0.
	Status Status
	// ID matches a response to its request.
	ID uint64
	// BodyLen is the length of the body that follows the header.
	BodyLen int
}

// ParseHeader parses the header at the start of b, which must hold
// HeaderLen bytes. It fails only on a short input or a bad magic number:
// any flags, status and length are returned as they are, for the caller
// to judge (see Status.Valid and the Reader's body limit).
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, errShortHeader
	}
	if b[0] != Magic>>8 || b[1] != Magic&0xff {
		return Header{}, &FrameError{Err: ErrBadMagic, Detail: "bytes 0x" + hex2(b[0], b[1])}
	}
	f := b[2]
	return Header{
		Request:       f&flagRequest != 0,
		TwoWay:        f&flagTwoWay != 0,
		Event:         f&flagEvent != 0,
		Serialization: Serialization(f & serializationMask),
		Status:        Status(b[3]),
		ID:            binary.BigEndian.Uint64(b[4:]),
		BodyLen:       int(binary.BigEndian.Uint32(b[12:])),
	}, nil
}

// AppendHeader appends h, encoded. BodyLen must fit in 32 bits and
// Serialization in 5; the status byte is written for requests too.
func AppendHeader(dst []byte, h Header) []byte {
	f := byte(h.Serialization) & serializationMask
	if h.Request {
		f |= flagRequest
	}
	if h.TwoWay {
		f |= flagTwoWay
	}
	if h.Event {
		f |= flagEvent
	}
	dst = append(dst, Magic>>8, Magic&0xff, f, byte(h.Status))
	dst = binary.BigEndian.AppendUint64(dst, h.ID)
	return binary.BigEndian.AppendUint32(dst, uint32(h.BodyLen))
}

// SetID sets the request id of the frame (or header) at the start of
// frame, in place: how a proxy remaps ids between a downstream and a
// shared upstream connection.
func SetID(frame []byte, id uint64) { binary.BigEndian.PutUint64(frame[4:12], id) }

// FrameID returns the request id of the frame at the start of frame,
// which must hold a header.
func FrameID(frame []byte) uint64 { return binary.BigEndian.Uint64(frame[4:12]) }

// setBodyLen sets the body length of the frame at the start of frame.
func setBodyLen(frame []byte, n int) { binary.BigEndian.PutUint32(frame[12:16], uint32(n)) }

// IsDubbo reports whether a connection's first bytes are Dubbo's: the
// magic number. It needs two bytes.
func IsDubbo(prefix []byte) bool {
	return len(prefix) >= 2 && prefix[0] == Magic>>8 && prefix[1] == Magic&0xff
}

func hex2(a, b byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[a>>4], digits[a&15], digits[b>>4], digits[b&15]})
}

func itoa(n int) string { return strconv.Itoa(n) }
