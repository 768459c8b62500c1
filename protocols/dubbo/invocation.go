package dubbo

import (
	"strconv"
	"time"

	"github.com/gowaypoint/waypoint/protocols/dubbo/hessian2"
)

// Attachment keys Dubbo gives a meaning to.
const (
	KeyPath      = "path"
	KeyInterface = "interface"
	KeyVersion   = "version"
	KeyGroup     = "group"
	KeyTimeout   = "timeout"
	KeyDubbo     = "dubbo"
)

// Invocation is a request body decoded as far as a proxy needs: the
// prefix that names the call, where the arguments are (counted from the
// parameter descriptor, skipped without being decoded), and the
// attachments. Its byte slices point into the body and into the
// Invocation's own storage: they are valid until the Invocation decodes
// another body or the body's frame is released. Reuse one Invocation per
// in-flight request (or per connection, one request at a time) to decode
// without allocating. Not safe for concurrent use.
//
// The body is as Apache Dubbo's DubboCodec writes it: five strings (Dubbo
// protocol version, service path, service version, method, parameter
// descriptor), the arguments, then a map of attachments.
type Invocation struct {
	// DubboVersion is the Dubbo protocol version, e.g. "2.0.2".
	DubboVersion []byte
	// Path is the service path the body's prefix names: the interface
	// name, unless the service was exported under another path.
	Path []byte
	// Version is the service version the prefix names ("0.0.0" when the
	// service has none, as Java writes it).
	Version []byte
	// Method is the method's name.
	Method []byte
	// ParamDesc is the parameter-types descriptor, in JVM syntax
	// ("Ljava/lang/String;I").
	ParamDesc []byte
	// NumArgs is ParamCount(ParamDesc).
	NumArgs int
	// ArgsStart and ArgsEnd delimit the encoded arguments in the body;
	// ArgsEnd is -1 after DecodeRequestPrefix.
	ArgsStart, ArgsEnd int
	// Attachments are the entries of the attachments map, in order; empty
	// after DecodeRequestPrefix.
	Attachments []Attachment

	// Limits bound the decode; zero fields take the defaults.
	Limits Limits

	body    []byte
	atts    attachmentSet
	scratch []byte // decoded strings, lower-cased keys, the l7 path
	r       hessian2.Reader
	argR    hessian2.Reader // Arg's
	view    []viewField     // what FillRequest put in an l7.Header
	marks   []int8          // per attachment, scratch of AttachmentsFor
}

// DecodeRequest decodes a Hessian2 request body (not an event's) into
// inv: the prefix, the arguments' extent and the attachments. The
// arguments are skipped, never decoded. A body that does not parse is a
// *BodyError: answer StatusBadRequest, do not forward it. Bytes after the
// attachments map are ignored, as Java ignores them.
func DecodeRequest(body []byte, inv *Invocation) error {
	if err := inv.decodePrefix(body); err != nil {
		return err
	}
	for i := range inv.NumArgs {
		if err := inv.r.Skip(); err != nil {
			return bodyErr("request argument "+itoa(i), err)
		}
	}
	inv.ArgsEnd = inv.r.Offset()
	var err error
	lim := inv.Limits.withDefaults()
	inv.scratch, err = inv.atts.decodeMap(&inv.r, body, inv.scratch, lim.MaxAttachments, "request attachments")
	inv.Attachments = inv.atts.list
	return err
}

// DecodeRequestPrefix decodes only the prefix of a request body: the
// protocol version, service path and version, method and descriptor, for
// routing that needs no more. It leaves ArgsEnd -1 and no attachments.
// Note that a Java provider looks the service up by the path, version and
// group attachments, which may differ from the prefix: policy that must
// hold against a hostile client needs DecodeRequest and Service.
func DecodeRequestPrefix(body []byte, inv *Invocation) error {
	return inv.decodePrefix(body)
}

func (inv *Invocation) decodePrefix(body []byte) error {
	*inv = Invocation{
		Limits: inv.Limits, body: body, ArgsEnd: -1,
		atts: attachmentSet{list: inv.atts.list[:0]}, scratch: inv.scratch[:0],
		r: inv.r, argR: inv.argR, view: inv.view[:0], marks: inv.marks[:0],
	}
	inv.Attachments = inv.atts.list
	inv.r.SetLimits(inv.Limits.Hessian)
	inv.r.Reset(body)
	for _, f := range [...]struct {
		dst  *[]byte
		name string
	}{
		{&inv.DubboVersion, "dubbo version"}, {&inv.Path, "service path"},
		{&inv.Version, "service version"}, {&inv.Method, "method"},
		{&inv.ParamDesc, "parameter descriptor"},
	} {
		s, scratch, err := inv.r.ReadString(inv.scratch)
		inv.scratch = scratch
		if err != nil {
			return bodyErr("request "+f.name, err)
		}
		*f.dst = s
	}
	inv.NumArgs = ParamCount(inv.ParamDesc)
	inv.ArgsStart = inv.r.Offset()
	return nil
}

// Body returns the body inv was decoded from.
func (inv *Invocation) Body() []byte { return inv.body }

// Attachment returns the string value of attachment key.
func (inv *Invocation) Attachment(key string) ([]byte, bool) {
	return lookup(inv.Attachments, key)
}

// Service returns the service path a Java provider looks the invoker up
// by: the path attachment when there is one, else the prefix's Path (the
// provider sets the prefix's path as an attachment, then lets the map's
// entries override it).
func (inv *Invocation) Service() []byte {
	if v, ok := inv.Attachment(KeyPath); ok {
		return v
	}
	return inv.Path
}

// ServiceVersion returns the service version a Java provider looks the
// invoker up by: the version attachment, else the prefix's Version.
func (inv *Invocation) ServiceVersion() []byte {
	if v, ok := inv.Attachment(KeyVersion); ok {
		return v
	}
	return inv.Version
}

// Group returns the group attachment, nil if none.
func (inv *Invocation) Group() []byte {
	v, _ := inv.Attachment(KeyGroup)
	return v
}

// Timeout returns the consumer's timeout for the call, from the timeout
// attachment (milliseconds, as Dubbo writes it), and whether there is a
// valid one.
func (inv *Invocation) Timeout() (time.Duration, bool) {
	v, ok := inv.Attachment(KeyTimeout)
	if !ok || len(v) == 0 || len(v) > 12 {
		return 0, false
	}
	var ms int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		ms = ms*10 + int64(c-'0')
	}
	return time.Duration(ms) * time.Millisecond, true
}

// PrefixAndArgs returns the body up to the attachments: the prefix and
// the arguments as they came. Only after DecodeRequest.
func (inv *Invocation) PrefixAndArgs() []byte { return inv.body[:inv.ArgsEnd] }

// Arg returns argument i as routing reads it (Envoy's dubbo_proxy
// params_match): a string as it is, an int or a long in decimal, a
// boolean as "true" or "false". ok is false for any other kind (null, a
// list, an object...), for an index past the arguments and for a body
// that does not parse. Decimal forms are appended to dst, returned for
// reuse; a string is a slice of the body or of dst. Only after
// DecodeRequest or DecodeRequestPrefix; not safe for concurrent use.
func (inv *Invocation) Arg(i int, dst []byte) (v, newDst []byte, ok bool) {
	if i < 0 || i >= inv.NumArgs {
		return nil, dst, false
	}
	r := &inv.argR
	r.SetLimits(inv.Limits.Hessian)
	r.Reset(inv.body[inv.ArgsStart:])
	for range i {
		if r.Skip() != nil {
			return nil, dst, false
		}
	}
	switch r.PeekKind() {
	case hessian2.String:
		s, d, err := r.ReadString(dst)
		return s, d, err == nil
	case hessian2.Int, hessian2.Long:
		n, err := r.ReadLong()
		if err != nil {
			return nil, dst, false
		}
		start := len(dst)
		dst = strconv.AppendInt(dst, n, 10)
		return dst[start:len(dst):len(dst)], dst, true
	case hessian2.Bool:
		b, err := r.ReadBool()
		if err != nil {
			return nil, dst, false
		}
		if b {
			return bytesTrue, dst, true
		}
		return bytesFalse, dst, true
	}
	return nil, dst, false
}

var bytesTrue, bytesFalse = []byte("true"), []byte("false")
