package main

import "fmt"

// kind is how a scenario loads its proxies.
type kind int

const (
	kindRequests kind = iota // fortio, fixed rate or closed loop
	kindBulk                 // the harness's bulk TCP client through HBONE
	kindIdle                 // the harness's idle streams through HBONE
)

// scenario is one job that every proxy taking part does the same way.
type scenario struct {
	name      string
	what      string // for the report
	kind      kind
	protocol  string // http1, h2c or grpc (kindRequests)
	plaintext bool   // the four proxies' plaintext listeners
	hbone     bool   // hbone connect → waypoint → hbone serve, against the nginx TLS chain
	closed    bool   // closed loop: as many requests as the connections carry
	restart   bool   // fresh processes for every measured run
}

var scenarios = []scenario{
	{name: "http1", kind: kindRequests, protocol: "http1", plaintext: true,
		what: "plaintext HTTP/1.1 keep-alive, GET with a 1 KiB response, fixed rate"},
	{name: "http1-max", kind: kindRequests, protocol: "http1", plaintext: true, closed: true,
		what: "plaintext HTTP/1.1 keep-alive, 1 KiB response, closed loop (as fast as it goes)"},
	{name: "h2c", kind: kindRequests, protocol: "h2c", plaintext: true,
		what: "h2c downstream (one connection per client), HTTP/1.1 keep-alive upstream, 1 KiB response, fixed rate"},
	{name: "grpc", kind: kindRequests, protocol: "grpc", plaintext: true,
		what: "gRPC unary (fortio ping, 1 KiB each way) over h2c both sides, fixed rate"},
	{name: "hbone-http1", kind: kindRequests, protocol: "http1", hbone: true,
		what: "HTTP/1.1 through hbone connect → waypoint → hbone serve → pod, fixed rate; nginx: its TLS chain's middle"},
	{name: "hbone-grpc", kind: kindRequests, protocol: "grpc", hbone: true,
		what: "gRPC unary through hbone connect → waypoint → hbone serve → pod, fixed rate; nginx: its TLS chain's middle"},
	{name: "bulk", kind: kindBulk, hbone: true,
		what: "bulk TCP through hbone connect → waypoint (tcp_proxy) → hbone serve → sink"},
	{name: "idle", kind: kindIdle, hbone: true, restart: true,
		what: "idle TCP streams held through hbone connect → waypoint (tcp_proxy) → hbone serve → echo"},
}

func scenarioByName(name string) scenario {
	for _, s := range scenarios {
		if s.name == name {
			return s
		}
	}
	panic(fmt.Sprintf("unknown scenario %q", name))
}

// proxiesFor lists the selected proxies that take part in s, in the
// selection's order, the waypoint as its variants: every one, except in
// idle, which measures the first alone.
func (o *options) proxiesFor(s scenario) []string {
	var out []string
	for _, p := range o.proxies {
		if p == "waypoint" {
			for _, v := range o.variants {
				if s.kind != kindIdle || v.index == 0 {
					out = append(out, v.id)
				}
			}
			continue
		}
		if s.plaintext || s.kind == kindRequests && s.hbone && p == "nginx" {
			out = append(out, p)
		}
	}
	return out
}

// rate is the fortio -qps of s: 0 for the closed loop.
func (o *options) rate(s scenario) float64 {
	switch {
	case s.closed:
		return 0
	case s.hbone:
		return o.hboneQPS
	default:
		return o.qps
	}
}

// loadTarget is the address fortio loads for s on proxy: a URL for HTTP,
// host:port for gRPC.
func (o *options) loadTarget(s scenario, proxy string) string {
	var addr string
	switch {
	case s.plaintext:
		port := portProxyH1
		switch s.protocol {
		case "h2c":
			port = portProxyH2C
		case "grpc":
			port = portProxyGRP
		}
		addr = hostPort(o.proxyIP(proxy), port)
	case s.hbone:
		ip := ipNginxSource
		if v, ok := o.variant(proxy); ok {
			ip = sourceIP(v.index)
		}
		port := portSrcHTTP
		if s.protocol == "grpc" {
			port = portSrcGRPC
		}
		addr = hostPort(ip, port)
	}
	if s.protocol == "grpc" {
		return addr
	}
	return fmt.Sprintf("http://%s/echo?size=%d", addr, o.size)
}
