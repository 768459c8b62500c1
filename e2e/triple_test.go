package e2e

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
)

// tripleServer is a Dubbo 3 (Triple) provider: Triple is gRPC over
// HTTP/2; it answers with its pod's name.
type tripleServer struct {
	testpb.UnimplementedTestServiceServer
	pod string
}

func (s tripleServer) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	body := s.pod
	if v := md.Get("tri-service-version"); len(v) > 0 {
		body += " " + v[0]
	}
	return &testpb.SimpleResponse{Payload: &testpb.Payload{Body: []byte(body)}}, nil
}

// TestTripleVersionAndGroup: Triple calls go through the gRPC path of an
// HttpConnectionManager; routes on :dubbo-service-version and
// :dubbo-group read Triple's tri-service-version and tri-service-group.
func TestTripleVersionAndGroup(t *testing.T) {
	e := newDubboEnv(t)
	for _, pod := range []struct{ ip, name string }{{e.ip(11), "pod-a"}, {e.ip(12), "pod-b"}} {
		ln, err := net.Listen("tcp", pod.ip+":50051")
		if err != nil {
			t.Fatal(err)
		}
		srv := grpc.NewServer()
		testpb.RegisterTestServiceServer(srv, tripleServer{pod: pod.name})
		go srv.Serve(ln)
		t.Cleanup(srv.Stop)
	}
	conn, err := grpc.NewClient(e.tripleAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := testpb.NewTestServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cases := []struct {
		name string
		md   []string
		want string
	}{
		{"no version", nil, "pod-a"},
		{"version 2.0.0", []string{"tri-service-version", "2.0.0"}, "pod-b 2.0.0"},
		{"version 1.0.0", []string{"tri-service-version", "1.0.0"}, "pod-a 1.0.0"},
		{"group canary", []string{"tri-service-group", "canary"}, "pod-b"},
	}
	for _, c := range cases {
		resp, err := client.UnaryCall(metadata.AppendToOutgoingContext(ctx, c.md...), &testpb.SimpleRequest{})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := string(resp.GetPayload().GetBody()); got != c.want {
			t.Fatalf("%s: answered by %q, want %q", c.name, got, c.want)
		}
	}
}
