package http2

import (
	"golang.org/x/net/http2/hpack"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// blockKind says what a header block decodes into.
type blockKind uint8

const (
	// blockDiscard: decoded only to keep the HPACK table in step (a
	// refused or closed stream); nothing is emitted.
	blockDiscard blockKind = iota
	blockRequest
	blockResponse
	blockTrailers
)

// Pseudo-header bits.
const (
	pMethod uint8 = 1 << iota
	pScheme
	pAuthority
	pPath
	pProtocol
	pStatus
)

// headerDecoder decodes header blocks straight into the l7 model: x/net's
// hpack.Decoder calls emit for each field, and emit validates it (RFC 9113
// §8.2, §8.3) and copies it into the target Header's arena, which the
// Request or Response reuses across streams. Owned by the read loop.
//
// Limits: a block over MaxHeaderListSize (RFC 7541 size) or MaxHeaderCount
// stops emitting at once (x/net's decoder then skips the Huffman decoding
// of literals it need not index) and is still decoded to its end, to keep
// the HPACK table in step, as long as its encoded size stays under twice
// the limit; the stream is then refused (a 431 response for a request).
// Past that bound, or past maxBlockFrames frames, the connection is
// closed (ENHANCE_YOUR_CALM): see conn.headerFragment.
type headerDecoder struct {
	dec      *hpack.Decoder
	maxList  int
	maxCount int

	kind       blockKind
	req        *l7.Request
	resp       *l7.Response
	hdr        *l7.Header
	size       int
	count      int
	over       bool
	bad        string
	sawRegular bool
	pseudo     uint8
	// contentLength is the content-length field, -1 when absent.
	contentLength int64
	host          string
	cookies       int
	scratch       []byte
}

func (d *headerDecoder) init(cfg *Config) {
	d.maxList = int(cfg.MaxHeaderListSize)
	d.maxCount = cfg.MaxHeaderCount
	d.dec = hpack.NewDecoder(4096, d.emit)
	d.dec.SetMaxStringLength(d.maxList)
	d.dec.SetEmitEnabled(false) // no block yet: as blockDiscard
}

// begin starts a block. For blockRequest and blockResponse the message's
// header is the target; for blockTrailers, hdr.
func (d *headerDecoder) begin(kind blockKind, req *l7.Request, resp *l7.Response, hdr *l7.Header) {
	d.kind, d.req, d.resp, d.hdr = kind, req, resp, hdr
	switch kind {
	case blockRequest:
		d.hdr = &req.Header
	case blockResponse:
		d.hdr = &resp.Header
	}
	d.size, d.count, d.over, d.bad, d.sawRegular, d.pseudo = 0, 0, false, "", false, 0
	d.contentLength, d.host, d.cookies = -1, "", 0
	d.dec.SetEmitEnabled(kind != blockDiscard)
}

// write decodes a fragment; an error is a COMPRESSION_ERROR.
func (d *headerDecoder) write(frag []byte) error {
	_, err := d.dec.Write(frag)
	return err
}

// end finishes the block: an error is a COMPRESSION_ERROR. Then over
// says the block was over a limit and bad names the first malformation.
func (d *headerDecoder) end() error {
	if err := d.dec.Close(); err != nil {
		return err
	}
	if d.over || d.bad != "" {
		return nil
	}
	switch d.kind {
	case blockRequest:
		d.bad = d.finishRequest()
	case blockResponse:
		d.bad = d.finishResponse()
	}
	if d.bad == "" && d.cookies > 1 {
		d.joinCookies()
	}
	return nil
}

func (d *headerDecoder) malformed(reason string) {
	if d.bad == "" {
		d.bad = reason
	}
	d.dec.SetEmitEnabled(false)
}

func (d *headerDecoder) emit(f hpack.HeaderField) {
	d.count++
	d.size += len(f.Name) + len(f.Value) + 32
	if d.count > d.maxCount || d.size > d.maxList {
		d.over = true
		d.dec.SetEmitEnabled(false)
		return
	}
	name, value := f.Name, f.Value
	if len(name) > 0 && name[0] == ':' {
		if d.sawRegular {
			d.malformed("pseudo-header " + name + " after a regular field")
			return
		}
		d.pseudoField(name, value)
		return
	}
	d.sawRegular = true
	if !validFieldName(name) {
		d.malformed("invalid field name")
		return
	}
	if !validFieldValue(value) {
		d.malformed("invalid value of field " + name)
		return
	}
	switch name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		d.malformed("connection-specific field " + name)
		return
	case "te":
		if value != "trailers" {
			d.malformed(`te other than "trailers"`)
			return
		}
	case "content-length":
		if d.kind == blockTrailers {
			break
		}
		n, ok := parseContentLength(value)
		if !ok || (d.contentLength >= 0 && d.contentLength != n) {
			d.malformed("invalid content-length")
			return
		}
		d.contentLength = n
	case "host":
		if d.kind == blockRequest {
			d.host = value
			return
		}
	case "cookie":
		d.cookies++
	}
	d.hdr.Add(name, value)
}

func (d *headerDecoder) pseudoField(name, value string) {
	var bit uint8
	switch d.kind {
	case blockRequest:
		switch name {
		case ":method":
			bit = pMethod
		case ":scheme":
			bit = pScheme
		case ":authority":
			bit = pAuthority
		case ":path":
			bit = pPath
		case ":protocol":
			bit = pProtocol
		}
	case blockResponse:
		if name == ":status" {
			bit = pStatus
		}
	}
	if bit == 0 {
		d.malformed("unexpected pseudo-header " + name)
		return
	}
	if d.pseudo&bit != 0 {
		d.malformed("duplicate pseudo-header " + name)
		return
	}
	d.pseudo |= bit
	switch bit {
	case pMethod:
		if !validToken(value) {
			d.malformed("invalid :method")
			return
		}
		d.req.Method = l7.InternMethod([]byte(value))
	case pScheme:
		switch value {
		case "https":
			d.req.Scheme = "https"
		case "http":
			d.req.Scheme = "http"
		default:
			d.req.Scheme = value
		}
	case pAuthority:
		if !validFieldValue(value) {
			d.malformed("invalid :authority")
			return
		}
		d.req.Authority = append(d.req.Authority[:0], value...)
	case pPath:
		if !validFieldValue(value) {
			d.malformed("invalid :path")
			return
		}
		d.req.Path = append(d.req.Path[:0], value...)
	case pProtocol:
		d.req.Protocol = value
	case pStatus:
		if len(value) != 3 {
			d.malformed("invalid :status")
			return
		}
		code := 0
		for i := 0; i < 3; i++ {
			c := value[i]
			if c < '0' || c > '9' {
				d.malformed("invalid :status")
				return
			}
			code = code*10 + int(c-'0')
		}
		if code < 100 || code == 101 {
			d.malformed("invalid :status")
			return
		}
		d.resp.Status = code
	}
}

// finishRequest checks the pseudo-headers of a complete request block
// (RFC 9113 §8.3.1, §8.5, RFC 8441 §4) and returns a malformation or "".
func (d *headerDecoder) finishRequest() string {
	r := d.req
	if d.pseudo&pMethod == 0 {
		return "missing :method"
	}
	if d.host != "" {
		if d.pseudo&pAuthority == 0 {
			r.Authority = append(r.Authority[:0], d.host...)
		} else if string(r.Authority) != d.host {
			return "host differs from :authority"
		}
	}
	if r.Method == l7.MethodConnect && d.pseudo&pProtocol == 0 {
		if d.pseudo&(pScheme|pPath) != 0 {
			return "CONNECT with :scheme or :path"
		}
		if len(r.Authority) == 0 {
			return "CONNECT without :authority"
		}
		return ""
	}
	if d.pseudo&pProtocol != 0 && r.Method != l7.MethodConnect {
		return ":protocol without CONNECT"
	}
	if d.pseudo&pScheme == 0 {
		return "missing :scheme"
	}
	if d.pseudo&pPath == 0 || len(r.Path) == 0 {
		return "missing or empty :path"
	}
	if r.Path[0] != '/' && !(r.Method == l7.MethodOptions && string(r.Path) == "*") {
		return ":path neither absolute nor *"
	}
	if d.pseudo&pProtocol != 0 && len(r.Authority) == 0 {
		return "extended CONNECT without :authority"
	}
	return ""
}

func (d *headerDecoder) finishResponse() string {
	if d.pseudo&pStatus == 0 {
		return "missing :status"
	}
	return ""
}

// joinCookies folds cookie fields into one, joined by "; " (RFC 9113
// §8.2.3), before the request leaves HTTP/2.
func (d *headerDecoder) joinCookies() {
	b := d.scratch[:0]
	for _, f := range d.hdr.Fields() {
		if string(f.Name) == "cookie" {
			if len(b) > 0 {
				b = append(b, ';', ' ')
			}
			b = append(b, f.Value...)
		}
	}
	d.scratch = b
	d.hdr.Del("cookie")
	d.hdr.Add("cookie", view(b))
}

func parseContentLength(s string) (int64, bool) {
	if len(s) == 0 || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// tokenChars marks tchar (RFC 9110 §5.6.2) without upper-case letters:
// HTTP/2 field names must be lower-case (RFC 9113 §8.2.1).
var tokenChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func validFieldName(s string) bool {
	if len(s) == 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenChars[s[i]] {
			return false
		}
	}
	return true
}

// validToken accepts a method: tchar including upper case.
func validToken(s string) bool {
	if len(s) == 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !tokenChars[c] && (c < 'A' || c > 'Z') {
			return false
		}
	}
	return true
}

// validFieldValue applies RFC 9113 §8.2.1: no NUL, CR or LF, and no
// leading or trailing space or tab.
func validFieldValue(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case 0, '\r', '\n':
			return false
		}
	}
	if n := len(s); n > 0 {
		if c := s[0]; c == ' ' || c == '\t' {
			return false
		}
		if c := s[n-1]; c == ' ' || c == '\t' {
			return false
		}
	}
	return true
}
