// Package admin serves the waypoint's admin endpoints in the formats of
// Envoy's admin interface, so that tools written for Envoy (istioctl
// proxy-config, Istio's dashboards, curl habits) read them:
//
//	/ready /healthz/ready   503 until the first config is in force, then 200 "LIVE"
//	/server_info            version, state, uptime, command line, node (JSON)
//	/config_dump            ?resource= ?mask= ?include_eds (dump.go)
//	/clusters /listeners    text, or ?format=json (clusters.go, listeners.go)
//	/stats                  text, ?format=json, ?filter=REGEX; /stats/prometheus (stats.go)
//	/certs /memory          JSON (info.go)
//	/logging                GET lists, POST ?level= or ?<logger>= changes (logging.go)
//	/quitquitquit /drain_listeners   POST only, as in Envoy
//	/help /                 the endpoints and their parameters
//	/debug/pprof/           Go's profiles
//
// The package renders; what it renders comes from Sources, which the
// waypoint fills (proxy/waypoint/admin.go).
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sort"
	"strings"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/prometheus/client_golang/prometheus"
)

// Sources are the functions the admin handlers read. Each is called per
// request and must be safe for concurrent use; a nil one answers 404 for
// its endpoint (and Ready nil means never ready).
type Sources struct {
	// Ready reports whether the first config is in force and the
	// listeners are up.
	Ready func() bool
	// State is the server's state for /server_info; nil derives it from
	// Ready (LIVE, else INITIALIZING).
	State func() adminv3.ServerInfo_State
	// ConfigDump returns the config dump's sections (any order, any of
	// Envoy's *ConfigDump messages; the EndpointsConfigDump is dropped
	// unless include_eds is asked for).
	ConfigDump func() ([]*adminv3.ConfigDump, error)
	// Clusters and Listeners are the /clusters and /listeners answers.
	Clusters  func() *adminv3.Clusters
	Listeners func() *adminv3.Listeners
	// Certs is the /certs answer.
	Certs func() *adminv3.Certificates
	// Node, Version, CommandLine and Start fill /server_info.
	Node        func() *corev3.Node
	Version     string
	CommandLine *adminv3.CommandLineOptions
	Start       time.Time
	// Stats is gathered for /stats; nil answers 404.
	Stats prometheus.Gatherer
	// Loggers are the loggers /logging lists and sets; nil answers 404.
	Loggers *Loggers
	// Quit asks the process to exit gracefully (/quitquitquit).
	Quit func()
	// DrainListeners stops the listeners accepting (/drain_listeners):
	// graceful first tells connections to finish; inboundOnly drains only
	// inbound listeners. It returns at once; an error answers 400.
	DrainListeners func(graceful, inboundOnly bool) error
	// Extra handlers mounted beside the built-in ones, by path.
	Extra map[string]http.Handler
}

// Server is the admin HTTP server. Start it with Serve; Close stops it.
type Server struct {
	srv *http.Server
}

// endpoint is one admin path: its handler, its help line, and whether it
// changes state (POST only, as Envoy's mutating endpoints are).
type endpoint struct {
	path   string
	help   string
	post   bool
	params []string
	h      http.HandlerFunc
}

// New returns a server for src; logger nil means slog.Default().
func New(src Sources, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.Default()
	}
	return &Server{
		srv: &http.Server{
			Handler:           Handler(src),
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
		},
	}
}

// Handler is the admin interface for src, without a server.
func Handler(src Sources) http.Handler {
	eps := endpoints(src)
	mux := http.NewServeMux()
	for _, ep := range eps {
		mux.HandleFunc(ep.path, methodCheck(ep))
	}
	help := helpHandler(eps)
	mux.HandleFunc("/help", help)
	mux.HandleFunc("/{$}", help)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	for path, h := range src.Extra {
		mux.Handle(path, h)
	}
	return mux
}

func endpoints(src Sources) []endpoint {
	ready := func(w http.ResponseWriter, r *http.Request) {
		if src.Ready != nil && src.Ready() {
			writeText(w, "LIVE\n")
			return
		}
		http.Error(w, stateOf(src).String(), http.StatusServiceUnavailable)
	}
	return []endpoint{
		{path: "/ready", help: "print server state, return 200 if LIVE, otherwise return 503", h: ready},
		{path: "/healthz/ready", help: "as /ready", h: ready},
		{path: "/server_info", help: "print server version/status information", h: src.serverInfo},
		{path: "/config_dump", help: "dump current Envoy configs", params: []string{"resource", "mask", "name_regex", "include_eds"}, h: src.configDump},
		{path: "/clusters", help: "upstream cluster status", params: []string{"format"}, h: src.clusters},
		{path: "/listeners", help: "print listener info", params: []string{"format"}, h: src.listeners},
		{path: "/stats", help: "print server stats", params: []string{"format", "filter", "usedonly", "type"}, h: src.stats},
		{path: "/certs", help: "print certs on machine", h: src.certs},
		{path: "/memory", help: "print current allocation/heap usage", h: serveMemory},
		{path: "/logging", help: "query/change logging levels", params: []string{"level", "paths", "<logger>"}, h: src.logging},
		{path: "/quitquitquit", help: "exit the server", post: true, h: src.quit},
		{path: "/drain_listeners", help: "drain listeners", post: true, params: []string{"graceful", "inboundonly"}, h: src.drainListeners},
	}
}

// methodCheck refuses GET on a mutating endpoint with Envoy's 405, and
// anything but GET, HEAD and POST elsewhere.
func methodCheck(ep endpoint) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		switch {
		case ep.post && r.Method != http.MethodPost:
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "This endpoint requires POST.", http.StatusMethodNotAllowed)
			return
		case !ep.post && r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodPost:
			w.Header().Set("Allow", "GET, HEAD, POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		ep.h(w, r)
	}
}

func helpHandler(eps []endpoint) http.HandlerFunc {
	lines := make([]string, 0, len(eps)+2)
	for _, ep := range eps {
		l := fmt.Sprintf("  %s: %s", ep.path, ep.help)
		if ep.post {
			l += " (POST)"
		}
		if len(ep.params) > 0 {
			l += " [" + strings.Join(ep.params, ", ") + "]"
		}
		lines = append(lines, l)
	}
	lines = append(lines, "  /stats/prometheus: print server stats in prometheus format", "  /help: print out list of admin commands")
	sort.Strings(lines)
	text := "admin commands are:\n" + strings.Join(lines, "\n") + "\n"
	return func(w http.ResponseWriter, r *http.Request) { writeText(w, text) }
}

func (src Sources) quit(w http.ResponseWriter, r *http.Request) {
	if src.Quit == nil {
		http.NotFound(w, r)
		return
	}
	writeText(w, "OK\n")
	src.Quit()
}

func (src Sources) drainListeners(w http.ResponseWriter, r *http.Request) {
	if src.DrainListeners == nil {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	if err := src.DrainListeners(q.Has("graceful"), q.Has("inboundonly")); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	writeText(w, "OK\n")
}

func writeText(w http.ResponseWriter, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	w.Write([]byte(s))
}

func writeJSON(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// Serve serves on ln until Close; it returns nil after Close.
func (s *Server) Serve(ln net.Listener) error {
	err := s.srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops the server and its connections at once.
func (s *Server) Close() error {
	return s.srv.Close()
}

// Shutdown stops the server gracefully until ctx is done.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.srv.Shutdown(ctx)
}
