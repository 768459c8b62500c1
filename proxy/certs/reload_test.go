package certs

import (
	"crypto/tls"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"testing"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
)

// currentSerial is the serial of the leaf s serves now.
func currentSerial(s *Source) *big.Int { return s.cur.Load().cert.Leaf.SerialNumber }

// TestReload rotates the server's and the client's files under one long-
// lived listener and client config and shows new handshakes follow.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	serverID := mustID(t, "spiffe://cluster.local/ns/srv/sa/server")
	clientID := mustID(t, "spiffe://cluster.local/ns/cli/sa/client")
	if err := WriteMesh(MeshOptions{Dir: dir, IDs: []spiffe.ID{serverID, clientID}}); err != nil {
		t.Fatal(err)
	}
	ca1, err := LoadCA(filepath.Join(dir, RootCertFile), filepath.Join(dir, RootKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	serverDir, clientDir := IdentityDir(dir, serverID), IdentityDir(dir, clientID)
	logs := &logCapture{}
	server := newSource(t, serverDir, slog.New(logs))
	client := newSource(t, clientDir, nil)
	srv := newTestServer(t, server.ServerTLSConfig())
	clientCfg := client.ClientTLSConfig(PeerExpectation{ID: serverID})

	first := srv.handshake(t, clientCfg)
	if first.clientErr != nil || first.serverErr != nil {
		t.Fatalf("first handshake: client %v, server %v", first.clientErr, first.serverErr)
	}
	if first.leafSerial().Cmp(currentSerial(server)) != 0 {
		t.Fatalf("server presented serial %x, want %x", first.leafSerial(), currentSerial(server))
	}

	// presents waits until handshakes with cfg succeed and show want.
	presents := func(t *testing.T, what string, cfg *tls.Config, want *big.Int) {
		t.Helper()
		eventually(t, what, func() bool {
			r := srv.handshake(t, cfg)
			return r.clientErr == nil && r.serverErr == nil && r.leafSerial().Cmp(want) == 0
		})
	}

	t.Run("new leaf, same CA", func(t *testing.T) {
		if err := WriteMesh(MeshOptions{Dir: dir, IDs: []spiffe.ID{serverID}}); err != nil {
			t.Fatal(err)
		}
		want := readLeafSerial(t, serverDir)
		if want.Cmp(first.leafSerial()) == 0 {
			t.Fatal("WriteMesh issued the same serial again")
		}
		presents(t, "the server to present the reissued leaf", clientCfg, want)
		if server.Identity() != serverID {
			t.Errorf("identity %v after reload, want %v", server.Identity(), serverID)
		}
	})

	ca2 := mustCA(t, "cluster.local")
	t.Run("new CA and leaf", func(t *testing.T) {
		newServer := mustIssue(t, ca2, IssueRequest{ID: serverID})
		newClient := mustIssue(t, ca2, IssueRequest{ID: clientID})
		writeIdentity(t, serverDir, ca2, newServer)
		writeIdentity(t, clientDir, ca2, newClient)
		eventually(t, "the client Source to load its new leaf", func() bool {
			return currentSerial(client).Cmp(newClient.leaf(t).SerialNumber) == 0
		})
		// The client config made before the rotation now trusts only ca2.
		presents(t, "the server to present the ca2 leaf", clientCfg, newServer.leaf(t).SerialNumber)

		// The server verifies against the new root only.
		r := srv.handshake(t, rawClient(t, mustIssue(t, ca1, IssueRequest{ID: clientID})))
		wantErr(t, "client of the old CA", r.serverErr, "certificate signed by unknown authority")
		r = srv.handshake(t, rawClient(t, mustIssue(t, ca2, IssueRequest{ID: clientID})))
		if r.serverErr != nil || r.serverID != clientID {
			t.Errorf("client of the new CA: server error %v, peer %v", r.serverErr, r.serverID)
		}
	})

	t.Run("broken update keeps the old identity", func(t *testing.T) {
		before := currentSerial(server)
		refusals := logs.count("cert-chain.pem: no PEM CERTIFICATE block")
		if err := writeFileAtomic(filepath.Join(serverDir, CertChainFile), []byte("garbage"), 0o644); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the garbage to be refused", func() bool {
			return logs.count("cert-chain.pem: no PEM CERTIFICATE block") > refusals
		})
		r := srv.handshake(t, clientCfg)
		if r.clientErr != nil || r.serverErr != nil || r.leafSerial().Cmp(before) != 0 {
			t.Errorf("after garbage: client %v, server %v, serial %x, want serial %x", r.clientErr, r.serverErr, r.leafSerial(), before)
		}

		// A good update after the broken one is taken.
		fixed := mustIssue(t, ca2, IssueRequest{ID: serverID})
		writeIdentity(t, serverDir, ca2, fixed)
		presents(t, "the server to present the repaired leaf", clientCfg, fixed.leaf(t).SerialNumber)
	})
}

// TestReloadSymlinkSwap rotates files the way a Kubernetes secret volume
// does: each file is a symlink through ..data, and ..data is swapped to a
// new directory with one rename.
func TestReloadSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t, "cluster.local")
	id := mustID(t, "spiffe://cluster.local/ns/a/sa/b")

	version := func(name string) pair {
		t.Helper()
		p := mustIssue(t, ca, IssueRequest{ID: id})
		vdir := filepath.Join(dir, name)
		if err := os.Mkdir(vdir, 0o755); err != nil {
			t.Fatal(err)
		}
		writeIdentity(t, vdir, ca, p)
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(name, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
		return p
	}
	v1 := version("..2026_01_01_00_00_00.1")
	for _, name := range fileNames {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	s := newSource(t, dir, nil)
	if currentSerial(s).Cmp(v1.leaf(t).SerialNumber) != 0 {
		t.Fatalf("serving serial %x, want v1 %x", currentSerial(s), v1.leaf(t).SerialNumber)
	}

	v2 := version("..2026_01_02_00_00_00.2")
	if err := os.RemoveAll(filepath.Join(dir, "..2026_01_01_00_00_00.1")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the Source to follow the ..data swap", func() bool {
		return currentSerial(s).Cmp(v2.leaf(t).SerialNumber) == 0
	})

	srv := newTestServer(t, s.ServerTLSConfig())
	r := srv.handshake(t, rawClient(t, mustIssue(t, ca, IssueRequest{ID: mustID(t, "spiffe://cluster.local/ns/c/sa/d")})))
	if r.serverErr != nil || r.clientErr != nil || r.leafSerial().Cmp(v2.leaf(t).SerialNumber) != 0 {
		t.Errorf("handshake after swap: server %v, client %v, serial %x, want v2", r.serverErr, r.clientErr, r.leafSerial())
	}
}

// readLeafSerial reads the serial of dir's cert-chain.pem.
func readLeafSerial(t *testing.T, dir string) *big.Int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, CertChainFile))
	if err != nil {
		t.Fatal(err)
	}
	return pair{chain: b}.leaf(t).SerialNumber
}
