package accesslog

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// CEL is a compiled CEL expression over Envoy's request attributes
// (request.*, response.*, source.*, destination.*, connection.*,
// upstream.*), as Envoy's CEL access log filter and Istio's metric
// dimensions read them. An attribute the waypoint does not know, or one a
// record lacks (response.code of a TCP connection), is absent: a select
// on it is an error, which Envoy's filter counts as false. Safe for
// concurrent use; each evaluation allocates, so only configs that have
// one pay.
type CEL struct {
	prg   cel.Program
	text  string
	roots uint8 // the celRoots the expression reads, a bit each
}

// celRoots are the attribute maps an expression may read.
var celRoots = []string{"request", "response", "source", "destination", "connection", "upstream"}

var celEnv = sync.OnceValues(func() (*cel.Env, error) {
	opts := make([]cel.EnvOption, 0, len(celRoots))
	for _, r := range celRoots {
		opts = append(opts, cel.Variable(r, cel.MapType(cel.StringType, cel.DynType)))
	}
	return cel.NewEnv(opts...)
})

// CompileCEL parses and checks expr.
func CompileCEL(expr string) (*CEL, error) {
	env, err := celEnv()
	if err != nil {
		return nil, err
	}
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, fmt.Errorf("CEL expression %q: %v", expr, iss.Err())
	}
	prg, err := env.Program(ast)
	if err != nil {
		return nil, fmt.Errorf("CEL expression %q: %v", expr, err)
	}
	c := &CEL{prg: prg, text: expr}
	for _, ref := range ast.NativeRep().ReferenceMap() {
		if i := slices.Index(celRoots, ref.Name); i >= 0 {
			c.roots |= 1 << i
		}
	}
	return c, nil
}

// String is the expression's text.
func (c *CEL) String() string { return c.text }

// Bool evaluates c on r: false when it fails or is not a bool, as Envoy's
// CEL filter counts it.
func (c *CEL) Bool(r *Record) bool {
	v, _, err := c.prg.Eval(celVars(r, c.roots))
	if err != nil {
		return false
	}
	b, ok := v.Value().(bool)
	return ok && b
}

// Eval evaluates c on r as a string (a number or bool printed; "" and
// false when it fails), for a dimension's value.
func (c *CEL) Eval(r *Record) (string, bool) {
	v, _, err := c.prg.Eval(celVars(r, c.roots))
	if err != nil || types.IsError(v) {
		return "", false
	}
	switch x := v.Value().(type) {
	case string:
		return x, true
	case []byte:
		return string(x), true
	default:
		return fmt.Sprint(x), true
	}
}

// celVars copies the attribute maps the expression reads (roots, a bit
// per celRoots entry) out of r. Every value is a copy, so that r does not
// escape: a record without a CEL filter stays where its caller put it.
func celVars(r *Record, roots uint8) map[string]any {
	vars := make(map[string]any, 2)
	for i, name := range celRoots {
		if roots&(1<<i) == 0 {
			continue
		}
		m := map[string]any{}
		vars[name] = m
		switch name {
		case "request":
			req := r.Request
			if req == nil {
				continue
			}
			path := string(req.Path)
			urlPath, _, _ := strings.Cut(path, "?")
			m["path"], m["url_path"], m["host"] = path, urlPath, string(req.Authority)
			m["method"], m["scheme"], m["protocol"] = strings.Clone(req.Method), strings.Clone(req.Scheme), req.Proto.String()
			m["headers"] = celHeaders(&req.Header)
			if v, ok := req.Header.Get("referer"); ok {
				m["referer"] = string(v)
			}
			if v, ok := req.Header.Get("user-agent"); ok {
				m["useragent"] = string(v)
			}
			if v, ok := req.Header.Get("x-request-id"); ok {
				m["id"] = string(v)
			}
			m["time"], m["duration"], m["size"] = time.Unix(0, r.Start.UnixNano()), r.Duration, r.BytesIn
		case "response":
			if r.Request == nil {
				continue // a TCP connection has no response
			}
			m["code"], m["flags"], m["size"] = int64(r.Code), int64(r.Flags), r.BytesOut
			if r.Details != "" {
				m["code_details"] = strings.Clone(r.Details)
			}
			if resp := r.Response; resp != nil {
				m["headers"], m["trailers"] = celHeaders(&resp.Header), celHeaders(&resp.Trailer)
				if v, ok := resp.Trailer.Get("grpc-status"); ok {
					m["grpc_status"] = string(v)
				} else if v, ok := resp.Header.Get("grpc-status"); ok {
					m["grpc_status"] = string(v)
				}
			}
		case "source", "destination":
			d := r.Downstream
			if d == nil {
				continue
			}
			a := d.RemoteAddr
			if r.Stream != nil {
				a = r.Stream.TrustedRemoteAddr()
			}
			if name == "destination" {
				a = d.LocalAddr
				if d.Destination.IsValid() {
					a = d.Destination
				}
			}
			if a.IsValid() {
				m["address"], m["port"] = a.String(), int64(a.Port())
			}
			if name == "source" && d.PeerURI != "" {
				m["principal"] = strings.Clone(d.PeerURI)
			}
		case "connection":
			if d := r.Downstream; d != nil {
				m["mtls"] = d.PeerURI != ""
				if d.ServerName != "" {
					m["requested_server_name"] = strings.Clone(d.ServerName)
				}
				if d.PeerURI != "" {
					m["uri_san_peer_certificate"] = strings.Clone(d.PeerURI)
				}
				if d.LocalURI != "" {
					m["uri_san_local_certificate"] = strings.Clone(d.LocalURI)
				}
			}
			if r.Termination != "" {
				m["termination_details"] = strings.Clone(r.Termination)
			}
		case "upstream":
			if r.Host.IsValid() {
				m["address"], m["port"] = r.Host.String(), int64(r.Host.Port())
			}
			if r.Failure != "" {
				m["transport_failure_reason"] = strings.Clone(r.Failure)
			}
		}
	}
	return vars
}

// celHeaders is a header map as Envoy's CEL reads it: lower-case names,
// repeated values joined with ",".
func celHeaders(h *l7.Header) map[string]string {
	m := make(map[string]string, h.Len())
	for _, f := range h.Fields() {
		k := string(f.Name)
		if v, ok := m[k]; ok {
			m[k] = v + "," + string(f.Value)
		} else {
			m[k] = string(f.Value)
		}
	}
	return m
}
