package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// goAway is the code and debug data of a GOAWAY frame.
type goAway struct {
	code  http2.ErrCode
	debug string
}

// pingServer speaks raw HTTP/2 to a ragkv server: the connection preface and
// SETTINGS, then a PING every interval, n times; it returns the GOAWAY the server sent
// (nil if none came within the pings and a grace period).
func pingServer(t *testing.T, addr string, interval time.Duration, n int) *goAway {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	var wmu sync.Mutex // the reader acks SETTINGS while this goroutine pings
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	goaway := make(chan *goAway, 1)
	go func() { // owned by this call: ends when conn is closed on return
		defer close(goaway)
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					wmu.Lock()
					_ = fr.WriteSettingsAck()
					wmu.Unlock()
				}
			case *http2.GoAwayFrame:
				goaway <- &goAway{code: f.ErrCode, debug: string(f.DebugData())}
				return
			}
		}
	}()
	var data [8]byte
	for i := range n {
		data[0] = byte(i)
		wmu.Lock()
		err := fr.WritePing(false, data)
		wmu.Unlock()
		if err != nil {
			break // the server closed the connection
		}
		select {
		case g := <-goaway:
			return g
		case <-time.After(interval):
		}
	}
	select {
	case g := <-goaway:
		return g
	case <-time.After(500 * time.Millisecond):
		return nil
	}
}

// TestKeepaliveEnforcement: a client that pings more often than KeepaliveMinTime gets
// GOAWAY ENHANCE_YOUR_CALM "too_many_pings" and is disconnected; one that pings less
// often keeps its connection.
func TestKeepaliveEnforcement(t *testing.T) {
	c, _ := newChunkCache(t, t.TempDir(), 1<<20, 1<<22)
	srv, err := New(WithChunkCache(c), WithLogger(slog.New(slog.DiscardHandler)),
		WithLimits(Limits{KeepaliveMinTime: 300 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop(context.Background())
		if err := <-done; err != nil && !errors.Is(err, net.ErrClosed) {
			t.Error(err)
		}
		c.Close()
	})
	addr := lis.Addr().String()

	g := pingServer(t, addr, 10*time.Millisecond, 20)
	if g == nil {
		t.Fatal("a client pinging every 10 ms (policy: at most every 300 ms) was not sent GOAWAY")
	}
	if g.code != http2.ErrCodeEnhanceYourCalm || g.debug != "too_many_pings" {
		t.Fatalf("GOAWAY %v %q, want ENHANCE_YOUR_CALM \"too_many_pings\"", g.code, g.debug)
	}
	if g := pingServer(t, addr, 400*time.Millisecond, 5); g != nil {
		t.Fatalf("a client pinging every 400 ms (policy 300 ms) got GOAWAY %v %q", g.code, g.debug)
	}
}
