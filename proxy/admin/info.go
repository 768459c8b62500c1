package admin

import (
	"crypto/x509"
	"encoding/hex"
	"math"
	"net/http"
	"runtime"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// stateOf is the server's state: Sources.State, else LIVE when ready and
// INITIALIZING before.
func stateOf(src Sources) adminv3.ServerInfo_State {
	if src.State != nil {
		return src.State()
	}
	if src.Ready != nil && src.Ready() {
		return adminv3.ServerInfo_LIVE
	}
	return adminv3.ServerInfo_INITIALIZING
}

// ServerInfo is the /server_info answer at now.
func (src Sources) ServerInfo(now time.Time) *adminv3.ServerInfo {
	up := durationpb.New(0)
	if !src.Start.IsZero() {
		up = durationpb.New(now.Sub(src.Start).Truncate(time.Second))
	}
	info := &adminv3.ServerInfo{
		Version:            src.Version,
		State:              stateOf(src),
		HotRestartVersion:  "disabled",
		UptimeCurrentEpoch: up,
		UptimeAllEpochs:    up,
		CommandLineOptions: src.CommandLine,
	}
	if src.Node != nil {
		info.Node = src.Node()
	}
	return info
}

func (src Sources) serverInfo(w http.ResponseWriter, r *http.Request) {
	marshalAll.write(w, src.ServerInfo(time.Now()))
}

// Memory is /memory from the Go runtime's statistics, in Envoy's (tcmalloc's)
// field names: allocated is the live heap, heap_size the heap's address
// space, pageheap_unmapped what was returned to the OS, pageheap_free what
// is idle and not returned, total_thread_cache the per-P caches, and
// total_physical_bytes what the runtime holds from the OS less what it
// returned.
func Memory(ms *runtime.MemStats) *adminv3.Memory {
	return &adminv3.Memory{
		Allocated:          ms.HeapAlloc,
		HeapSize:           ms.HeapSys,
		PageheapUnmapped:   ms.HeapReleased,
		PageheapFree:       ms.HeapIdle - ms.HeapReleased,
		TotalThreadCache:   ms.MCacheInuse,
		TotalPhysicalBytes: ms.Sys - ms.HeapReleased,
	}
}

func serveMemory(w http.ResponseWriter, r *http.Request) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	marshalAll.write(w, Memory(&ms))
}

func (src Sources) certs(w http.ResponseWriter, r *http.Request) {
	if src.Certs == nil {
		http.NotFound(w, r)
		return
	}
	marshal.write(w, src.Certs())
}

// CertificateDetails describes c as Envoy's /certs does: path (the file it
// came from, or "<inline>"), serial number in hex, subject alternative
// names, days until expiration at now, validity.
func CertificateDetails(c *x509.Certificate, path string, now time.Time) *adminv3.CertificateDetails {
	if path == "" {
		path = "<inline>"
	}
	d := &adminv3.CertificateDetails{
		Path:                path,
		SerialNumber:        hex.EncodeToString(c.SerialNumber.Bytes()),
		DaysUntilExpiration: uint64(max(0, math.Floor(c.NotAfter.Sub(now).Hours()/24))),
		ValidFrom:           timestamppb.New(c.NotBefore),
		ExpirationTime:      timestamppb.New(c.NotAfter),
	}
	for _, u := range c.URIs {
		d.SubjectAltNames = append(d.SubjectAltNames, &adminv3.SubjectAlternateName{Name: &adminv3.SubjectAlternateName_Uri{Uri: u.String()}})
	}
	for _, n := range c.DNSNames {
		d.SubjectAltNames = append(d.SubjectAltNames, &adminv3.SubjectAlternateName{Name: &adminv3.SubjectAlternateName_Dns{Dns: n}})
	}
	for _, ip := range c.IPAddresses {
		d.SubjectAltNames = append(d.SubjectAltNames, &adminv3.SubjectAlternateName{Name: &adminv3.SubjectAlternateName_IpAddress{IpAddress: ip.String()}})
	}
	return d
}
