package filters

import (
	"context"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// Dynamic metadata lives with the stream: none until a filter writes,
// gone when the stream value is reused for the next request.
func TestDynamicMetadata(t *testing.T) {
	req := &l7.Request{Method: "GET", Path: []byte("/")}
	var s Stream
	s.Init(context.Background(), req, &Downstream{}, nil)
	if s.DynamicMetadata("ns") != nil {
		t.Fatal("metadata on a new stream")
	}
	if n := testing.AllocsPerRun(100, func() { _ = s.DynamicMetadata("ns") }); n != 0 {
		t.Errorf("reading no metadata allocates %v", n)
	}
	st, _ := structpb.NewStruct(map[string]any{"k": "v"})
	s.SetDynamicMetadata("ns", st)
	if s.DynamicMetadata("ns") != st || s.DynamicMetadata("other") != nil {
		t.Error("metadata not kept per namespace")
	}
	s.Init(context.Background(), req, &Downstream{}, nil)
	if s.DynamicMetadata("ns") != nil {
		t.Error("metadata outlives its request")
	}
}
