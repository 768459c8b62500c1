package http2

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/gowaypoint/waypoint/protocols/l7"
)

// echoService is grpc's test service, echoing payloads.
type echoService struct {
	testpb.UnimplementedTestServiceServer
}

func (echoService) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if s := req.GetResponseStatus(); s != nil {
		return nil, status.Error(codes.Code(s.Code), s.Message)
	}
	return &testpb.SimpleResponse{Payload: req.GetPayload()}, nil
}

func (echoService) FullDuplexCall(stream testpb.TestService_FullDuplexCallServer) error {
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: req.GetPayload()}); err != nil {
			return err
		}
	}
}

// proxyHandler relays each stream to upstream: request headers, DATA and
// trailers up; response headers, DATA and trailers (or a trailers-only
// response) down.
func proxyHandler(upstream *ClientConn) Handler {
	return HandlerFunc(func(st *ServerStream) {
		req := st.Request()
		cs, err := upstream.OpenStream(st.Context(), req)
		if err != nil {
			st.WriteHeaders(&l7.Response{Status: 502}, true)
			return
		}
		defer cs.Close()
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // request direction
			defer wg.Done()
			if req.Body != nil {
				if _, err := io.Copy(cs, req.Body); err != nil {
					cs.Reset(ErrCodeCancel)
					return
				}
			}
			if req.Trailer.Len() > 0 {
				cs.WriteTrailers(&req.Trailer)
			} else {
				cs.CloseWrite()
			}
		}()
		defer wg.Wait()
		resp, err := cs.Response()
		if err != nil {
			st.Reset(ErrCodeCancel)
			return
		}
		if resp.Body == nil {
			st.WriteHeaders(resp, true)
			return
		}
		if err := st.WriteHeaders(resp, false); err != nil {
			return
		}
		if _, err := io.Copy(st, cs); err != nil {
			st.Reset(ErrCodeCancel)
			return
		}
		if resp.Trailer.Len() > 0 {
			st.WriteTrailers(&resp.Trailer)
		} else {
			st.CloseWrite()
		}
	})
}

func TestGRPCThroughProxy(t *testing.T) {
	// grpc-go server.
	gln, err := net.Listen("tcp", testHost+":0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	testpb.RegisterTestServiceServer(gs, echoService{})
	done := make(chan struct{})
	go func() { defer close(done); gs.Serve(gln) }()
	defer func() { gs.Stop(); <-done }()

	// The proxy: our ServeConn down, our ClientConn up.
	upstream := dialClient(t, gln.Addr().String(), Config{})
	ts := startServer(t, Config{}, proxyHandler(upstream))

	conn, err := grpc.NewClient("passthrough:///"+ts.addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := testpb.NewTestServiceClient(conn)
	ctx := context.Background()

	t.Run("unary", func(t *testing.T) {
		for _, size := range []int{0, 1 << 10, 100 << 10, 2 << 20} {
			body := pattern(size)
			resp, err := client.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: body}})
			if err != nil {
				t.Fatalf("size %d: %v", size, err)
			}
			if !bytes.Equal(resp.GetPayload().GetBody(), body) {
				t.Fatalf("size %d: payload differs", size)
			}
		}
	})
	t.Run("status", func(t *testing.T) {
		_, err := client.UnaryCall(ctx, &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.PermissionDenied), Message: "no way"}})
		if s, _ := status.FromError(err); s.Code() != codes.PermissionDenied || s.Message() != "no way" {
			t.Fatalf("status %v", err)
		}
	})
	t.Run("bidi", func(t *testing.T) {
		stream, err := client.FullDuplexCall(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 20; i++ {
			body := bytes.Repeat([]byte{byte(i)}, 100*i)
			if err := stream.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: body}}); err != nil {
				t.Fatal(err)
			}
			resp, err := stream.Recv() // before the next Send: full duplex
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(resp.GetPayload().GetBody(), body) {
				t.Fatalf("message %d differs", i)
			}
		}
		if err := stream.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
			t.Fatalf("after CloseSend: %v", err)
		}
	})
	t.Run("concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 50)
		for i := 0; i < 50; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				body := pattern(1000 + i)
				resp, err := client.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: body}})
				if err == nil && !bytes.Equal(resp.GetPayload().GetBody(), body) {
					err = errors.New("payload differs")
				}
				if err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}
