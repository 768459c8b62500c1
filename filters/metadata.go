package filters

import "google.golang.org/protobuf/types/known/structpb"

// SetDynamicMetadata sets the stream's dynamic metadata under namespace
// (Envoy's filter metadata, e.g. "envoy.filters.http.jwt_authn"), replacing
// what was there. The map holding it is allocated at the first write, so a
// stream whose filters write none pays nothing. v is shared, not copied: do
// not change it afterwards.
func (s *Stream) SetDynamicMetadata(namespace string, v *structpb.Struct) {
	if s.metadata == nil {
		s.metadata = make(map[string]*structpb.Struct, 1)
	}
	s.metadata[namespace] = v
}

// DynamicMetadata returns the stream's dynamic metadata under namespace,
// nil when no filter set any. Read it, never change it.
func (s *Stream) DynamicMetadata(namespace string) *structpb.Struct {
	return s.metadata[namespace]
}
