// Package dubborouter is the router of Dubbo calls, Envoy's
// envoy.filters.dubbo.router: the terminal filter of a dubbo_proxy's
// dubbo_filters. It takes the route the call matched (package
// dubboroute), picks its cluster (weighted), bounds the call by the
// consumer's timeout (the "timeout" attachment, in milliseconds, else
// DefaultTimeout) and retries, on another endpoint each time, the tries
// that cannot have run: a connection that failed or was refused before
// the call was sent, and a provider's answer 100 (threadpool exhausted),
// as a Dubbo consumer's failover would. A call that was sent and lost (the
// provider reset or closed mid-call) is not retried: it may have run.
//
// It sends calls through the stream's filters.Upstream, which for a Dubbo
// call is the connection manager's (proxy/dubboconn): the request is the
// call in the request model, the response carries the provider's status
// as ":dubbo-status" (and as an HTTP status, protocols/status's mapping)
// with the provider's frame as its body. As the HTTP router does, it
// tells the stream's Observer of each try and records the tries, the
// cluster, the endpoint and the last failure on the stream, for metrics
// and access logs.
package dubborouter

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	dubborouterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/dubbo_proxy/router/v3"
	"google.golang.org/protobuf/proto"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/filters/dubboroute"
	"github.com/gowaypoint/waypoint/internal/pbcheck"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/protocols/status"
)

// Name and TypeURL identify the filter in a dubbo_proxy's dubbo_filters.
const (
	Name    = "envoy.filters.dubbo.router"
	TypeURL = "type.googleapis.com/envoy.extensions.filters.network.dubbo_proxy.router.v3.Router"
)

// Defaults.
const (
	// DefaultTimeout bounds a call that carries no timeout attachment, as
	// Envoy's route timeout does (Java consumers always send one).
	DefaultTimeout = 15 * time.Second
	// DefaultRetries is how many times a call is tried again, each time on
	// an endpoint not tried yet: Dubbo's failover default.
	DefaultRetries = 2
	// hostSelectionAttempts is how hard a retry tries to pick an endpoint
	// it has not tried.
	hostSelectionAttempts = 5
)

// Attachment and response header names.
const (
	// HeaderTimeout is the consumer's timeout attachment (milliseconds).
	HeaderTimeout = "timeout"
	// HeaderStatus is the Dubbo status of an upstream response, in its
	// header (set by the connection manager's Upstream).
	HeaderStatus = ":dubbo-status"
)

func init() { filters.Register(factory{}) }

type factory struct{}

func (factory) Names() []string    { return []string{Name} }
func (factory) TypeURLs() []string { return []string{TypeURL} }

var allowlist = pbcheck.Allowlist{
	"envoy.extensions.filters.network.dubbo_proxy.router.v3.Router": pbcheck.F(),
}

// New builds the router; Envoy's Router config has no fields.
func (factory) New(_ filters.BuildContext, cfg proto.Message) (*Router, error) {
	r := &Router{Retries: DefaultRetries, DefaultTimeout: DefaultTimeout}
	if cfg == nil {
		return r, nil
	}
	pb, ok := cfg.(*dubborouterv3.Router)
	if !ok {
		return nil, fmt.Errorf("dubbo router: config is %T, want Router", cfg)
	}
	if err := allowlist.Check(pb.ProtoReflect()); err != nil {
		return nil, err
	}
	return r, nil
}

// Router is the terminal filter of Dubbo chains. Read-only after New;
// safe for concurrent use.
type Router struct {
	// Retries is how many times a call is tried again.
	Retries int
	// DefaultTimeout bounds a call without a timeout attachment.
	DefaultTimeout time.Duration
}

var _ filters.Terminal = (*Router)(nil)

// DubboOnly marks the router as a filter of Dubbo chains only: an HTTP
// connection manager refuses it.
func (*Router) DubboOnly() {}

// Serve routes s, a Dubbo call: s.Response is the provider's answer, or
// s.Local the proxy's.
func (r *Router) Serve(s *filters.Stream) error {
	fr := s.Route()
	if fr == nil {
		return status.New(status.NoRoute, fmt.Errorf("no route for the call to %s", s.Request.Path))
	}
	rt, ok := fr.(*dubboroute.Route)
	if !ok {
		return fmt.Errorf("dubbo router: route of type %T", fr)
	}
	if reason := rt.Refusal(); reason != "" {
		s.SendLocalReply(400, reason, 0)
		return nil
	}
	if s.Upstream == nil {
		return errors.New("dubbo router: the stream has no upstream")
	}
	t := try{
		s:        s,
		retries:  r.Retries,
		deadline: s.Start.Add(r.timeout(s.Request)),
		ureq: filters.UpstreamRequest{Cluster: rt.Cluster(rand.Uint64()), Request: s.Request,
			Downstream: s.Downstream, MaxHostSelectionAttempts: hostSelectionAttempts},
	}
	resp, err := t.run()
	if err != nil {
		return err
	}
	s.Response = resp
	return nil
}

// timeout is the consumer's timeout attachment, else the default.
func (r *Router) timeout(req *l7.Request) time.Duration {
	v, ok := req.Header.Get(HeaderTimeout)
	if !ok || len(v) == 0 || len(v) > 10 {
		return r.DefaultTimeout
	}
	var ms int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return r.DefaultTimeout
		}
		ms = ms*10 + int64(c-'0')
	}
	if ms == 0 {
		return r.DefaultTimeout
	}
	return time.Duration(ms) * time.Millisecond
}

// try runs the attempts of one call.
type try struct {
	s        *filters.Stream
	retries  int
	deadline time.Time
	ureq     filters.UpstreamRequest
	tried    [DefaultRetries + 1]netip.AddrPort
	nTried   int
}

func (t *try) run() (*l7.Response, error) {
	for attempt := 0; ; attempt++ {
		t.ureq.Retry = attempt > 0
		t.ureq.Deadline = t.deadline
		t.ureq.Host = netip.AddrPort{}
		t.ureq.Exclude = t.tried[:t.nTried]
		resp, err := t.attempt()
		if t.ureq.Host.IsValid() && t.nTried < len(t.tried) {
			t.tried[t.nTried] = t.ureq.Host
			t.nTried++
		}
		more := attempt < t.retries && time.Now().Before(t.deadline) && t.s.Context.Err() == nil
		if err == nil {
			if !threadpoolExhausted(resp) || !more {
				if attempt > 0 && threadpoolExhausted(resp) {
					t.s.AddResponseFlag(filters.FlagURX)
				}
				return resp, nil
			}
			discard(resp)
			continue
		}
		if !retriable(err) || !more {
			if attempt > 0 && retriable(err) {
				t.s.AddResponseFlag(filters.FlagURX)
			}
			return nil, err
		}
	}
}

// attempt sends one try (Stream.SendTry).
func (t *try) attempt() (*l7.Response, error) { return t.s.SendTry(&t.ureq) }

// retriable reports whether a failed try cannot have reached a provider.
func retriable(err error) bool {
	switch status.KindOf(err) {
	case status.ConnectFailure, status.RefusedStream:
		return true
	}
	return false
}

// threadpoolExhausted reports whether the provider refused the call
// before running it (status 100).
func threadpoolExhausted(resp *l7.Response) bool {
	v, ok := resp.Header.Get(HeaderStatus)
	return ok && string(v) == "100"
}

// discard releases a response that is not passed on.
func discard(resp *l7.Response) {
	if c, ok := resp.Body.(interface{ Close() error }); ok {
		c.Close()
	}
}
