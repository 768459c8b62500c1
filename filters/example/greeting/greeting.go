// Package greeting is the example filter of docs/filters.md: it tells the
// backend who is calling, in a request header, and turns away callers on a
// deny list with a 403, which each protocol renders its own way.
package greeting

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/gowaypoint/waypoint/filters"
)

// Name and TypeURL identify the filter in an HttpConnectionManager. Its
// config travels in a TypedStruct, as custom filters' configs do in Envoy;
// an http_filters entry:
//
//	name: example.greeting
//	typed_config:
//	  "@type": type.googleapis.com/xds.type.v3.TypedStruct
//	  type_url: type.googleapis.com/example.greeting.v1.Config
//	  value: {header: x-caller, deny: [intruder]}
const (
	Name    = "example.greeting"
	TypeURL = "type.googleapis.com/example.greeting.v1.Config"
)

func init() { filters.Register(factory{}) }

type factory struct{}

func (factory) Names() []string    { return []string{Name} }
func (factory) TypeURLs() []string { return []string{TypeURL} }

// Config is the filter's config, the TypedStruct's value.
type Config struct {
	Header string   `json:"header"` // the request header naming the caller; default "x-caller"
	Deny   []string `json:"deny"`   // service accounts turned away
}

// New decodes the config strictly (a field it does not know is refused,
// naming it). It counts the callers turned away on ctx's stats scope, the
// waypoint's registry: a reload keeps counting on the same series.
func (factory) New(ctx filters.BuildContext, cfg proto.Message) (*Filter, error) {
	c := Config{Header: "x-caller"}
	if err := filters.DecodeTypedStruct(cfg, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	f := &Filter{header: c.Header, deny: map[string]bool{}}
	for _, sa := range c.Deny {
		f.deny[sa] = true
	}
	var err error
	f.denied, err = ctx.Stats.Counter(prometheus.CounterOpts{
		Name: "greeting_denied_total", Help: "Callers the greeting filter turned away."})
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Filter is built once per chain and shared by all its streams, so it keeps
// nothing per request.
type Filter struct {
	header string
	deny   map[string]bool
	denied prometheus.Counter
}

// OnRequest names the caller (the HBONE peer's service account) upstream,
// or answers 403.
func (f *Filter) OnRequest(s *filters.Stream) filters.Status {
	caller := s.Downstream.Peer.ServiceAccount
	if f.deny[caller] {
		f.denied.Inc()
		return s.SendLocalReply(403, "greeting: "+caller+" is not welcome", 0)
	}
	s.Request.Header.Set(f.header, caller)
	return filters.Continue
}

// OnResponse marks upstream responses; a local reply has no Response.
func (f *Filter) OnResponse(s *filters.Stream) filters.Status {
	if s.Response != nil {
		s.Response.Header.Set("x-greeted", "true")
	}
	return filters.Continue
}
