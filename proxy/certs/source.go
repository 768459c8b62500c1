package certs

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
)

// DefaultPollInterval is how often a Source looks at its files when
// SourceOptions.PollInterval is not set.
const DefaultPollInterval = time.Second

// SourceOptions tunes a Source. The zero value is ready to use.
type SourceOptions struct {
	// PollInterval between two looks at the files; DefaultPollInterval
	// when zero or negative.
	PollInterval time.Duration
	// Logger receives reloads and refused updates; slog.Default() when nil.
	Logger *slog.Logger
}

// Source serves the workload identity held in a directory of Istio's
// layout (CertChainFile, KeyFile, RootCertFile) and keeps it current.
//
// One goroutine, started by NewSource and stopped by Close, looks at the
// three files every PollInterval (os.Stat following symlinks, so a
// Kubernetes secret mount's ..data swap is seen). When one changed it
// rereads all three and, if they make a valid identity, swaps them in
// atomically: handshakes that start afterwards present the new leaf and
// trust the new roots; established connections are not touched. An update
// that does not validate is logged and the previous identity keeps serving.
//
// All methods are safe for concurrent use.
type Source struct {
	// Read-only after NewSource.
	dir  string
	poll time.Duration
	log  *slog.Logger

	cur atomic.Pointer[material]

	// Owned by the poll goroutine after NewSource.
	stamps fileStamps
	seen   identityFiles

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// NewSource loads the identity in dir and starts watching it. It fails when
// a file is missing or malformed, when the key does not match the leaf, when
// the leaf has no valid SPIFFE ID, is not valid now, or does not chain to a
// root of RootCertFile. The caller must Close the Source.
func NewSource(dir string, opts SourceOptions) (*Source, error) {
	s := &Source{
		dir:  dir,
		poll: opts.PollInterval,
		log:  opts.Logger,
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	if s.poll <= 0 {
		s.poll = DefaultPollInterval
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	stamps, err := statFiles(dir)
	if err != nil {
		return nil, fmt.Errorf("load identity from %s: %w", dir, err)
	}
	files, err := readFiles(dir)
	if err != nil {
		return nil, fmt.Errorf("load identity from %s: %w", dir, err)
	}
	m, err := loadMaterial(files, time.Now())
	if err != nil {
		return nil, fmt.Errorf("load identity from %s: %w", dir, err)
	}
	s.cur.Store(m)
	s.stamps, s.seen = stamps, files
	go s.run()
	return s, nil
}

// Identity returns the SPIFFE ID of the current leaf.
func (s *Source) Identity() spiffe.ID { return s.cur.Load().id }

// Certificate returns the current leaf with its chain, as presented to
// peers (the client certificate a control plane may ask for).
func (s *Source) Certificate() (*tls.Certificate, error) { return s.cur.Load().cert, nil }

// TrustDomain returns the trust domain of the current leaf, which is the
// only trust domain ServerTLSConfig accepts clients from.
func (s *Source) TrustDomain() string { return s.cur.Load().id.TrustDomain }

// Roots returns the trusted roots of the identity in force (the root
// file's certificates). The slice is shared and must not be modified.
func (s *Source) Roots() []*x509.Certificate { return s.cur.Load().rootCerts }

// Dir is the directory the identity is read from; empty for a Source fed
// from memory.
func (s *Source) Dir() string { return s.dir }

// Close stops watching the files and waits for the poll goroutine to end.
// The TLS configurations keep serving the last identity. Close is
// idempotent.
func (s *Source) Close() error {
	s.closeOnce.Do(func() { close(s.stop) })
	<-s.done
	return nil
}

// run is the poll goroutine.
func (s *Source) run() {
	defer close(s.done)
	t := time.NewTicker(s.poll)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.check()
		}
	}
}

// check reloads the files when their stamps changed and their content
// differs from what was last read. Each distinct change is logged once.
func (s *Source) check() {
	stamps, err := statFiles(s.dir)
	if stamps == s.stamps {
		return
	}
	s.stamps = stamps
	if err != nil {
		s.log.Warn("identity files unavailable; keeping the current identity",
			"dir", s.dir, "identity", s.Identity().String(), "err", err)
		return
	}
	files, err := readFiles(s.dir)
	if err != nil {
		s.log.Warn("identity files unreadable; keeping the current identity",
			"dir", s.dir, "identity", s.Identity().String(), "err", err)
		return
	}
	if files.equal(s.seen) {
		return
	}
	s.seen = files
	m, err := loadMaterial(files, time.Now())
	if err != nil {
		s.log.Error("refused identity update; keeping the current identity",
			"dir", s.dir, "identity", s.Identity().String(), "err", err)
		return
	}
	old := s.cur.Swap(m)
	s.log.Info("reloaded identity",
		"dir", s.dir, "identity", m.id.String(), "previous", old.id.String(),
		"not_after", m.cert.Leaf.NotAfter)
}
