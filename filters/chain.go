package filters

import (
	"github.com/gowaypoint/waypoint/protocols/status"
)

// Chain is a configured list of filters ending with a Terminal. Immutable
// and safe for concurrent use once built.
type Chain struct {
	requestFilters  []RequestFilter
	responseFilters []ResponseFilter // in reverse chain order
	terminal        Terminal
}

// NewChain builds a chain; terminal must not be nil.
func NewChain(terminal Terminal, fs ...Filter) *Chain {
	c := &Chain{terminal: terminal}
	for _, f := range fs {
		if rf, ok := f.(RequestFilter); ok {
			c.requestFilters = append(c.requestFilters, rf)
		}
	}
	for i := len(fs) - 1; i >= 0; i-- {
		if rf, ok := fs[i].(ResponseFilter); ok {
			c.responseFilters = append(c.responseFilters, rf)
		}
	}
	return c
}

// Run passes s through the chain: request filters in order, the terminal,
// then response filters in reverse order. On return either s.Response is
// the response to write or s.Local is the local reply to render.
func (c *Chain) Run(s *Stream) {
	for _, f := range c.requestFilters {
		if f.OnRequest(s) == Stop {
			c.respond(s)
			return
		}
	}
	if err := c.terminal.Serve(s); err != nil && s.Local == nil {
		k := status.KindOf(err)
		s.SendLocalReply(k.HTTPStatus(), localBody(k, err, s.Attempts > 1), FlagOf(k))
		s.Local.Kind = k
	}
	c.respond(s)
}

func (c *Chain) respond(s *Stream) {
	for _, f := range c.responseFilters {
		if f.OnResponse(s) == Stop {
			return
		}
	}
}

// localBody is the body of a local reply for an error, as Envoy words its
// own ("no healthy upstream", "upstream connect error or disconnect/reset
// before headers. reset reason: ..."); retried says the request was tried
// more than once ("retried and the latest reset reason: ...", as Envoy
// says after a retry).
func localBody(k status.Kind, err error, retried bool) string {
	const reset = "upstream connect error or disconnect/reset before headers. "
	latest := ""
	if retried {
		latest = "retried and the latest "
	}
	switch k {
	case status.NoHealthyUpstream:
		return "no healthy upstream"
	case status.NoRoute:
		return ""
	case status.ConnectFailure, status.UpstreamReset:
		return reset + latest + "reset reason: " + err.Error()
	case status.ConnectionTermination:
		return reset + latest + "reset reason: connection termination" // Envoy's reason, whatever the error
	case status.Timeout:
		return "upstream request timeout"
	}
	return err.Error()
}
