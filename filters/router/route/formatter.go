package route

import (
	"fmt"
	"github.com/gowaypoint/waypoint/internal/cmdop"
	"strings"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

// fmtOp is one operator of an Envoy substitution format string.
type fmtOp uint8

const (
	opLiteral fmtOp = iota
	opRemoteAddr
	opRemoteAddrNoPort
	opLocalAddr
	opLocalAddrNoPort
	opProtocol
	opReq
	opResp
)

var fmtCommands = map[string]fmtOp{
	"DOWNSTREAM_REMOTE_ADDRESS":              opRemoteAddr,
	"DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT": opRemoteAddrNoPort,
	"DOWNSTREAM_LOCAL_ADDRESS":               opLocalAddr,
	"DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT":  opLocalAddrNoPort,
	"PROTOCOL":                               opProtocol,
	"REQ":                                    opReq,
	"RESP":                                   opResp,
}

// fmtPart is a literal or one %COMMAND(args):N% of a format string.
type fmtPart struct {
	op      fmtOp
	literal string
	// name and alt are REQ/RESP's header and its "?alternative".
	name, alt             string
	namePseudo, altPseudo pseudoHeader
	// maxLen truncates the value when > 0.
	maxLen int
}

// formatter is a parsed header value: a literal, or parts to concatenate.
type formatter struct {
	literal string
	parts   []fmtPart // nil: the value is literal
}

// parseFormat parses an Envoy substitution format string: text with "%%"
// for '%', and %COMMAND%, %COMMAND(args)% or %COMMAND(args):N% operators,
// of which only those in fmtCommands are supported.
func parseFormat(s string) (formatter, error) {
	if !strings.Contains(s, "%") {
		return formatter{literal: s}, nil
	}
	parts, err := cmdop.Split(s, func(text string) fmtPart { return fmtPart{op: opLiteral, literal: text} }, parseCommand)
	if err != nil {
		return formatter{}, err
	}
	if len(parts) == 1 && parts[0].op == opLiteral {
		return formatter{literal: parts[0].literal}, nil
	}
	if len(parts) == 0 {
		return formatter{}, nil
	}
	return formatter{parts: parts}, nil
}

// parseCommand gives a scanned operator its meaning for a header value.
func parseCommand(sc cmdop.Operator) (fmtPart, error) {
	cmd, args, hasArgs, maxLen := sc.Command, sc.Args, sc.HasArgs, sc.MaxLen
	op, ok := fmtCommands[cmd]
	if !ok {
		return fmtPart{}, fmt.Errorf("unsupported formatter %%%s%% (supported: DOWNSTREAM_REMOTE_ADDRESS, DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT, DOWNSTREAM_LOCAL_ADDRESS, DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT, PROTOCOL, REQ(name), RESP(name))", cmd)
	}
	p := fmtPart{op: op, maxLen: maxLen}
	switch op {
	case opReq, opResp:
		if !hasArgs || args == "" {
			return fmtPart{}, fmt.Errorf("%%%s needs a header name: %%%s(name)%%", cmd, cmd)
		}
		name, alt, _ := strings.Cut(args, "?")
		p.name, p.alt = toLower(name), toLower(alt)
		p.namePseudo, p.altPseudo = pseudoOf(p.name), pseudoOf(p.alt)
	default:
		if hasArgs {
			return fmtPart{}, fmt.Errorf("%%%s takes no arguments", cmd)
		}
	}
	return p, nil
}

// fmtCtx is what formatters read.
type fmtCtx struct {
	req  *l7.Request
	resp *l7.Response
	down *filters.Downstream
}

// isLiteral reports whether the value needs no formatting.
func (f *formatter) isLiteral() bool { return f.parts == nil }

// appendTo appends the formatted value to dst.
func (f *formatter) appendTo(dst []byte, c *fmtCtx) []byte {
	if f.parts == nil {
		return append(dst, f.literal...)
	}
	for i := range f.parts {
		p := &f.parts[i]
		start := len(dst)
		switch p.op {
		case opLiteral:
			dst = append(dst, p.literal...)
		case opRemoteAddr:
			if c.down != nil && c.down.RemoteAddr.IsValid() {
				dst = c.down.RemoteAddr.AppendTo(dst)
			}
		case opRemoteAddrNoPort:
			if c.down != nil && c.down.RemoteAddr.IsValid() {
				dst = c.down.RemoteAddr.Addr().AppendTo(dst)
			}
		case opLocalAddr:
			if c.down != nil && c.down.LocalAddr.IsValid() {
				dst = c.down.LocalAddr.AppendTo(dst)
			}
		case opLocalAddrNoPort:
			if c.down != nil && c.down.LocalAddr.IsValid() {
				dst = c.down.LocalAddr.Addr().AppendTo(dst)
			}
		case opProtocol:
			if c.req != nil && c.req.Proto != l7.ProtoUnknown {
				dst = append(dst, c.req.Proto.String()...)
			}
		case opReq, opResp:
			mc := matchCtx{req: c.req}
			if p.op == opResp {
				mc = matchCtx{resp: c.resp}
			}
			if (p.op == opResp && c.resp == nil) || (p.op == opReq && c.req == nil) {
				break
			}
			v, ok := firstValue(&mc, p.name, p.namePseudo)
			if !ok && p.alt != "" {
				v, _ = firstValue(&mc, p.alt, p.altPseudo)
			}
			dst = append(dst, v...)
			mc.release()
		}
		if p.maxLen > 0 && len(dst)-start > p.maxLen {
			dst = dst[:start+p.maxLen]
		}
	}
	return dst
}

// firstValue is the first value of a header (Envoy's %REQ% takes the
// first), or a pseudo-header's field.
func firstValue(c *matchCtx, name string, ps pseudoHeader) ([]byte, bool) {
	if ps != notPseudo {
		return c.value(name, ps)
	}
	if c.resp != nil {
		return c.resp.Header.Get(name)
	}
	return c.req.Header.Get(name)
}
