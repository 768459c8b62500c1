package dubbo

import "github.com/gowaypoint/waypoint/protocols/dubbo/hessian2"

// ResponseFlag is the first value of an OK response's body: what follows.
type ResponseFlag uint8

// Response flags, as Dubbo's DubboCodec writes them. The WithAttachments
// forms (Dubbo 2.0.2 and later) end with an attachments map.
const (
	FlagException                ResponseFlag = 0
	FlagValue                    ResponseFlag = 1
	FlagNull                     ResponseFlag = 2
	FlagExceptionWithAttachments ResponseFlag = 3
	FlagValueWithAttachments     ResponseFlag = 4
	FlagNullWithAttachments      ResponseFlag = 5
)

// String returns the Java name of f.
func (f ResponseFlag) String() string {
	switch f {
	case FlagException:
		return "RESPONSE_WITH_EXCEPTION"
	case FlagValue:
		return "RESPONSE_VALUE"
	case FlagNull:
		return "RESPONSE_NULL_VALUE"
	case FlagExceptionWithAttachments:
		return "RESPONSE_WITH_EXCEPTION_WITH_ATTACHMENTS"
	case FlagValueWithAttachments:
		return "RESPONSE_VALUE_WITH_ATTACHMENTS"
	case FlagNullWithAttachments:
		return "RESPONSE_NULL_VALUE_WITH_ATTACHMENTS"
	}
	return "response flag " + itoa(int(f))
}

// IsException reports whether the body carries an exception.
func (f ResponseFlag) IsException() bool {
	return f == FlagException || f == FlagExceptionWithAttachments
}

// HasValue reports whether a value or an exception follows the flag.
func (f ResponseFlag) HasValue() bool { return f != FlagNull && f != FlagNullWithAttachments }

// HasAttachments reports whether an attachments map ends the body.
func (f ResponseFlag) HasAttachments() bool { return f >= FlagExceptionWithAttachments }

// ResponseInfo is a response body decoded as far as a proxy needs. Its
// byte slices are valid until it decodes another body or the body's frame
// is released. Not safe for concurrent use.
type ResponseInfo struct {
	// Flag says what an OK response carries.
	Flag ResponseFlag
	// ValueStart and ValueEnd delimit the value or exception (equal when
	// there is none).
	ValueStart, ValueEnd int
	// ErrorMessage is the message of a response whose status is not OK
	// (nil if it sent a null).
	ErrorMessage []byte
	// Attachments are the entries of the attachments map, if one.
	Attachments []Attachment

	// Limits bound the decode; zero fields take the defaults.
	Limits Limits

	atts    attachmentSet
	scratch []byte
	r       hessian2.Reader
}

// DecodeResponse decodes the Hessian2 body of a response (not an event's)
// whose header has status into ri. An OK response carries a flag, then
// per the flag a value or an exception, skipped, and attachments; any
// other status, an error message. A body that does not parse is a
// *BodyError: answer the request with StatusBadResponse. Bytes after what
// the flag announces are ignored, as Java ignores them (dubbo-go writes a
// null there).
func DecodeResponse(status Status, body []byte, ri *ResponseInfo) error {
	*ri = ResponseInfo{Limits: ri.Limits, atts: attachmentSet{list: ri.atts.list[:0]},
		scratch: ri.scratch[:0], r: ri.r}
	ri.Attachments = ri.atts.list
	r := &ri.r
	r.SetLimits(ri.Limits.Hessian)
	r.Reset(body)
	if status != StatusOK {
		if r.ReadNull() {
			return nil
		}
		s, scratch, err := r.ReadString(ri.scratch)
		ri.ErrorMessage, ri.scratch = s, scratch
		if err != nil {
			return bodyErr("response error message", err)
		}
		return nil
	}
	flag, err := r.ReadInt()
	if err != nil {
		return bodyErr("response flag", err)
	}
	if flag < 0 || flag > int32(FlagNullWithAttachments) {
		return bodyReason("response flag", "unknown flag "+itoa(int(flag)))
	}
	ri.Flag = ResponseFlag(flag)
	ri.ValueStart = r.Offset()
	if ri.Flag.HasValue() {
		if err := r.Skip(); err != nil {
			return bodyErr("response value", err)
		}
	}
	ri.ValueEnd = r.Offset()
	if !ri.Flag.HasAttachments() {
		return nil
	}
	if r.Len() == 0 {
		return bodyReason("response attachments", "missing")
	}
	lim := ri.Limits.withDefaults()
	ri.scratch, err = ri.atts.decodeMap(r, body, ri.scratch, lim.MaxAttachments, "response attachments")
	ri.Attachments = ri.atts.list
	return err
}

// Attachment returns the string value of attachment key.
func (ri *ResponseInfo) Attachment(key string) ([]byte, bool) {
	return lookup(ri.Attachments, key)
}

// AppendErrorResponse appends a response frame with a status other than
// OK and message as its body, as a Java provider sends one (a Hessian2
// string; Java consumers show it in the RemotingException they raise).
func AppendErrorResponse(dst []byte, id uint64, status Status, message string) []byte {
	start := len(dst)
	dst = AppendHeader(dst, Header{Serialization: Hessian2, Status: status, ID: id})
	dst = hessian2.AppendString(dst, message)
	setBodyLen(dst[start:], len(dst)-start-HeaderLen)
	return dst
}

// AppendNullResponse appends an OK response whose body says the call
// returned null (RESPONSE_NULL_VALUE): how a local reply with a success
// status is rendered.
func AppendNullResponse(dst []byte, id uint64) []byte {
	start := len(dst)
	dst = AppendHeader(dst, Header{Serialization: Hessian2, Status: StatusOK, ID: id})
	dst = hessian2.AppendInt(dst, int32(FlagNull))
	setBodyLen(dst[start:], len(dst)-start-HeaderLen)
	return dst
}
