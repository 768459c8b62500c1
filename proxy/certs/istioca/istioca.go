// Package istioca gets the waypoint's workload certificate from istiod's
// CA, as Istio's agent does, and keeps it fresh; it also serves that CA
// protocol over a dev mesh CA, for tests and the demo.
//
// The protocol is IstioCertificateService.CreateCertificate (istio.io/api
// security/v1alpha1, the types istiod serves): the client sends a PEM CSR
// for its SPIFFE identity and the validity it asks for; istiod
// authenticates the call (the service account token, see package
// xds/istiod, on the same TLS connection to :15012 as xDS), checks that
// the CSR names the caller's identity only, and answers the chain, leaf
// first and root last. The agent also sends the "ClusterID" header.
//
// Client rotates as Istio's agent does: once the remaining life of the
// leaf falls under GraceRatio (Istio's SECRET_GRACE_PERIOD_RATIO, 0.5) of
// its whole life (NotBefore to NotAfter), it asks for a new one; a failed attempt is retried with
// jittered back-off while the current certificate keeps serving. Keys are
// ECDSA P-256 (Istio's agent makes RSA 2048 unless ECC is asked for;
// istiod signs both).
package istioca

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/proxy/certs"
	"github.com/gowaypoint/waypoint/xds/istiod"
)

// Defaults of ClientConfig.
const (
	DefaultTTL         = 24 * time.Hour // Istio's workload certificate TTL
	DefaultGraceRatio  = 0.5
	DefaultBackoffBase = time.Second
	DefaultBackoffMax  = time.Minute
	DefaultCallTimeout = 10 * time.Second
)

// ClientConfig configures a Client. Conn and ID are required.
type ClientConfig struct {
	// Conn reaches istiod (see istiod.Dial: TLS and the token).
	Conn grpc.ClientConnInterface
	// ID is the identity asked for: the waypoint's service account.
	ID spiffe.ID
	// ClusterID is sent as the ClusterID header ("Kubernetes" by default
	// in Istio); empty sends none.
	ClusterID string
	// TTL is the validity asked for; default 24 h. The CA may cut it.
	TTL time.Duration
	// GraceRatio: a new certificate is asked for when less than this part
	// of the leaf's life is left; default 0.5.
	GraceRatio float64
	// BackoffBase and BackoffMax bound the retry delay; defaults 1 s, 1 min.
	BackoffBase, BackoffMax time.Duration
	Logger                  *slog.Logger // default slog.Default()
}

// Client keeps a certs.Source filled from istiod's CA. Start it with
// Start; Close stops its rotation goroutine.
type Client struct {
	cfg ClientConfig
	ca  pb.IstioCertificateServiceClient
	src *certs.Source

	mu       sync.Mutex // guards issued
	issued   int
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// Start asks for the first certificate, retrying with back-off until ctx
// is done, and returns the Client with its Source; from then on one
// goroutine rotates the certificate until Close.
func Start(ctx context.Context, cfg ClientConfig) (*Client, error) {
	if cfg.Conn == nil || cfg.ID.IsZero() {
		return nil, errors.New("istioca: a connection and an identity are required")
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.GraceRatio <= 0 || cfg.GraceRatio >= 1 {
		cfg.GraceRatio = DefaultGraceRatio
	}
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = DefaultBackoffBase
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = DefaultBackoffMax
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Client{cfg: cfg, ca: pb.NewIstioCertificateServiceClient(cfg.Conn), stop: make(chan struct{}), done: make(chan struct{})}
	backoff := cfg.BackoffBase
	for {
		chain, key, root, err := c.fetch(ctx)
		if err == nil {
			if c.src, err = certs.NewSourceFromPEM(chain, key, root, cfg.Logger); err == nil {
				break
			}
		}
		wait := jitter(backoff)
		cfg.Logger.Warn("istioca: no workload certificate yet", "identity", cfg.ID.String(), "error", err, "retry_in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("istioca: first certificate for %s: %w (last error: %v)", cfg.ID, ctx.Err(), err)
		case <-time.After(wait):
		}
		backoff = min(2*backoff, cfg.BackoffMax)
	}
	cfg.Logger.Info("istioca: workload certificate issued", "identity", cfg.ID.String(), "not_after", c.src.Leaf().NotAfter)
	go c.rotate()
	return c, nil
}

// Source is the identity the Client keeps fresh.
func (c *Client) Source() *certs.Source { return c.src }

// Issued is how many certificates the CA has issued to this Client.
func (c *Client) Issued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.issued
}

// Close stops rotating and waits for the goroutine to end. The Source keeps
// serving the last certificate.
func (c *Client) Close() {
	c.stopOnce.Do(func() { close(c.stop) })
	<-c.done
}

// rotate is the rotation goroutine.
func (c *Client) rotate() {
	defer close(c.done)
	backoff := c.cfg.BackoffBase
	for {
		leaf := c.src.Leaf()
		life := leaf.NotAfter.Sub(leaf.NotBefore)
		wait := time.Until(leaf.NotAfter.Add(-time.Duration(float64(life) * c.cfg.GraceRatio)))
		t := time.NewTimer(max(wait, 0))
		select {
		case <-c.stop:
			t.Stop()
			return
		case <-t.C:
		}
		for {
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				select {
				case <-c.stop:
				case <-ctx.Done():
				}
				cancel()
			}()
			chain, key, root, err := c.fetch(ctx)
			if err == nil {
				err = c.src.Set(chain, key, root)
			}
			cancel()
			if err == nil {
				backoff = c.cfg.BackoffBase
				c.cfg.Logger.Info("istioca: workload certificate rotated", "identity", c.cfg.ID.String(), "not_after", c.src.Leaf().NotAfter)
				break
			}
			d := jitter(backoff)
			c.cfg.Logger.Warn("istioca: rotation failed; the current certificate keeps serving", "error", err,
				"not_after", leaf.NotAfter, "retry_in", d.Round(time.Millisecond))
			select {
			case <-c.stop:
				return
			case <-time.After(d):
			}
			backoff = min(2*backoff, c.cfg.BackoffMax)
		}
	}
}

// fetch makes a key and CSR and has the CA sign it; it returns Istio's
// three files: the chain (leaf first), the key, and the root (the chain's
// last certificate).
func (c *Client) fetch(ctx context.Context) (chain, key, root []byte, err error) {
	csr, key, err := certs.NewCSR(c.cfg.ID)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, DefaultCallTimeout)
	defer cancel()
	if c.cfg.ClusterID != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "ClusterID", c.cfg.ClusterID)
	}
	resp, err := c.ca.CreateCertificate(ctx, &pb.IstioCertificateRequest{Csr: string(csr), ValidityDuration: int64(c.cfg.TTL / time.Second)})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("CreateCertificate: %w", err)
	}
	pems := resp.GetCertChain()
	if len(pems) < 2 {
		return nil, nil, nil, fmt.Errorf("CreateCertificate: a chain of %d certificates, want the leaf and the root at least", len(pems))
	}
	var b strings.Builder
	for _, p := range pems {
		b.WriteString(strings.TrimRight(p, "\n"))
		b.WriteString("\n")
	}
	c.mu.Lock()
	c.issued++
	c.mu.Unlock()
	return []byte(b.String()), key, []byte(pems[len(pems)-1]), nil
}

func jitter(d time.Duration) time.Duration { return d/2 + time.Duration(rand.Int64N(int64(d/2)+1)) }

// Server is IstioCertificateService over a dev mesh CA, for tests and the
// demo: it signs the CSR of a caller that istiod.TokenAuth authenticated
// (istiod.Caller, "ns/sa") for that caller's identity only.
type Server struct {
	pb.UnimplementedIstioCertificateServiceServer
	// CA signs; TrustDomain is the identities'.
	CA          *certs.CA
	TrustDomain string
	// MaxTTL caps the validity asked for; default 24 h.
	MaxTTL time.Duration
	Logger *slog.Logger // default slog.Default()
}

// Register adds the service to a gRPC server.
func (s *Server) Register(g *grpc.Server) { pb.RegisterIstioCertificateServiceServer(g, s) }

// CreateCertificate implements the service.
func (s *Server) CreateCertificate(ctx context.Context, req *pb.IstioCertificateRequest) (*pb.IstioCertificateResponse, error) {
	log := s.Logger
	if log == nil {
		log = slog.Default()
	}
	who := istiod.Caller(ctx)
	ns, sa, err := certs.ParseNamespacedSA(who)
	if err != nil {
		return nil, status.Errorf(codes.Unauthenticated, "no authenticated caller (%q)", who)
	}
	id := spiffe.ID{TrustDomain: s.TrustDomain, Namespace: ns, ServiceAccount: sa}
	ttl := time.Duration(req.GetValidityDuration()) * time.Second
	maxTTL := s.MaxTTL
	if maxTTL <= 0 {
		maxTTL = DefaultTTL
	}
	if ttl <= 0 || ttl > maxTTL {
		ttl = maxTTL
	}
	chain, err := s.CA.SignCSR([]byte(req.GetCsr()), id, ttl)
	if err != nil {
		log.Warn("istioca server: CSR refused", "caller", who, "error", err)
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	log.Info("istioca server: certificate issued", "identity", id.String(), "ttl", ttl)
	return &pb.IstioCertificateResponse{CertChain: chain}, nil
}
