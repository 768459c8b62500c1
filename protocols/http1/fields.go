package http1

import (
	"bytes"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// headInfo collects the fields a codec consumes from a header section
// instead of putting them in the model. It is reset for every head.
type headInfo struct {
	hosts int
	host  []byte

	lengths int   // Content-Length fields seen
	length  int64 // their (agreeing) value

	te teInfo

	connClose, connKeepAlive, connUpgrade bool
	nominated                             [maxNominated][]byte
	nNominated                            int

	upgrades int
	upgrade  []byte

	expectContinue bool
}

// teInfo is the transfer-coding list of all Transfer-Encoding fields.
type teInfo struct {
	fields      int  // Transfer-Encoding fields seen
	codings     int  // non-empty list elements
	chunked     int  // how many of them are "chunked"
	other       bool // a coding other than chunked
	lastChunked bool // the final coding is chunked
}

// parseFields parses the field lines of head, the lines from index from to
// the last (empty) one, into dst; the fields a codec consumes go to info
// (nil for a trailer section, where they are dropped). Names are
// lower-cased in place; values are trimmed of surrounding whitespace.
func parseFields(kind headKind, head []byte, lines []int32, from int, dst *l7.Header, info *headInfo) error {
	start := 0
	if from > 0 {
		start = int(lines[from-1]) + 1
	}
	for i := from; i < len(lines)-1; i++ {
		end := int(lines[i]) - 1
		line := head[start:end:end]
		start = end + 2
		if line[0] == ' ' || line[0] == '\t' {
			return badRequest(kind.String() + ": obs-fold or whitespace before a field name")
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return badRequest(kind.String() + ": field line without a name and colon")
		}
		name := line[:colon:colon]
		if !lowerName(name) {
			if c := name[len(name)-1]; c == ' ' || c == '\t' {
				return badRequest(kind.String() + ": whitespace between a field name and its colon")
			}
			return badRequest(kind.String() + ": invalid character in a field name")
		}
		value := trimOWS(line[colon+1:])
		value = value[:len(value):len(value)]
		if !validValue(value) {
			return badRequest(kind.String() + ": invalid character in the value of " + string(name))
		}
		if info == nil {
			if !droppedTrailer(name) {
				dst.AddBytes(name, value)
			}
			continue
		}
		keep, err := info.consume(kind, name, value)
		if err != nil {
			return err
		}
		if keep {
			dst.AddBytes(name, value)
		}
	}
	if info != nil && info.nNominated > 0 {
		for _, n := range info.nominated[:info.nNominated] {
			dst.Del(string(n))
		}
	}
	return nil
}

// consume records a field the codec interprets and reports whether the
// field also belongs in the model.
func (info *headInfo) consume(kind headKind, name, value []byte) (keep bool, err error) {
	switch string(name) {
	case "content-length":
		return false, info.contentLength(kind, value)
	case "transfer-encoding":
		info.transferEncoding(value)
		return false, nil
	case "connection":
		return false, info.connection(kind, value)
	case "keep-alive", "proxy-connection":
		return false, nil
	case "upgrade":
		info.upgrades++
		if info.upgrades == 1 {
			info.upgrade = value
		}
		return false, nil
	case "host":
		if kind != requestHead {
			return true, nil
		}
		info.hosts++
		info.host = value
		return false, nil
	case "te":
		// Only "trailers" means anything past this hop (RFC 9113 8.2.2).
		return kind == requestHead && equalFold(value, "trailers"), nil
	case "expect":
		if kind == requestHead && equalFold(value, "100-continue") {
			info.expectContinue = true
			return false, nil
		}
	}
	return true, nil
}

// contentLength takes one Content-Length field: a decimal, or a list of
// identical decimals, all equal to any earlier field's (RFC 9110 8.6).
func (info *headInfo) contentLength(kind headKind, value []byte) error {
	for rest := value; ; {
		var elem []byte
		elem, rest = nextElement(rest)
		n, ok := parseDecimal(elem)
		if !ok {
			return badRequest(kind.String() + ": invalid content-length " + quote(value))
		}
		if info.lengths > 0 && n != info.length {
			return badRequest(kind.String() + ": differing content-length values")
		}
		info.lengths++
		info.length = n
		if rest == nil {
			return nil
		}
	}
}

func (info *headInfo) transferEncoding(value []byte) {
	te := &info.te
	te.fields++
	for rest := value; rest != nil; {
		var elem []byte
		elem, rest = nextElement(rest)
		if len(elem) == 0 {
			continue
		}
		te.codings++
		if equalFold(elem, "chunked") {
			te.chunked++
			te.lastChunked = true
		} else {
			te.other = true
			te.lastChunked = false
		}
	}
}

// connection takes the options of a Connection field: close, keep-alive,
// upgrade, and the names of other fields to drop at this hop.
func (info *headInfo) connection(kind headKind, value []byte) error {
	for rest := value; rest != nil; {
		var elem []byte
		elem, rest = nextElement(rest)
		switch {
		case len(elem) == 0:
		case equalFold(elem, "close"):
			info.connClose = true
		case equalFold(elem, "keep-alive"):
			info.connKeepAlive = true
		case equalFold(elem, "upgrade"):
			info.connUpgrade = true
		case equalFold(elem, "te"):
			// te is already reduced to "trailers", which survives hops.
		default:
			if !lowerName(elem) {
				return badRequest(kind.String() + ": invalid option in connection " + quote(value))
			}
			if info.nNominated == maxNominated {
				return badRequest(kind.String() + ": connection names more than " + itoa(maxNominated) + " fields")
			}
			info.nominated[info.nNominated] = elem
			info.nNominated++
		}
	}
	return nil
}

// droppedTrailer reports whether a trailer field is one that must not be
// merged into a message at this hop: framing, routing and connection
// fields (RFC 9110 6.5.1).
func droppedTrailer(name []byte) bool {
	switch string(name) {
	case "content-length", "transfer-encoding", "host", "connection",
		"keep-alive", "proxy-connection", "upgrade", "te", "trailer":
		return true
	}
	return false
}

// hopField reports whether a field of the model must not be written on
// the wire as is: this codec writes the framing and connection fields
// itself from the model's other parts, so these are never copied (a
// stray content-length next to the one written would make the message
// ambiguous).
func hopField(name []byte) bool {
	if len(name) < 4 {
		return false
	}
	switch string(name) {
	case "content-length", "transfer-encoding", "host", "connection",
		"keep-alive", "proxy-connection", "upgrade":
		return true
	}
	return false
}

// quote renders an offending value for an error reason, bounded.
func quote(v []byte) string {
	const maxQuoted = 64
	if len(v) > maxQuoted {
		return `"` + string(v[:maxQuoted]) + `..."`
	}
	return `"` + string(v) + `"`
}
