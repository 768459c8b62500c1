package http1

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/gowaypoint/waypoint/protocols/l7"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pipe is an in-memory stream: reads come from in, writes go to out.
type pipe struct {
	in  io.Reader
	out bytes.Buffer
}

func (p *pipe) Read(b []byte) (int, error)  { return p.in.Read(b) }
func (p *pipe) Write(b []byte) (int, error) { return p.out.Write(b) }

func newPipe(in string) *pipe { return &pipe{in: strings.NewReader(in)} }

// oneByte reads one byte at a time, to exercise every partial-read path.
type oneByte struct{ r io.Reader }

func (o oneByte) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	return o.r.Read(b[:1])
}

// model is the comparable form of a request or response.
type model struct {
	Method, Scheme, Authority, Path, Protocol string
	Status                                    int
	Header, Trailer                           []string
	ContentLength                             int64
	Proto                                     l7.Proto
	HasBody                                   bool
	Body                                      string
}

func fieldList(h *l7.Header) []string {
	var out []string
	for _, f := range h.Fields() {
		out = append(out, string(f.Name)+": "+string(f.Value))
	}
	return out
}

// requestModel reads req's body to its end and returns the model.
func requestModel(t testing.TB, req *l7.Request) model {
	m := model{
		Method: req.Method, Scheme: req.Scheme, Authority: string(req.Authority),
		Path: string(req.Path), Protocol: req.Protocol, ContentLength: req.ContentLength,
		Proto: req.Proto, Header: fieldList(&req.Header), HasBody: req.Body != nil,
	}
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			t.Fatalf("reading request body: %v", err)
		}
		m.Body = string(b)
	}
	m.Trailer = fieldList(&req.Trailer)
	return m
}

// responseModel reads resp's body to its end and returns the model.
func responseModel(t testing.TB, resp *l7.Response) model {
	m := model{
		Status: resp.Status, ContentLength: resp.ContentLength, Proto: resp.Proto,
		Header: fieldList(&resp.Header), HasBody: resp.Body != nil,
	}
	if resp.Body != nil {
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("reading response body: %v", err)
		}
		m.Body = string(b)
	}
	m.Trailer = fieldList(&resp.Trailer)
	return m
}

// okResponse is a small response for the server tests.
func okResponse(body string) *l7.Response {
	resp := &l7.Response{Status: 200, ContentLength: int64(len(body))}
	if body != "" {
		resp.Body = strings.NewReader(body)
	}
	return resp
}
