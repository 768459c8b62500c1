package main

import (
	"fmt"
	"path/filepath"
	"strings"
)

// The harness's loopback plan: every piece has its own address in
// 127.0.40.0/24, and nothing is ever sent elsewhere.
//
//	127.0.40.10  backend: fortio server, HTTP :8080 (echo, ?size=1024), gRPC :8079
//	127.0.40.11  the pod: fortio server (:8080, :8079), the harness's sink (:9000)
//	             and echo (:9001), `hbone serve` (:15008), the nginx TLS chain's
//	             destination edge (:15443 HTTP/1.1, :15444 gRPC)
//	127.0.40.20  the waypoint (the first of its -gomaxprocs variants): plaintext
//	             HTTP/1.1 :8080, h2c :8081, gRPC :8082, HBONE :15008, admin :15000
//	127.0.40.51-58  the waypoint's other variants, in -gomaxprocs order (the
//	             same ports as .20): every variant of a scenario is up at once
//	127.0.40.21  nginx, 127.0.40.22 haproxy, 127.0.40.23 caddy (same ports as the waypoint)
//	127.0.40.24  the nginx TLS chain's middle (the waypoint's counterpart): :15443, :15444
//	127.0.40.30  the client pod's `hbone connect` sources (to the first variant):
//	             :18001 HTTP, :18002 gRPC, :18003 bulk, :18004 idle
//	127.0.40.61-68  the same sources to the other variants (.61 to .51, ...)
//	127.0.40.31  the nginx TLS chain's source edge: :18001 HTTP/1.1, :18002 gRPC
//	127.0.40.40  the harness's own client sockets (bulk, idle)
//	127.0.40.100-103  service VIPs (HTTP, gRPC, bulk, idle): only ever an
//	             HBONE :authority, never dialed
//
// The pod's `hbone serve` is one for all the variants of a scenario.
//
// -net moves the whole plan to another /24 (useNet).

// The pieces' addresses, in 127.0.40.0/24 unless -net says otherwise.
var (
	ipNet         = "127.0.40" // the plan's /24
	ipBackend     = "127.0.40.10"
	ipPod         = "127.0.40.11"
	ipWaypoint    = "127.0.40.20"
	ipNginx       = "127.0.40.21"
	ipHAProxy     = "127.0.40.22"
	ipCaddy       = "127.0.40.23"
	ipNginxMiddle = "127.0.40.24"
	ipSource      = "127.0.40.30"
	ipNginxSource = "127.0.40.31"
	ipHarness     = "127.0.40.40"
	ipVIPHTTP     = "127.0.40.100"
	ipVIPGRPC     = "127.0.40.101"
	ipVIPBulk     = "127.0.40.102"
	ipVIPIdle     = "127.0.40.103"
)

// useNet moves every address of the plan to prefix.0/24 (three octets
// of 127.0.0.0/8), so that two harnesses can run side by side.
func useNet(prefix string) {
	ipNet = prefix
	for _, ip := range []*string{&ipBackend, &ipPod, &ipWaypoint, &ipNginx, &ipHAProxy, &ipCaddy, &ipNginxMiddle, &ipSource, &ipNginxSource, &ipHarness, &ipVIPHTTP, &ipVIPGRPC, &ipVIPBulk, &ipVIPIdle} {
		*ip = prefix + (*ip)[strings.LastIndex(*ip, "."):]
	}
}

const (
	portHTTP     = 8080
	portGRPC     = 8079
	portProxyH1  = 8080
	portProxyH2C = 8081
	portProxyGRP = 8082
	portSink     = 9000
	portEcho     = 9001
	portHBONE    = 15008
	portAdmin    = 15000
	portTLSHTTP  = 15443
	portTLSGRPC  = 15444
	portSrcHTTP  = 18001
	portSrcGRPC  = 18002
	portSrcBulk  = 18003
	portSrcIdle  = 18004
)

// Identities of the bench mesh, written by `waypoint certs`.
const (
	trustDomain = "cluster.local"
	idNamespace = "bench"
	saWaypoint  = "waypoint"
	saClient    = "client"
	saPod       = "pod"
)

func hostPort(ip string, port int) string { return fmt.Sprintf("%s:%d", ip, port) }

// spiffeID is the identity of a bench service account.
func spiffeID(sa string) string {
	return fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", trustDomain, idNamespace, sa)
}

// waypointIP is the address of the waypoint variant at index i (its
// plaintext listeners, HBONE and admin).
func waypointIP(i int) string {
	if i == 0 {
		return ipWaypoint
	}
	return fmt.Sprintf("%s.%d", ipNet, 50+i)
}

// sourceIP is the address of the hbone connect sources to the waypoint
// variant at index i.
func sourceIP(i int) string {
	if i == 0 {
		return ipSource
	}
	return fmt.Sprintf("%s.%d", ipNet, 60+i)
}

// proxyIP is the listen address of a plaintext proxy.
func (o *options) proxyIP(proxy string) string {
	if v, ok := o.variant(proxy); ok {
		return waypointIP(v.index)
	}
	switch proxy {
	case "nginx":
		return ipNginx
	case "haproxy":
		return ipHAProxy
	case "caddy":
		return ipCaddy
	}
	panic("unknown proxy " + proxy)
}

// templateData is what the config templates in bench/loadtest see.
type templateData struct {
	Dir   string // the proxy's own working directory (pid, temp and error files)
	Certs string // the mesh's certificate directory
	IP    string // the proxy's listen address (plaintext proxies)

	Backend, Pod, Waypoint, NginxMiddle, NginxSource string
	VIPHTTP, VIPGRPC, VIPBulk, VIPIdle               string

	PortHTTP, PortGRPC, PortH1, PortH2C, PortProxyGRPC int
	PortSink, PortEcho, PortTLSHTTP, PortTLSGRPC       int
	PortSrcHTTP, PortSrcGRPC                           int

	IDPod string
}

func newTemplateData(dir, certs, ip string) templateData {
	return templateData{
		Dir: dir, Certs: certs, IP: ip,
		Backend: ipBackend, Pod: ipPod, Waypoint: ipWaypoint, NginxMiddle: ipNginxMiddle, NginxSource: ipNginxSource,
		VIPHTTP: ipVIPHTTP, VIPGRPC: ipVIPGRPC, VIPBulk: ipVIPBulk, VIPIdle: ipVIPIdle,
		PortHTTP: portHTTP, PortGRPC: portGRPC, PortH1: portProxyH1, PortH2C: portProxyH2C, PortProxyGRPC: portProxyGRP,
		PortSink: portSink, PortEcho: portEcho, PortTLSHTTP: portTLSHTTP, PortTLSGRPC: portTLSGRPC,
		PortSrcHTTP: portSrcHTTP, PortSrcGRPC: portSrcGRPC,
		IDPod: spiffeID(saPod),
	}
}

// CertDir is a bench identity's directory (Istio's file layout), for templates.
func (d templateData) CertDir(sa string) string { return filepath.Join(d.Certs, idNamespace, sa) }

// RootCert is the mesh root, for templates.
func (d templateData) RootCert() string { return filepath.Join(d.Certs, "root-cert.pem") }
