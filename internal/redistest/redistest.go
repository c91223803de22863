// Package redistest starts real redis-server processes for tests: a single server or an
// n-node Redis Cluster (redis-server --cluster-enabled yes, joined with
// `redis-cli --cluster create`), on free loopback ports, with persistence off. Tests
// that need Redis skip with a clear message when redis-server is not installed
// (Debian: apt-get install redis-server redis-tools; `.ci/run` does it).
package redistest

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Binary returns the path of redis-server, or skips t when it is not installed.
func Binary(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not found in PATH (Debian: apt-get install redis-server redis-tools); skipping the test that needs a real Redis")
	}
	return p
}

// Tool returns the path of a redis-tools binary (redis-cli, redis-benchmark), or skips t.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not found in PATH (Debian: apt-get install redis-tools); skipping", name)
	}
	return p
}

// Options configures a server.
type Options struct {
	// MaxMemory ("64mb") and Policy ("allkeys-lru") set Redis's own eviction.
	MaxMemory string
	Policy    string
	// Cluster starts the node with cluster mode on (StartCluster joins the nodes).
	Cluster bool
	// Args are extra redis-server arguments ("--io-threads", "2", ...).
	Args []string
}

// Server is one running redis-server.
type Server struct {
	t    testing.TB
	bin  string
	opts Options
	Port int
	Dir  string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Addr is "127.0.0.1:PORT".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// URL is "redis://127.0.0.1:PORT".
func (s *Server) URL() string { return "redis://" + s.Addr() }

// Start runs a redis-server on a free loopback port until the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	bin := Binary(t)
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort(o.Cluster)
		if err != nil {
			t.Fatal(err)
		}
		s := &Server{t: t, bin: bin, opts: o, Port: port, Dir: t.TempDir()}
		if lastErr = s.start(); lastErr == nil {
			t.Cleanup(s.Kill)
			return s
		}
	}
	t.Fatalf("redistest: start redis-server: %v", lastErr)
	return nil
}

func (s *Server) start() error {
	args := []string{"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", s.Dir, "--daemonize", "no", "--protected-mode", "no", "--logfile", filepath.Join(s.Dir, "redis.log")}
	if s.opts.MaxMemory != "" {
		args = append(args, "--maxmemory", s.opts.MaxMemory)
	}
	if s.opts.Policy != "" {
		args = append(args, "--maxmemory-policy", s.opts.Policy)
	}
	if s.opts.Cluster {
		// A fresh node config on every start: a restarted node forgets the cluster.
		_ = os.Remove(filepath.Join(s.Dir, "nodes.conf"))
		args = append(args, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000")
	}
	args = append(args, s.opts.Args...)
	cmd := exec.Command(s.bin, args...)
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
			return fmt.Errorf("redis-server exited (%v): %s", err, tail(string(log)))
		default:
		}
		if reply, err := Do(s.Addr(), "PING"); err == nil && reply == "PONG" {
			s.mu.Lock()
			s.cmd = cmd
			s.mu.Unlock()
			go func() { <-exited }() // reap later
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	return fmt.Errorf("redis-server on port %d did not answer PING", s.Port)
}

// Kill stops the server with SIGKILL (its data is gone: persistence is off).
func (s *Server) Kill() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	for i := 0; i < 200; i++ { // wait until the port is closed
		if _, err := Do(s.Addr(), "PING"); err != nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Restart kills the server and starts an empty one on the same port.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	var err error
	for i := 0; i < 50; i++ {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("redistest: restart on port %d: %v", s.Port, err)
}

// Cluster is an n-node Redis Cluster without replicas.
type Cluster struct {
	Nodes []*Server
}

// Addrs lists the nodes' addresses.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr()
	}
	return out
}

// URL is "redis://A,B,C".
func (c *Cluster) URL() string { return "redis://" + strings.Join(c.Addrs(), ",") }

// StartCluster starts n cluster-mode nodes and joins them with `redis-cli --cluster
// create ... --cluster-replicas 0 --cluster-yes`, then waits for cluster_state:ok.
func StartCluster(t testing.TB, n int, o Options) *Cluster {
	t.Helper()
	cli := Tool(t, "redis-cli")
	o.Cluster = true
	c := &Cluster{}
	for i := 0; i < n; i++ {
		c.Nodes = append(c.Nodes, Start(t, o))
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	out, err := exec.Command(cli, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v: %s", err, tail(string(out)))
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, node := range c.Nodes {
		for {
			info, err := Do(node.Addr(), "CLUSTER", "INFO")
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster node %s not ok: %v %q", node.Addr(), err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c
}

// Do sends one command over a fresh connection and returns a status, integer or bulk
// reply as a string (an error reply as an error). For readiness checks and test
// assertions only.
func Do(addr string, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return "", err
	}
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", fmt.Errorf("redis: %s", line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(br, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return line, nil
}

// freePort finds a loopback port that is free (and, for cluster nodes, whose bus port
// +10000 is free too).
func freePort(cluster bool) (int, error) {
	for i := 0; i < 100; i++ {
		var port int
		if cluster {
			port = 20000 + rand.IntN(35000)
		} else {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return 0, err
			}
			port = l.Addr().(*net.TCPAddr).Port
			l.Close()
		}
		if !portFree(port) || (cluster && !portFree(port+10000)) {
			continue
		}
		return port, nil
	}
	return 0, fmt.Errorf("redistest: no free port")
}

func portFree(port int) bool {
	if port <= 0 || port > 65535 {
		return false
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func tail(s string) string {
	if len(s) > 2000 {
		return s[len(s)-2000:]
	}
	return s
}
