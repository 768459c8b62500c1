package dubboconn

import (
	"context"
	"errors"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/filters/dubboroute"
	"github.com/gowaypoint/waypoint/filters/dubborouter"
	"github.com/gowaypoint/waypoint/protocols/dubbo"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/protocols/status"
	"github.com/gowaypoint/waypoint/proxy/upstream"
	"github.com/gowaypoint/waypoint/proxy/upstream/lb"
	"github.com/gowaypoint/waypoint/xds"
)

// call is one Dubbo call and all the storage it needs, reused through a
// pool so that a steady stream of calls allocates little. Owned by the
// reader goroutine until serve starts, then by the call's goroutine.
type call struct {
	c       *conn
	frame   *dubbo.Frame // the consumer's request, as it came
	id      uint64       // its request id
	twoWay  bool
	hessian bool // the body was decoded
	b       *binding

	inv     dubbo.Invocation
	req     l7.Request
	s       filters.Stream
	up      callUpstream
	resp    l7.Response
	reply   upReply
	pending pendingCall
	tel     callTelemetry
	timer   *time.Timer
	out     []byte             // a re-encoded request, or a local reply
	atts    []dubbo.Attachment // the attachments of a re-encoded request
	scratch []byte             // argument strings for routing
}

var callPool = sync.Pool{New: func() any {
	cl := &call{}
	cl.pending.done = make(chan struct{}, 1)
	cl.up.call = cl
	return cl
}}

func newCall(c *conn, f *dubbo.Frame) *call {
	cl := callPool.Get().(*call)
	cl.c, cl.frame, cl.id, cl.twoWay = c, f, f.Header.ID, f.Header.TwoWay
	return cl
}

// free returns the call's frame and storage.
func (cl *call) free() {
	if cl.frame != nil {
		cl.frame.Release()
	}
	cl.reply.release()
	cl.c, cl.frame, cl.b, cl.hessian = nil, nil, nil, false
	cl.req.Reset()
	cl.resp.Reset()
	cl.s = filters.Stream{}
	cl.pending.frame, cl.pending.err = nil, nil
	cl.out = cl.out[:0]
	if cap(cl.out) > 64<<10 {
		cl.out = nil
	}
	clear(cl.atts)
	cl.atts = cl.atts[:0]
	callPool.Put(cl)
}

// decode reads the body as far as routing needs and fills the request
// model; a serialization other than Hessian2 is not read.
func (cl *call) decode(names *dubbo.Interner) error {
	cl.req.Reset()
	if cl.frame.Header.Serialization != dubbo.Hessian2 {
		cl.req.Proto = l7.Dubbo
		return nil
	}
	if err := dubbo.DecodeRequest(cl.frame.Body(), &cl.inv); err != nil {
		return err
	}
	cl.hessian = true
	cl.inv.FillRequest(&cl.req, names)
	return nil
}

// serve runs the call through the chain and answers the consumer.
func (cl *call) serve() {
	c := cl.c
	defer c.callDone()
	defer cl.free()
	cl.b = c.src.current()
	s := &cl.s
	s.Init(c.ctx, &cl.req, c.down, cl)
	cl.begin()
	if cl.b.dubbo == nil {
		s.SendLocalReply(404, "the listener no longer serves Dubbo to "+c.down.Destination.String(), filters.FlagNR)
	} else {
		s.Upstream = &cl.up
		cl.b.dubbo.Chain.Run(s)
	}
	cl.respond()
	cl.finish()
	s.End()
}

// Resolve implements filters.RouteResolver with the chain's route table.
func (cl *call) Resolve(s *filters.Stream) filters.Route {
	var args dubboroute.Args
	if cl.hessian {
		args = cl
	}
	if r := cl.b.dubbo.Routes.Match(s.Request, args); r != nil {
		return r
	}
	return nil
}

// Arg implements dubboroute.Args.
func (cl *call) Arg(i int) ([]byte, bool) {
	v, scratch, ok := cl.inv.Arg(i, cl.scratch[:0])
	cl.scratch = scratch
	return v, ok
}

// respond writes the answer: the provider's frame with the consumer's
// request id, or the local reply as an error response. A one-way call
// gets nothing.
func (cl *call) respond() {
	s := &cl.s
	if s.Local == nil && s.Response != nil {
		if f := cl.reply.take(); f != nil && cl.twoWay {
			dubbo.SetID(f.Raw, cl.id)
			cl.tel.status, cl.tel.bytesOut = uint8(f.Header.Status), int64(len(f.Raw))
			cl.c.w.write(f.Raw)
			f.Release()
			return
		} else if f != nil {
			f.Release()
		}
		if !cl.twoWay {
			return
		}
		s.SendLocalReply(502, "the upstream gave no answer", 0)
	}
	if !cl.twoWay {
		return
	}
	if s.Local == nil {
		s.SendLocalReply(503, "no response", 0)
	}
	code := status.DubboFromLocal(s.Local.Kind, s.Local.Status, s.Local.Flag.String())
	if code == status.DubboOK {
		cl.out = dubbo.AppendNullResponse(cl.out[:0], cl.id)
	} else {
		cl.out = dubbo.AppendErrorResponse(cl.out[:0], cl.id, dubbo.Status(code), cl.localMessage(code))
	}
	cl.tel.status, cl.tel.bytesOut = uint8(code), int64(len(cl.out))
	cl.c.w.write(cl.out)
}

// localMessage is a local reply's message: what happened, and its body.
// A denial's is its body alone ("RBAC: access denied"), the words of an
// HTTP 403 and of gRPC's status 7.
func (cl *call) localMessage(code int) string {
	l := cl.s.Local
	if l.Kind == status.Denied && l.Body != "" {
		return l.Body
	}
	what := string(cl.req.Path)
	if what == "" {
		what = "call " + strconv.FormatUint(cl.id, 10)
	}
	msg := "waypoint: " + statusText(code) + " for " + what
	if l.Body != "" {
		msg += ": " + l.Body
	}
	if l.Flag != 0 {
		msg += " (" + l.Flag.String() + ")"
	}
	return msg
}

// outgoing returns the request to send upstream: the consumer's frame as
// it came, or re-encoded when a filter changed its attachments.
func (cl *call) outgoing() []byte {
	if !cl.hessian || !cl.inv.HeaderChanged(&cl.req.Header) {
		return cl.frame.Raw
	}
	if len(cl.out) == 0 {
		cl.atts = cl.inv.AttachmentsFor(&cl.req.Header, cl.atts[:0])
		cl.out = cl.inv.AppendFrame(cl.out[:0], cl.frame.Header, cl.atts)
	}
	return cl.out
}

// callUpstream is the filters.Upstream of one call: the router's tries go
// through it to the shared upstream connections.
type callUpstream struct {
	call *call
}

// maxReadonlyPicks bounds how often a try picks again past providers that
// said they are read-only.
const maxReadonlyPicks = 3

// RoundTrip implements filters.Upstream: it picks an endpoint of the
// cluster, sends the call on a connection to it and waits for the answer,
// the deadline, or the consumer's going away.
func (u *callUpstream) RoundTrip(ctx context.Context, ureq *filters.UpstreamRequest) (*l7.Response, error) {
	cl := u.call
	ups := cl.c.env.Upstreams
	if ups == nil {
		return nil, status.New(status.NoHealthyUpstream, errors.New("dubbo: no upstream pools"))
	}
	exclude := ureq.Exclude
	prefer := cl.prefer(ureq.Cluster)
	var (
		pk chosen
		p  *pool
	)
	for picks := 0; ; picks++ {
		pc := lb.PickContext{ExcludeAddrs: exclude, HostSelectionMaxAttempts: ureq.MaxHostSelectionAttempts, Prefer: prefer}
		cluster, pick, err := ups.clusters.Choose(cl.b.snap, ureq.Cluster, &pc, ureq.Retry)
		if err != nil {
			return nil, err
		}
		h := pick.Host()
		p = ups.pool(ureq.Cluster, h.Addr)
		if !p.isReadonly() {
			pk = chosen{cluster: cluster, pick: pick}
			break
		}
		pick.Done(lb.Canceled)
		if picks == maxReadonlyPicks {
			return nil, status.New(status.RefusedStream, errors.New("dubbo: the providers picked are read-only"))
		}
		exclude = append(exclude[:len(exclude):len(exclude)], h.Addr)
	}
	h := pk.pick.Host()
	ureq.Host = h.Addr
	uc, err := p.reserve(ctx, pk.cluster, h)
	if err != nil {
		pk.pick.Done(lb.ResultOf(status.KindOf(err)))
		return nil, err
	}
	var pc *pendingCall
	if cl.twoWay {
		pc = &cl.pending
	}
	id, err := uc.register(pc)
	if err != nil {
		pk.pick.Done(lb.Canceled)
		return nil, err
	}
	out := cl.outgoing()
	dubbo.SetID(out, id)
	if err := uc.w.write(out); err != nil {
		if pc != nil && !uc.forget(id) {
			<-pc.done
			if pc.frame != nil {
				pc.frame.Release()
			}
		}
		pk.pick.Done(lb.Reset)
		return nil, status.New(status.RefusedStream, err)
	}
	if pc == nil {
		pk.pick.Done(lb.Connected)
		cl.resp.Reset()
		cl.resp.Proto, cl.resp.Status = l7.Dubbo, 200
		return &cl.resp, nil
	}
	return cl.wait(ctx, uc, id, ureq.Deadline, &pk.pick)
}

// prefer returns the endpoints of cluster a call prefers: those whose
// Dubbo version and group (xds.Endpoint.DubboLabels) are the ones the call
// names (its service version, unless empty or Dubbo's default "0.0.0",
// and its group attachment), nil for any endpoint.
func (cl *call) prefer(cluster string) func(*lb.Host) bool {
	if !cl.hessian {
		return nil
	}
	version, _ := cl.req.Header.Get(dubbo.HeaderServiceVersion)
	if string(version) == "0.0.0" {
		version = nil
	}
	group, _ := cl.req.Header.Get(dubbo.HeaderGroup)
	if len(version) == 0 && len(group) == 0 {
		return nil
	}
	return cl.b.preferForBytes(cluster, version, group)
}

// chosen is one try's endpoint.
type chosen struct {
	cluster *xds.Cluster
	pick    upstream.Pick
}

// wait waits for the answer of call id on uc.
func (cl *call) wait(ctx context.Context, uc *upConn, id uint64, deadline time.Time, pick *upstream.Pick) (*l7.Response, error) {
	pc := &cl.pending
	var timeout <-chan time.Time
	if !deadline.IsZero() {
		d := time.Until(deadline)
		if cl.timer == nil {
			cl.timer = time.NewTimer(d)
		} else {
			cl.timer.Reset(d)
		}
		defer cl.timer.Stop()
		timeout = cl.timer.C
	}
	var gaveUp error
	select {
	case <-pc.done:
	case <-timeout:
		gaveUp = status.New(status.Timeout, errors.New("dubbo: no answer from "+uc.p.key.addr.String()+" in time"))
	case <-ctx.Done():
		gaveUp = status.New(status.DownstreamGone, ctx.Err())
	}
	if gaveUp != nil {
		if uc.forget(id) {
			if status.KindOf(gaveUp) == status.Timeout {
				pick.Done(lb.Timeout)
			} else {
				pick.Done(lb.Canceled)
			}
			return nil, gaveUp
		}
		<-pc.done // the answer is being delivered: take it
	}
	if pc.err != nil {
		err := pc.err
		pc.err = nil
		pick.Done(lb.ResultOf(status.KindOf(err)))
		return nil, err
	}
	f := pc.frame
	pc.frame = nil
	st := f.Header.Status
	pick.Done(lb.Status(status.HTTPFromDubbo(uint8(st))))
	resp := &cl.resp
	resp.Reset()
	resp.Proto = l7.Dubbo
	resp.Status = status.HTTPFromDubbo(uint8(st))
	resp.ContentLength = int64(len(f.Body()))
	resp.Header.AddBytes(nameStatus, statusBytes[st])
	cl.reply = upReply{frame: f, body: f.Body()}
	resp.Body = &cl.reply
	return resp, nil
}

var nameStatus = []byte(dubborouter.HeaderStatus)

// statusBytes are the decimal forms of every status byte.
var statusBytes = func() (t [256][]byte) {
	for i := range t {
		t[i] = []byte(strconv.Itoa(i))
	}
	return t
}()

// upReply is the body of an upstream answer: the provider's frame, read
// as its body by a filter that wants to, released on Close or by the
// connection manager when it writes the frame on.
type upReply struct {
	frame *dubbo.Frame
	body  []byte
}

// Read reads the frame's body.
func (r *upReply) Read(p []byte) (int, error) {
	if len(r.body) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.body)
	r.body = r.body[n:]
	return n, nil
}

// Close releases the frame.
func (r *upReply) Close() error {
	r.release()
	return nil
}

func (r *upReply) take() *dubbo.Frame {
	f := r.frame
	r.frame, r.body = nil, nil
	return f
}

func (r *upReply) release() {
	if f := r.take(); f != nil {
		f.Release()
	}
}
