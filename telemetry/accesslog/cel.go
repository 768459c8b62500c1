package accesslog

import (
	"fmt"
	"strings"
	"sync"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/interpreter"

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
	prg  cel.Program
	text string
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
	return &CEL{prg: prg, text: expr}, nil
}

// String is the expression's text.
func (c *CEL) String() string { return c.text }

// Bool evaluates c on r: false when it fails or is not a bool, as Envoy's
// CEL filter counts it.
func (c *CEL) Bool(r *Record) bool {
	v, _, err := c.prg.Eval(celActivation{r})
	if err != nil {
		return false
	}
	b, ok := v.Value().(bool)
	return ok && b
}

// Eval evaluates c on r as a string (a number or bool printed; "" and
// false when it fails), for a dimension's value.
func (c *CEL) Eval(r *Record) (string, bool) {
	v, _, err := c.prg.Eval(celActivation{r})
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

// celActivation resolves the attribute maps of a record, each when first
// read.
type celActivation struct{ r *Record }

func (a celActivation) Parent() interpreter.Activation { return nil }

func (a celActivation) ResolveName(name string) (any, bool) {
	r := a.r
	m := map[string]any{}
	switch name {
	case "request":
		req := r.Request
		if req == nil {
			return m, true
		}
		path := string(req.Path)
		urlPath, _, _ := strings.Cut(path, "?")
		m["path"], m["url_path"], m["host"], m["method"], m["scheme"] = path, urlPath, string(req.Authority), req.Method, req.Scheme
		m["protocol"] = req.Proto.String()
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
		m["time"], m["duration"], m["size"] = r.Start, r.Duration, r.BytesIn
	case "response":
		if r.Request == nil {
			return m, true // a TCP connection has no response
		}
		m["code"], m["flags"], m["size"] = int64(r.Code), int64(r.Flags), r.BytesOut
		if r.Details != "" {
			m["code_details"] = r.Details
		}
		if r.Response != nil {
			m["headers"] = celHeaders(&r.Response.Header)
			m["trailers"] = celHeaders(&r.Response.Trailer)
			if v, ok := r.Response.Trailer.Get("grpc-status"); ok {
				m["grpc_status"] = string(v)
			} else if v, ok := r.Response.Header.Get("grpc-status"); ok {
				m["grpc_status"] = string(v)
			}
		}
	case "source", "destination":
		d := r.Downstream
		if d == nil {
			return m, true
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
			m["principal"] = d.PeerURI
		}
	case "connection":
		if d := r.Downstream; d != nil {
			m["mtls"] = d.PeerURI != ""
			if d.ServerName != "" {
				m["requested_server_name"] = d.ServerName
			}
			if d.PeerURI != "" {
				m["uri_san_peer_certificate"] = d.PeerURI
			}
			if d.LocalURI != "" {
				m["uri_san_local_certificate"] = d.LocalURI
			}
		}
		if r.Termination != "" {
			m["termination_details"] = r.Termination
		}
	case "upstream":
		if r.Host.IsValid() {
			m["address"], m["port"] = r.Host.String(), int64(r.Host.Port())
		}
		if r.Failure != "" {
			m["transport_failure_reason"] = r.Failure
		}
	default:
		return nil, false
	}
	return m, true
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
