// Package certs is the identity layer of the waypoint: a development mesh
// CA that issues Istio-style workload certificates, a writer for Istio's
// file layout (cert-chain.pem, key.pem, root-cert.pem), and a Source that
// serves those files, reloads them when they change, and builds the mutual
// TLS configurations of both HBONE hops.
//
// Every peer is identified by the SPIFFE ID in its certificate's URI SAN
// (spiffe://<trust-domain>/ns/<ns>/sa/<sa>), verified against the mesh
// root. Certificates carry no DNS name, so both directions verify chains
// themselves in VerifyConnection rather than through crypto/tls's host-name
// check.
package certs
