// Package istiod connects to istiod, or to any xDS control plane, as Istio's
// agent does, and gives a test server the same checks istiod makes.
//
// A real istiod is reached on :15012 over TLS: its serving certificate is
// signed by the mesh CA, so it is verified against the mesh root (the
// istio-ca-root-cert ConfigMap, mounted at /var/run/secrets/istio/root-cert.pem)
// for the name istiod.istio-system.svc. Every call carries the pod's
// Kubernetes service account token, a projected token of audience istio-ca
// (/var/run/secrets/tokens/istio-token), as "authorization: Bearer TOKEN";
// the file is read afresh for each call, since the kubelet rotates it.
// Once the waypoint has a workload certificate it presents it as the TLS
// client certificate too (ControlPlaneTLS.ClientCertificate). istiod's CA
// (IstioCertificateService, package proxy/certs/istioca) is served on the
// same port with the same credentials.
//
// TokenCredentials refuse to send a token over a connection without
// transport security; a plaintext control plane (the tests' and the demo's
// `waypoint xds serve`) gets no token.
//
// BuildNode describes the waypoint to istiod as Istio's agent does, from
// the pod's environment and downward API files (node.go).
package istiod

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/gowaypoint/waypoint/xds"
)

// Istio's defaults, as its agent uses them.
const (
	// DefaultAddr is istiod's xDS and CA port.
	DefaultAddr = "istiod.istio-system.svc:15012"
	// DefaultServerName is the DNS SAN of istiod's serving certificate.
	DefaultServerName = "istiod.istio-system.svc"
	// DefaultTokenFile is where the pod's istio-ca token is mounted.
	DefaultTokenFile = "/var/run/secrets/tokens/istio-token"
	// DefaultRootCertFile is where the mesh root (istio-ca-root-cert) is mounted.
	DefaultRootCertFile = "/var/run/secrets/istio/root-cert.pem"
)

// DialConfig says how to reach a control plane.
type DialConfig struct {
	// ControlPlane is the target and its TLS (nil TLS: plaintext).
	ControlPlane xds.ControlPlane
	// TokenFile, when set, is read for each call and sent as a bearer
	// token; it needs TLS.
	TokenFile string
	// ClientCertificate returns the certificate to present when
	// ControlPlane.TLS.ClientCertificate is set (the workload identity).
	ClientCertificate func() (*tls.Certificate, error)
}

// Dial returns a gRPC client connection (it connects lazily, on the first
// call, and reconnects by itself). The caller closes it.
func Dial(cfg DialConfig) (*grpc.ClientConn, error) {
	cp := cfg.ControlPlane
	opts := []grpc.DialOption{}
	if cp.TLS == nil {
		if cfg.TokenFile != "" {
			return nil, fmt.Errorf("control plane %s: a token is only sent over TLS", cp.Target)
		}
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	} else {
		tc, err := clientTLS(cp, cfg.ClientCertificate)
		if err != nil {
			return nil, err
		}
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	}
	if cfg.TokenFile != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(TokenCredentials{File: cfg.TokenFile}))
	}
	if len(cp.InitialMetadata) > 0 {
		md := metadata.MD{}
		for _, kv := range cp.InitialMetadata {
			md.Append(kv[0], kv[1])
		}
		add := func(ctx context.Context) context.Context {
			return metadata.NewOutgoingContext(ctx, metadata.Join(md, mdFrom(ctx)))
		}
		opts = append(opts,
			grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, o ...grpc.CallOption) error {
				return invoker(add(ctx), method, req, reply, cc, o...)
			}),
			grpc.WithStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, o ...grpc.CallOption) (grpc.ClientStream, error) {
				return streamer(add(ctx), desc, cc, method, o...)
			}))
	}
	if cp.ConnectTimeout > 0 {
		d := &net.Dialer{Timeout: cp.ConnectTimeout}
		opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			network := "tcp"
			if rest, ok := strings.CutPrefix(addr, "unix://"); ok {
				network, addr = "unix", rest
			}
			return d.DialContext(ctx, network, addr)
		}))
	}
	conn, err := grpc.NewClient(cp.Target, opts...)
	if err != nil {
		return nil, fmt.Errorf("control plane %s: %w", cp.Target, err)
	}
	return conn, nil
}

func mdFrom(ctx context.Context) metadata.MD {
	md, _ := metadata.FromOutgoingContext(ctx)
	return md
}

// clientTLS is the TLS of a control-plane connection: TLS 1.2 or later,
// ALPN h2, the server's chain verified against the given roots (the
// system's when none), for ServerName, and its SANs against SANExact.
func clientTLS(cp xds.ControlPlane, clientCert func() (*tls.Certificate, error)) (*tls.Config, error) {
	t := cp.TLS
	tc := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"h2"}, ServerName: t.ServerName}
	if tc.ServerName == "" {
		host := strings.TrimPrefix(cp.Target, "dns:///")
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		tc.ServerName = host
	}
	pemData := t.RootCAPEM
	if t.RootCAFile != "" {
		var err error
		if pemData, err = os.ReadFile(t.RootCAFile); err != nil {
			return nil, fmt.Errorf("control plane %s: root certificate: %w", cp.Target, err)
		}
	}
	if len(pemData) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemData) {
			return nil, fmt.Errorf("control plane %s: root certificate %s: no PEM certificate", cp.Target, t.RootCAFile)
		}
		tc.RootCAs = pool
	}
	if t.ClientCertificate {
		if clientCert == nil {
			return nil, fmt.Errorf("control plane %s: a client certificate is asked for and none is configured", cp.Target)
		}
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return clientCert() }
	}
	if len(t.SANExact) > 0 {
		want := slices.Clone(t.SANExact)
		tc.VerifyConnection = func(cs tls.ConnectionState) error {
			leaf := cs.PeerCertificates[0]
			for _, n := range leaf.DNSNames {
				if slices.Contains(want, n) {
					return nil
				}
			}
			for _, u := range leaf.URIs {
				if slices.Contains(want, u.String()) {
					return nil
				}
			}
			return fmt.Errorf("control plane certificate matches none of the subject alt names %q", want)
		}
	}
	return tc, nil
}

// TokenCredentials send the token in File as "authorization: Bearer
// TOKEN" on every call, reading the file each time (Istio's agent does the
// same). They require transport security.
type TokenCredentials struct{ File string }

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (t TokenCredentials) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	b, err := os.ReadFile(t.File)
	if err != nil {
		return nil, fmt.Errorf("service account token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return nil, fmt.Errorf("service account token %s is empty", t.File)
	}
	return map[string]string{"authorization": "Bearer " + tok}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (TokenCredentials) RequireTransportSecurity() bool { return true }

// TokenAuthenticator maps a bearer token to the identity it stands for
// ("ns/sa"), or fails. istiod asks Kubernetes (a TokenReview); a test
// server looks the token up.
type TokenAuthenticator func(token string) (string, error)

type callerKey struct{}

// Caller is the identity TokenAuth authenticated for a call, "" if none.
func Caller(ctx context.Context) string {
	s, _ := ctx.Value(callerKey{}).(string)
	return s
}

// TokenAuth returns server options that refuse every call (Unauthenticated)
// whose bearer token auth does not accept, and put the caller's identity
// in the context (Caller) of those it does.
func TokenAuth(auth TokenAuthenticator) []grpc.ServerOption {
	check := func(ctx context.Context) (context.Context, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		vals := md.Get("authorization")
		if len(vals) != 1 {
			return nil, status.Error(codes.Unauthenticated, "no bearer token")
		}
		tok, ok := strings.CutPrefix(vals[0], "Bearer ")
		if !ok {
			return nil, status.Error(codes.Unauthenticated, "authorization is not a bearer token")
		}
		who, err := auth(tok)
		if err != nil {
			return nil, status.Errorf(codes.Unauthenticated, "token refused: %v", err)
		}
		return context.WithValue(ctx, callerKey{}, who), nil
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			ctx, err := check(ctx)
			if err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			ctx, err := check(ss.Context())
			if err != nil {
				return err
			}
			return h(srv, &authedStream{ServerStream: ss, ctx: ctx})
		}),
	}
}

type authedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *authedStream) Context() context.Context { return s.ctx }

// StaticTokens is a TokenAuthenticator of a fixed table, token to "ns/sa".
func StaticTokens(tokens map[string]string) TokenAuthenticator {
	return func(tok string) (string, error) {
		if who, ok := tokens[tok]; ok {
			return who, nil
		}
		return "", errors.New("unknown token")
	}
}
