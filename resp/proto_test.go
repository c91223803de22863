package resp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func parseAll(t *testing.T, in string) ([][]string, error) {
	t.Helper()
	r := newReader(strings.NewReader(in), 256, 1<<20, 8)
	var out [][]string
	for {
		args, err := r.readCommand()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if len(args) == 0 {
			continue
		}
		var cmd []string
		for _, a := range args {
			cmd = append(cmd, string(a))
		}
		out = append(out, cmd)
	}
}

func TestReader(t *testing.T) {
	big := strings.Repeat("x", 5000) // beyond the arena and the 16-byte buffer
	got, err := parseAll(t, "*2\r\n$3\r\nGET\r\n$1\r\na\r\n*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$5000\r\n"+big+"\r\n"+
		"PING\r\n\r\nset \"a b\" 'c d' \"\\x41\\n\"\r\n*0\r\n*1\r\n$0\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"GET", "a"}, {"SET", "b", big}, {"PING"}, {"set", "a b", "c d", "A\n"}, {""}}
	if len(got) != len(want) {
		t.Fatalf("got %d commands, want %d", len(got), len(want))
	}
	for i := range want {
		if strings.Join(got[i], "|") != strings.Join(want[i], "|") {
			t.Fatalf("command %d: %q, want %q", i, got[i], want[i])
		}
	}
	for _, bad := range []string{
		"*2\r\n$3\r\nGET\r\n:1\r\n",          // not a bulk string
		"*1\r\n$3\r\nGETX\r\n",               // no CRLF after the bulk
		"*9\r\n",                             // more arguments than allowed (8)
		"*1\r\n$2000000\r\n",                 // a bulk larger than allowed
		"*1\r\n$-5\r\n",                      // negative bulk length
		"*x\r\n",                             // not a number
		"set \"abc\r\n",                      // unbalanced quotes
		"*1\r\n$99999999999999999999999\r\n", // overflow
	} {
		if _, err := parseAll(t, bad); !errors.Is(err, ErrProtocol) {
			t.Errorf("%q: %v (want a protocol error)", bad, err)
		}
	}
	if _, err := parseAll(t, "*2\r\n$3\r\nGET\r\n$5\r\nab"); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated: %v", err)
	}
}

// TestReaderLargeDeclaredBulk: a declared length above eagerBulkBytes is read as its
// bytes come, not allocated up front.
func TestReaderLargeDeclaredBulk(t *testing.T) {
	const n = eagerBulkBytes + 1000
	in := io.MultiReader(strings.NewReader("*1\r\n$"+itoa(n)+"\r\n"), bytes.NewReader(bytes.Repeat([]byte{'z'}, n)), strings.NewReader("\r\n"))
	r := newReader(in, 1<<16, DefaultMaxBulkBytes, 8)
	args, err := r.readCommand()
	if err != nil || len(args) != 1 || len(args[0]) != n || args[0][n-1] != 'z' {
		t.Fatalf("%v %d", err, len(args))
	}
	r = newReader(strings.NewReader("*1\r\n$"+itoa(n)+"\r\nshort"), 1<<16, DefaultMaxBulkBytes, 8)
	if _, err := r.readCommand(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated large bulk: %v", err)
	}
}

func itoa(n int) string {
	var b []byte
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}

func TestWriter(t *testing.T) {
	var buf bytes.Buffer
	w := newWriter(&buf, 16)
	w.simple("OK")
	w.error("ERR bad\r\nsecond line")
	w.int(-2)
	w.nilBulk()
	w.array(2)
	w.bulk([]byte("ab"))
	w.bulkParts([][]byte{[]byte(strings.Repeat("p", 40)), []byte("q")})
	if err := w.flush(); err != nil {
		t.Fatal(err)
	}
	want := "+OK\r\n-ERR bad\r\n:-2\r\n$-1\r\n*2\r\n$2\r\nab\r\n$41\r\n" + strings.Repeat("p", 40) + "q\r\n"
	if buf.String() != want {
		t.Fatalf("%q", buf.String())
	}
}

func FuzzReader(f *testing.F) {
	for _, s := range []string{
		"*2\r\n$3\r\nGET\r\n$1\r\na\r\n", "PING\r\n", "set \"a\\x41\" 'b'\r\n", "*-1\r\n", "*1\r\n$0\r\n\r\n",
		"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\nvvvv\r\n", "\r\n\r\n", "*1\r\n$9999999\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := newReader(bufio.NewReader(bytes.NewReader(b)), 64, 1<<16, 64)
		for i := 0; i < 64; i++ {
			args, err := r.readCommand()
			if err != nil {
				if !errors.Is(err, ErrProtocol) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			total := 0
			for _, a := range args {
				total += len(a)
			}
			if total > len(b) || len(args) > 64 {
				t.Fatalf("%d arguments of %d bytes from %d input bytes", len(args), total, len(b))
			}
		}
	})
}
