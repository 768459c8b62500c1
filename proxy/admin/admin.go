// Package admin serves the waypoint's admin endpoints, as Envoy's admin
// interface does: /healthz/ready, /config_dump and /debug/pprof/.
package admin

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// Sources are the functions the admin handlers read. Each is called per
// request and must be safe for concurrent use.
type Sources struct {
	// Ready reports whether config is loaded and listeners are up; nil
	// means never ready.
	Ready func() bool
	// ConfigDump renders the active config as JSON; nil answers 404.
	ConfigDump func() ([]byte, error)
	// Extra handlers mounted beside the built-in ones, by path.
	Extra map[string]http.Handler
}

// Server is the admin HTTP server. Start it with Serve; Close stops it.
type Server struct {
	srv *http.Server
}

// New returns a server for src; logger nil means slog.Default().
func New(src Sources, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.Default()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz/ready", func(w http.ResponseWriter, r *http.Request) {
		if src.Ready != nil && src.Ready() {
			w.Write([]byte("LIVE\n"))
			return
		}
		http.Error(w, "not ready", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/config_dump", func(w http.ResponseWriter, r *http.Request) {
		if src.ConfigDump == nil {
			http.NotFound(w, r)
			return
		}
		b, err := src.ConfigDump()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	for path, h := range src.Extra {
		mux.Handle(path, h)
	}
	return &Server{
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
		},
	}
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
