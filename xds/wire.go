package xds

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"google.golang.org/protobuf/types/known/anypb"
)

// Wire is a set of resources as they come over xDS: each the Any it
// arrived in, or that Any packed (Pack). The xDS client keeps its accepted config so (a namespace
// waypoint's cluster is about 650 bytes on the wire and 3.7 kB decoded, its
// endpoints 300 bytes and 2.5 kB) and builds each snapshot from it with
// BuildWire. The Anys are owned by whoever made the Wire and must not be
// modified once given to BuildWire.
type Wire struct {
	Listeners, Clusters, Endpoints, Routes, Secrets []*anypb.Any
}

// Add puts a, packed (Pack) or not, with the resources of its type; an
// Any of a type a Wire does not hold is an error naming it.
func (w *Wire) Add(a *anypb.Any) error {
	typeURL, _ := strings.CutPrefix(a.GetTypeUrl(), packedPrefix)
	switch typeURL {
	case ListenerTypeURL:
		w.Listeners = append(w.Listeners, a)
	case ClusterTypeURL:
		w.Clusters = append(w.Clusters, a)
	case EndpointsTypeURL:
		w.Endpoints = append(w.Endpoints, a)
	case RoutesTypeURL:
		w.Routes = append(w.Routes, a)
	case secretTypeURL:
		w.Secrets = append(w.Secrets, a)
	default:
		return fmt.Errorf("xds: no place in a Wire for a resource of type %s", a.GetTypeUrl())
	}
	return nil
}

// The type URLs of the kinds a Wire holds.
const (
	secretTypeURL = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
)

// PackMin is the size from which Pack compresses a resource.
const PackMin = 64 << 10

// packedPrefix starts the type URL of a packed Any, before the type URL
// of what it holds.
const packedPrefix = "waypoint.packed/"

// Pack returns a, or, when a is PackMin bytes or more, an Any that holds
// it compressed (DEFLATE), which Wire.Decode reads as it reads a. A
// namespace waypoint's main_internal listener is about 3.9 kB per Service
// on the wire, nearly all of it the same connection manager over again:
// 11.7 MB for 3,000 Services packs into about 150 kB, in about 11 ms, and
// unpacks in about 15. Nothing but Wire.Decode reads a packed Any.
func Pack(a *anypb.Any) *anypb.Any {
	if len(a.GetValue()) < PackMin {
		return a
	}
	var buf bytes.Buffer
	buf.Write(binary.AppendUvarint(nil, uint64(len(a.GetValue()))))
	zw, err := flate.NewWriter(&buf, 2)
	if err == nil {
		_, err = zw.Write(a.GetValue())
	}
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		return a // writes to a bytes.Buffer do not fail
	}
	return &anypb.Any{TypeUrl: packedPrefix + a.GetTypeUrl(), Value: bytes.Clone(buf.Bytes())}
}

// unpackAny returns the Any a packed Any holds; a itself when it is not one.
func unpackAny(a *anypb.Any) (*anypb.Any, error) {
	typeURL, packed := strings.CutPrefix(a.GetTypeUrl(), packedPrefix)
	if !packed {
		return a, nil
	}
	n, k := binary.Uvarint(a.GetValue())
	if k <= 0 || n > 1<<31 {
		return nil, errors.New("a packed resource with no length")
	}
	value := make([]byte, n)
	zr := flate.NewReader(bytes.NewReader(a.GetValue()[k:]))
	defer zr.Close()
	if _, err := io.ReadFull(zr, value); err != nil {
		return nil, fmt.Errorf("unpacking a resource: %w", err)
	}
	return &anypb.Any{TypeUrl: typeURL, Value: value}, nil
}

// Decode decodes w into Resources, in order. An Any that does not hold a
// message of its list's type is an error naming its list and index.
func (w *Wire) Decode() (*Resources, error) {
	r := &Resources{}
	for _, set := range []struct {
		name, typeURL string
		as            []*anypb.Any
	}{
		{"listeners", ListenerTypeURL, w.Listeners}, {"clusters", ClusterTypeURL, w.Clusters},
		{"endpoints", EndpointsTypeURL, w.Endpoints}, {"routes", RoutesTypeURL, w.Routes}, {"secrets", secretTypeURL, w.Secrets},
	} {
		for i, a := range set.as {
			a, err := unpackAny(a)
			if err != nil {
				return nil, fmt.Errorf("%s[%d]: %w", set.name, i, err)
			}
			if a.GetTypeUrl() != set.typeURL {
				return nil, fmt.Errorf("%s[%d]: type %s", set.name, i, a.GetTypeUrl())
			}
			m, err := a.UnmarshalNew()
			if err != nil {
				return nil, fmt.Errorf("%s[%d]: %w", set.name, i, err)
			}
			if err := r.Add(m); err != nil {
				return nil, fmt.Errorf("%s[%d]: %w", set.name, i, err)
			}
		}
	}
	return r, nil
}

// BuildWire decodes w and builds it as BuildResources builds decoded
// resources, and keeps w rather than the decoded messages: the snapshot's
// config dump decodes w again, and its Listener.Raw, Cluster.Raw and the
// clusters' and endpoints' Metadata are nil (IstioServices and
// IstioWorkload answer as they would from the metadata).
func (o BuildOptions) BuildWire(version string, w *Wire) (*Snapshot, error) {
	r, err := w.Decode()
	if err != nil {
		return nil, err
	}
	snap, err := o.BuildResources(version, r)
	if err != nil {
		return nil, err
	}
	snap.raw, snap.wire = nil, w
	snap.clusterOrder, snap.endpoints = nil, nil
	for _, l := range snap.Listeners {
		l.Raw = nil
	}
	for _, c := range snap.Clusters {
		c.dropMetadata()
	}
	return snap, nil
}

// dropMetadata keeps of c's metadata, and its endpoints', what the data
// path reads (istio.services, istio.workload), and lets the rest go.
func (c *Cluster) dropMetadata() {
	if c.Metadata != nil {
		c.istioServices, c.Metadata = c.IstioServices(), nil
	}
	c.Raw = nil
	for i := range c.Endpoints {
		e := &c.Endpoints[i]
		if e.Metadata != nil {
			e.istioWorkload, e.hasIstioWorkload = e.istioWorkloadValue()
			e.Metadata = nil
		}
	}
}
