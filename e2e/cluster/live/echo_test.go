package live

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// rawCodec passes gRPC messages as bytes, so that the echo serves any service and method.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("rawCodec: %T", v)
	}
	return *b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: %T", v)
	}
	*b = append((*b)[:0], data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }

// grpcEcho serves gRPC (h2c) on ip:port: every method of every service answers its request
// message back, with header x-pod and x-method. A request with metadata x-echo-code: N is
// answered with that status code instead.
func (w *world) grpcEcho(p *pod, port int) {
	w.t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(p.ip, strconv.Itoa(port)))
	if err != nil {
		w.t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.ForceServerCodec(rawCodec{}), grpc.UnknownServiceHandler(func(_ any, ss grpc.ServerStream) error {
		p.hits.Add(1)
		method, _ := grpc.MethodFromServerStream(ss)
		ss.SetHeader(metadata.Pairs("x-pod", p.name, "x-method", method))
		var msg []byte
		if err := ss.RecvMsg(&msg); err != nil {
			return err
		}
		if md, ok := metadata.FromIncomingContext(ss.Context()); ok && len(md.Get("x-echo-code")) > 0 {
			n, _ := strconv.Atoi(md.Get("x-echo-code")[0])
			return status.Error(codes.Code(n), "asked for")
		}
		return ss.SendMsg(&msg)
	}))
	go srv.Serve(ln)
	w.t.Cleanup(srv.Stop)
}

// grpcCall calls method (/service/Method) on authority through the waypoint as source sa and
// returns the pod that answered, or the call's error (a gRPC status).
func (w *world) grpcCall(sa, authority, method string, md ...string) (string, error) {
	src := w.source(sa)
	conn, err := grpc.NewClient("passthrough:///"+authority,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) { return src.Dial(ctx, addr) }),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		return "", err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if len(md) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, md...)
	}
	var header metadata.MD
	in, out := []byte("ping"), []byte(nil)
	if err := conn.Invoke(ctx, method, &in, &out, grpc.Header(&header)); err != nil {
		return "", err
	}
	if string(out) != "ping" {
		return "", fmt.Errorf("%s: echo %q", method, out)
	}
	if v := header.Get("x-pod"); len(v) > 0 {
		return v[0], nil
	}
	return "", fmt.Errorf("%s: no x-pod header", method)
}

// tcpEcho serves TCP on ip:port: it writes "POD\n", then echoes what it reads.
func (w *world) tcpEcho(p *pod, port int) {
	w.t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(p.ip, strconv.Itoa(port)))
	if err != nil {
		w.t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.hits.Add(1)
			go func() {
				defer c.Close()
				fmt.Fprintf(c, "%s\n", p.name)
				io.Copy(c, c)
			}()
		}
	}()
	w.t.Cleanup(func() { ln.Close() })
}

// tcpCall opens a tunnel to authority as source sa, sends a line and returns the pod's name
// after checking the echo.
func (w *world) tcpCall(sa, authority string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := w.source(sa).Dial(ctx, authority)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if _, err := io.WriteString(c, "hello\n"); err != nil {
		return "", err
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			c.Close()
		case <-done:
		}
	}()
	buf := make([]byte, 0, 64)
	one := make([]byte, 1)
	lines := 0
	var name string
	for lines < 2 {
		if _, err := c.Read(one); err != nil {
			return "", fmt.Errorf("tcp %s: after %q: %w", authority, buf, err)
		}
		if one[0] == '\n' {
			lines++
			if lines == 1 {
				name = string(buf)
			} else if string(buf) != "hello" {
				return "", fmt.Errorf("tcp %s: echo %q", authority, buf)
			}
			buf = buf[:0]
			continue
		}
		buf = append(buf, one[0])
	}
	return name, nil
}
