// Package dubbotest has real Dubbo peers for tests: a consumer and a
// provider that encode and decode every frame with
// github.com/apache/dubbo-go-hessian2 (the codec dubbo-go runs), over
// plain TCP, so that what the waypoint does is checked against a Dubbo
// implementation that is not its own. Only tests import it.
//
// Both peers answer heartbeats; the provider serves each call on a
// goroutine of its own and answers in whatever order its handler returns.
// Every goroutine they start ends with Close (or Kill).
package dubbotest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	hessian "github.com/apache/dubbo-go-hessian2"
)

// HeaderLen is a Dubbo frame header's length.
const HeaderLen = 16

// Call is a request as the provider decoded it.
type Call struct {
	ID                                               int64
	TwoWay                                           bool
	DubboVersion, Path, Version, Method, ParamsTypes string
	Args                                             []any
	Attachments                                      map[string]string
	// Conn is the provider's connection the call came on.
	Conn net.Conn
}

// Reply is a provider's answer: status 20 (the default) with a value or
// an exception and attachments, or another status with a message.
type Reply struct {
	Status       byte
	Value        any
	Exception    error
	Attachments  map[string]string
	ErrorMessage string
	// Drop sends nothing.
	Drop bool
}

// Handler answers one call. It runs on the call's own goroutine.
type Handler func(*Call) Reply

// Provider is a Dubbo provider on one address.
type Provider struct {
	Name string

	// Calls counts the calls received, Heartbeats the heartbeat requests
	// answered, HeartbeatAnswers the answers to heartbeats it sent.
	Calls, Heartbeats, HeartbeatAnswers atomic.Int64

	ln      net.Listener
	mu      sync.Mutex
	conns   map[net.Conn]*sync.Mutex // each connection's write lock
	wg      sync.WaitGroup
	hbID    atomic.Int64
	killed  chan struct{}
	once    sync.Once
	handler atomic.Pointer[Handler]
}

// StartProvider listens on addr and serves calls with h (nil: each call
// is answered "<name>: <method>(<args>)").
func StartProvider(addr, name string, h Handler) (*Provider, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	p := &Provider{Name: name, ln: ln, conns: map[net.Conn]*sync.Mutex{}, killed: make(chan struct{})}
	p.SetHandler(h)
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// SetHandler makes h answer the calls that come from now on (nil: Echo).
func (p *Provider) SetHandler(h Handler) {
	if h == nil {
		h = p.Echo
	}
	p.handler.Store(&h)
}

// Addr is the provider's address.
func (p *Provider) Addr() string { return p.ln.Addr().String() }

// Echo answers "<name>: <method>(<args>)".
func (p *Provider) Echo(c *Call) Reply {
	args := make([]string, len(c.Args))
	for i, a := range c.Args {
		args[i] = fmt.Sprint(a)
	}
	return Reply{Value: p.Name + ": " + c.Method + "(" + strings.Join(args, ", ") + ")"}
}

func (p *Provider) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.conns == nil {
			p.mu.Unlock()
			c.Close()
			return
		}
		wmu := &sync.Mutex{}
		p.conns[c] = wmu
		p.mu.Unlock()
		p.wg.Add(1)
		go p.serve(c, wmu)
	}
}

func (p *Provider) serve(c net.Conn, wmu *sync.Mutex) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
		c.Close()
	}()
	write := func(b []byte) {
		wmu.Lock()
		c.Write(b)
		wmu.Unlock()
	}
	var calls sync.WaitGroup
	defer calls.Wait()
	br := bufio.NewReaderSize(c, 64<<10)
	for {
		frame, err := ReadFrame(br)
		if err != nil {
			return
		}
		flag := frame[2]
		id := int64(binary.BigEndian.Uint64(frame[4:12]))
		switch {
		case flag&0x20 != 0 && flag&0x80 != 0: // an event request
			if flag&0x40 != 0 {
				p.Heartbeats.Add(1)
				write(HeartbeatResponse(id))
			}
			continue
		case flag&0x20 != 0:
			p.HeartbeatAnswers.Add(1)
			continue
		case flag&0x80 == 0:
			continue // a response: the provider sends no requests but heartbeats
		}
		call, err := DecodeCall(frame)
		if err != nil {
			write(encodeResponse(id, 40, Reply{ErrorMessage: "provider: " + err.Error()}))
			continue
		}
		call.Conn = c
		p.Calls.Add(1)
		calls.Add(1)
		go func() {
			defer calls.Done()
			r := (*p.handler.Load())(call)
			if !call.TwoWay || r.Drop {
				return
			}
			write(encodeResponse(id, r.Status, r))
		}()
	}
}

// SendHeartbeats sends a heartbeat request on every connection.
func (p *Provider) SendHeartbeats() int {
	return p.each(func() []byte {
		return append(header(0xe2, 0, p.hbID.Add(1)+1<<40, 1), 'N')
	})
}

// SendReadonly sends the readonly event (a one-way event whose body is
// "R", as a Java provider does when it shuts down) on every connection.
func (p *Provider) SendReadonly() int {
	return p.each(func() []byte { return append(header(0xa2, 0, p.hbID.Add(1)+1<<40, 2), 0x01, 'R') })
}

func (p *Provider) each(frame func() []byte) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c, wmu := range p.conns {
		wmu.Lock()
		c.Write(frame())
		wmu.Unlock()
	}
	return len(p.conns)
}

// Conns returns how many connections the provider has.
func (p *Provider) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Kill stops the provider at once: the listener and every connection are
// closed (a reset), calls in flight are never answered; then Killed is
// closed, and Kill waits for the handlers to return.
func (p *Provider) Kill() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.once.Do(func() { close(p.killed) })
	p.wg.Wait()
}

// Killed is closed once Kill has closed the connections: a handler that
// must not answer waits for it.
func (p *Provider) Killed() <-chan struct{} { return p.killed }

// Close is Kill.
func (p *Provider) Close() { p.Kill() }

// DecodeCall decodes a request frame with the reference decoder.
func DecodeCall(frame []byte) (*Call, error) {
	codec, h, err := refCodec(frame)
	if err != nil {
		return nil, err
	}
	req := make([]any, 7)
	if err := codec.ReadBody(req); err != nil {
		return nil, err
	}
	c := &Call{ID: h.ID, TwoWay: h.Type&hessian.PackageRequest_TwoWay != 0}
	c.DubboVersion, _ = req[0].(string)
	c.Path, _ = req[1].(string)
	c.Version, _ = req[2].(string)
	c.Method, _ = req[3].(string)
	c.ParamsTypes, _ = req[4].(string)
	c.Args, _ = req[5].([]any)
	c.Attachments, _ = req[6].(map[string]string)
	return c, nil
}

func refCodec(frame []byte) (*hessian.HessianCodec, hessian.DubboHeader, error) {
	r := bufio.NewReaderSize(bytes.NewReader(frame), len(frame)+16)
	r.Peek(len(frame))
	codec := hessian.NewHessianCodec(r)
	var h hessian.DubboHeader
	err := codec.ReadHeader(&h)
	return codec, h, err
}

func encodeResponse(id int64, st byte, r Reply) []byte {
	if st == 0 {
		st = 20
	}
	var body any = hessian.NewResponse(r.Value, r.Exception, r.Attachments)
	if st != 20 {
		body = hessian.NewResponse(nil, errors.New(r.ErrorMessage), nil)
	}
	b, err := hessian.NewHessianCodec(nil).Write(hessian.Service{},
		hessian.DubboHeader{SerialID: 2, Type: hessian.PackageResponse, ID: id, ResponseStatus: st}, body)
	if err != nil {
		b = append(header(0x02, 70, id, 1), 'N')
	}
	return b
}

// HeartbeatResponse is the answer to heartbeat id, as the reference writes
// it.
func HeartbeatResponse(id int64) []byte {
	b, _ := hessian.NewHessianCodec(nil).Write(hessian.Service{},
		hessian.DubboHeader{SerialID: 2, Type: hessian.PackageHeartbeat, ID: id, ResponseStatus: 20}, nil)
	return b
}

// HeartbeatRequest is a heartbeat request with id, as the reference
// writes it.
func HeartbeatRequest(id int64) []byte {
	b, _ := hessian.NewHessianCodec(nil).Write(hessian.Service{},
		hessian.DubboHeader{SerialID: 2, Type: hessian.PackageHeartbeat, ID: id}, []any{})
	return b
}

func header(flag, st byte, id int64, bodyLen int) []byte {
	h := make([]byte, HeaderLen)
	h[0], h[1], h[2], h[3] = 0xda, 0xbb, flag, st
	binary.BigEndian.PutUint64(h[4:], uint64(id))
	binary.BigEndian.PutUint32(h[12:], uint32(bodyLen))
	return h
}

// ReadFrame reads one whole frame (header and body) from r.
func ReadFrame(r io.Reader) ([]byte, error) {
	h := make([]byte, HeaderLen)
	if _, err := io.ReadFull(r, h); err != nil {
		return nil, err
	}
	if h[0] != 0xda || h[1] != 0xbb {
		return nil, fmt.Errorf("dubbotest: bad magic % x", h[:2])
	}
	n := binary.BigEndian.Uint32(h[12:])
	if n > 16<<20 {
		return nil, fmt.Errorf("dubbotest: body of %d bytes", n)
	}
	f := make([]byte, HeaderLen+int(n))
	copy(f, h)
	if _, err := io.ReadFull(r, f[HeaderLen:]); err != nil {
		return nil, err
	}
	return f, nil
}

// Request encodes a call with the reference encoder: service names the
// path, interface, group, version, method and timeout, args the arguments;
// a zero id is the consumer's next.
func Request(id int64, twoWay bool, service hessian.Service, args []any, attachments map[string]string) ([]byte, error) {
	typ := hessian.PackageRequest_TwoWay
	if !twoWay {
		typ = hessian.PackageRequest
	}
	atts := make(map[string]string, len(attachments))
	for k, v := range attachments {
		atts[k] = v
	}
	if args == nil {
		args = []any{}
	}
	return hessian.NewHessianCodec(nil).Write(service, hessian.DubboHeader{SerialID: 2, Type: typ, ID: id},
		hessian.NewRequest(args, atts))
}

// Response is an answer as the consumer decoded it.
type Response struct {
	ID     int64
	Status byte
	Event  bool
	// Value and Attachments of an OK response; Exception of an OK
	// response carrying one.
	Value       any
	Exception   error
	Attachments map[string]string
	// ErrorMessage of a response with another status.
	ErrorMessage string
}

// DecodeResponse decodes a response frame with the reference decoder.
func DecodeResponse(frame []byte) (*Response, error) {
	codec, h, err := refCodec(frame)
	if err != nil {
		return nil, err
	}
	r := &Response{ID: h.ID, Status: h.ResponseStatus, Event: h.Type&hessian.PackageHeartbeat != 0}
	if r.Event {
		return r, nil
	}
	var resp hessian.Response
	if err := codec.ReadBody(&resp); err != nil {
		return nil, err
	}
	if r.Status != 20 {
		if resp.Exception != nil {
			r.ErrorMessage = strings.TrimPrefix(resp.Exception.Error(), "java exception:")
		}
		return r, nil
	}
	r.Value, r.Exception, r.Attachments = resp.RspObj, resp.Exception, resp.Attachments
	return r, nil
}

// Consumer is a Dubbo consumer on one connection, with many calls in
// flight matched by request id.
type Consumer struct {
	conn net.Conn

	wmu     sync.Mutex
	mu      sync.Mutex
	pending map[int64]chan *Response
	err     error
	nextID  atomic.Int64
	done    chan struct{}
	// Unmatched counts answers to no pending call; Heartbeats the
	// heartbeat requests the consumer answered.
	Unmatched, Heartbeats atomic.Int64
}

// Dial connects a consumer to addr.
func Dial(addr string) (*Consumer, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return NewConsumer(c), nil
}

// NewConsumer makes a consumer of an open connection, which it owns.
func NewConsumer(conn net.Conn) *Consumer {
	c := &Consumer{conn: conn, pending: map[int64]chan *Response{}, done: make(chan struct{})}
	go c.read()
	return c
}

func (c *Consumer) read() {
	defer close(c.done)
	br := bufio.NewReaderSize(c.conn, 64<<10)
	var err error
	for {
		var frame []byte
		if frame, err = ReadFrame(br); err != nil {
			break
		}
		if frame[2]&0xa0 == 0xa0 { // a heartbeat request to the consumer
			c.Heartbeats.Add(1)
			c.Send(HeartbeatResponse(int64(binary.BigEndian.Uint64(frame[4:12]))))
			continue
		}
		var r *Response
		if r, err = DecodeResponse(frame); err != nil {
			break
		}
		c.mu.Lock()
		ch := c.pending[r.ID]
		delete(c.pending, r.ID)
		c.mu.Unlock()
		if ch == nil {
			c.Unmatched.Add(1)
			continue
		}
		ch <- r
	}
	c.mu.Lock()
	c.err = err
	if c.err == nil || c.err == io.EOF {
		c.err = io.ErrUnexpectedEOF
	}
	for id, ch := range c.pending {
		close(ch)
		delete(c.pending, id)
	}
	c.mu.Unlock()
}

// Send writes raw bytes.
func (c *Consumer) Send(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.conn.Write(b)
	return err
}

// NextID returns a new request id.
func (c *Consumer) NextID() int64 { return c.nextID.Add(1) }

// Expect registers a wait for the answer to id, before the request is
// sent.
func (c *Consumer) Expect(id int64) (<-chan *Response, error) {
	ch := make(chan *Response, 1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return nil, c.err
	}
	c.pending[id] = ch
	return ch, nil
}

// Wait waits for an answer registered with Expect.
func (c *Consumer) Wait(ctx context.Context, id int64, ch <-chan *Response) (*Response, error) {
	select {
	case r, ok := <-ch:
		if !ok {
			return nil, fmt.Errorf("dubbotest: connection ended before the answer to %d: %w", id, c.Err())
		}
		return r, nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		return nil, fmt.Errorf("dubbotest: no answer to %d: %w", id, ctx.Err())
	}
}

// Call sends a two-way call and waits for its answer.
func (c *Consumer) Call(ctx context.Context, service hessian.Service, args []any, attachments map[string]string) (*Response, error) {
	id := c.NextID()
	frame, err := Request(id, true, service, args, attachments)
	if err != nil {
		return nil, err
	}
	return c.RoundTrip(ctx, id, frame)
}

// RoundTrip sends frame, whose request id is id, and waits for the answer.
func (c *Consumer) RoundTrip(ctx context.Context, id int64, frame []byte) (*Response, error) {
	ch, err := c.Expect(id)
	if err != nil {
		return nil, err
	}
	if err := c.Send(frame); err != nil {
		return nil, err
	}
	return c.Wait(ctx, id, ch)
}

// Heartbeat sends a heartbeat and waits for its answer.
func (c *Consumer) Heartbeat(ctx context.Context) (*Response, error) {
	id := c.NextID()
	return c.RoundTrip(ctx, id, HeartbeatRequest(id))
}

// Err is why the connection ended, nil while it is open.
func (c *Consumer) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Done is closed when the connection has ended.
func (c *Consumer) Done() <-chan struct{} { return c.done }

// CloseWrite half-closes the connection.
func (c *Consumer) CloseWrite() error {
	if cw, ok := c.conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// Close closes the connection and waits for the reader.
func (c *Consumer) Close() error {
	err := c.conn.Close()
	<-c.done
	return err
}
