package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
)

func TestHealthAdminAndGracefulStop(t *testing.T) {
	srv, err := New()
	if err != nil {
		t.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v, want SERVING", resp.GetStatus())
	}

	alis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminDone := make(chan error, 1)
	go func() { adminDone <- srv.ServeAdmin(alis) }()
	base := "http://" + alis.Addr().String()
	body := httpGet(t, base+"/healthz", http.StatusOK)
	if !strings.Contains(body, `"status":"ok"`) {
		t.Fatalf("/healthz body %q", body)
	}
	metrics := httpGet(t, base+"/metrics", http.StatusOK)
	if !strings.Contains(metrics, "ragkv_grpc_handled_total") {
		t.Fatalf("/metrics lacks ragkv_grpc_handled_total:\n%s", metrics)
	}

	srv.Stop(ctx)
	if err := <-served; err != nil {
		t.Fatalf("Serve after Stop: %v", err)
	}
	if err := <-adminDone; err != nil {
		t.Fatalf("ServeAdmin after Stop: %v", err)
	}
}

func httpGet(t *testing.T, url string, want int) string {
	t.Helper()
	var resp *http.Response
	var err error
	for i := 0; i < 50; i++ { // the admin goroutine may not be accepting yet
		resp, err = http.Get(url)
		if err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %d, want %d: %s", url, resp.StatusCode, want, b)
	}
	return string(b)
}

var errTestSentinel = errors.New("test: thing not found")

func TestToStatus(t *testing.T) {
	registerErrorCodes(errRow{errTestSentinel, codes.NotFound})
	t.Cleanup(func() { delete(errorCodes, errTestSentinel) })
	cases := []struct {
		err  error
		code codes.Code
	}{
		{fmt.Errorf("get chunk abc: %w", errTestSentinel), codes.NotFound},
		{fmt.Errorf("wrapped: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{errors.New("boom"), codes.Internal},
		{status.Error(codes.Unavailable, "x"), codes.Unavailable},
	}
	for _, c := range cases {
		st := status.Convert(toStatus(c.err))
		if st.Code() != c.code {
			t.Errorf("toStatus(%v) code = %v, want %v", c.err, st.Code(), c.code)
		}
		if c.code != codes.Unavailable && st.Message() != c.err.Error() {
			t.Errorf("message %q, want %q", st.Message(), c.err.Error())
		}
	}
	if toStatus(nil) != nil {
		t.Error("toStatus(nil) != nil")
	}
}
