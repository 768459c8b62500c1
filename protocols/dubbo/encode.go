package dubbo

import "github.com/gowaypoint/waypoint/protocols/dubbo/hessian2"

// Call is a request to encode from its parts.
type Call struct {
	// DubboVersion, Path, Version, Method and ParamDesc are the body's
	// prefix (see Invocation).
	DubboVersion, Path, Version, Method, ParamDesc string
	// Args are the arguments, Hessian2-encoded one after the other, as
	// many as ParamDesc announces.
	Args []byte
	// Attachments are written as an untyped map.
	Attachments []Attachment
}

// AppendRequest appends a Hessian2 request frame carrying c: h, with its
// BodyLen and Serialization set, then the body.
func AppendRequest(dst []byte, h Header, c *Call) []byte {
	start := len(dst)
	h.Serialization = Hessian2
	dst = AppendHeader(dst, h)
	for _, s := range [...]string{c.DubboVersion, c.Path, c.Version, c.Method, c.ParamDesc} {
		dst = hessian2.AppendString(dst, s)
	}
	dst = append(dst, c.Args...)
	dst = appendMap(dst, nil, c.Attachments)
	setBodyLen(dst[start:], len(dst)-start-HeaderLen)
	return dst
}

// AppendFrame appends the request inv was decoded from with atts for
// attachments: h with BodyLen set, the body's prefix and arguments as
// they came, then the map: its start as it came ('H', or 'M' and its type,
// which later type references may count on), then atts. An entry that
// has Raw is written as it came, others as a string key and a string (or
// null) value. Entries whose value is a list, a map or an object must be
// kept, in their order, and nothing but strings put before them: their
// encoding may refer to earlier objects and class definitions by number.
// Only after DecodeRequest.
func (inv *Invocation) AppendFrame(dst []byte, h Header, atts []Attachment) []byte {
	start := len(dst)
	dst = AppendHeader(dst, h)
	dst = append(dst, inv.PrefixAndArgs()...)
	dst = appendMap(dst, inv.atts.mapStart, atts)
	setBodyLen(dst[start:], len(dst)-start-HeaderLen)
	return dst
}
