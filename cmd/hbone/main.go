// Command hbone is a small stand-in for ztunnel on a machine without
// Kubernetes:
//
//	hbone connect --listen ADDR --via WAYPOINT_ADDR --authority IP:PORT --cert-dir DIR
//	    a source ztunnel: carries each accepted TCP connection over an HBONE
//	    CONNECT to the waypoint, with :authority IP:PORT.
//	hbone serve --listen IP:15008 --cert-dir DIR
//	    a destination ztunnel in front of its pod: forwards each CONNECT to
//	    its authority on this machine; 400 for an IP that is not its own.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/gowaypoint/waypoint/cmd/internal/cli"
	"github.com/gowaypoint/waypoint/protocols/l7"
	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/proxy/certs"
	"github.com/gowaypoint/waypoint/proxy/hbone"
	"github.com/gowaypoint/waypoint/proxy/ztunnel"
)

const usage = `usage:
  hbone connect --listen ADDR --via WAYPOINT_ADDR --authority IP:PORT --cert-dir DIR [--peer-identity ID] [--baggage B]
  hbone serve --listen IP:15008 --cert-dir DIR
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "connect":
		err = connect(os.Args[2:])
	case "serve":
		err = serve(os.Args[2:])
	case "-h", "-help", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "hbone: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		cli.Fatal(err)
	}
}

const drainTimeout = 5 * time.Second

func connect(args []string) error {
	fs := flag.NewFlagSet("connect", flag.ExitOnError)
	listen := fs.String("listen", "", "plaintext TCP listen address (required)")
	via := fs.String("via", "", "the waypoint's HBONE address ip:port (required)")
	authority := fs.String("authority", "", "the original destination ip:port sent as :authority (required)")
	certDir := fs.String("cert-dir", "", "this workload's identity: cert-chain.pem, key.pem, root-cert.pem (required)")
	peer := fs.String("peer-identity", "", "SPIFFE ID the waypoint must present (default: any identity of our trust domain)")
	baggage := fs.String("baggage", "", `W3C baggage sent on each CONNECT, as ztunnel describes its workload (e.g. "k8s.namespace.name=default,k8s.deployment.name=productpage-v1,service.name=productpage,service.version=v1")`)
	logger := cli.LogFlags(fs)
	fs.Parse(args)
	if *listen == "" || *via == "" || *authority == "" || *certDir == "" {
		return fmt.Errorf("connect: --listen, --via, --authority and --cert-dir are required")
	}
	viaAddr, err := netip.ParseAddrPort(*via)
	if err != nil {
		return fmt.Errorf("connect: --via %q: %w", *via, err)
	}
	if _, err := netip.ParseAddrPort(*authority); err != nil {
		return fmt.Errorf("connect: --authority %q: want ip:port", *authority)
	}
	var expect certs.PeerExpectation
	if *peer != "" {
		if expect.ID, err = spiffe.Parse(*peer); err != nil {
			return fmt.Errorf("connect: --peer-identity: %w", err)
		}
	}
	log, err := logger()
	if err != nil {
		return err
	}
	src, err := certs.NewSource(*certDir, certs.SourceOptions{Logger: log})
	if err != nil {
		return err
	}
	defer src.Close()
	pool := hbone.NewPool(hbone.PoolConfig{Logger: log})
	defer pool.Close()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	s := &ztunnel.Source{
		Pool: pool, Via: viaAddr, Authority: *authority,
		PeerKey: expect.ID.String(), TLS: src.ClientTLSConfig(expect), Log: log,
	}
	if *baggage != "" {
		s.Header = &l7.Header{}
		s.Header.Add("baggage", *baggage)
	}
	log.Info("hbone connect ready", "listen", ln.Addr().String(), "via", viaAddr, "authority", *authority, "identity", src.Identity().String())
	return serveUntilSignal(func() error { return s.Serve(ln) }, s.Shutdown)
}

// serveUntilSignal runs serve until SIGTERM or SIGINT, then drains with
// shutdown; it returns serve's error if serving stopped on its own.
func serveUntilSignal(serve func() error, shutdown func(context.Context) error) error {
	ctx := cli.Signals(context.Background(), nil)
	errc := make(chan error, 1)
	go func() { errc <- serve() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	dctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	shutdown(dctx)
	return nil
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	listen := fs.String("listen", "", "HBONE listen address, the pod's ip:15008 (required)")
	certDir := fs.String("cert-dir", "", "the pod's identity: cert-chain.pem, key.pem, root-cert.pem (required)")
	logger := cli.LogFlags(fs)
	fs.Parse(args)
	if *listen == "" || *certDir == "" {
		return fmt.Errorf("serve: --listen and --cert-dir are required")
	}
	addr, err := netip.ParseAddrPort(*listen)
	if err != nil {
		return fmt.Errorf("serve: --listen %q: want ip:port", *listen)
	}
	log, err := logger()
	if err != nil {
		return err
	}
	src, err := certs.NewSource(*certDir, certs.SourceOptions{Logger: log})
	if err != nil {
		return err
	}
	defer src.Close()
	var local []netip.Addr // an unspecified listen address serves any IP
	if !addr.Addr().IsUnspecified() {
		local = []netip.Addr{addr.Addr()}
	}
	srv, err := hbone.NewServer(hbone.ServerConfig{
		TLS:          src.ServerTLSConfig(),
		PeerIdentity: certs.PeerIdentity,
		Handler:      &ztunnel.Destination{LocalIPs: local, Log: log},
		Logger:       log,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	log.Info("hbone serve ready", "listen", ln.Addr().String(), "identity", src.Identity().String())
	return serveUntilSignal(func() error { return srv.Serve(ln) }, srv.Shutdown)
}
