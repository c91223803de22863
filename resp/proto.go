package resp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// ErrProtocol is a malformed request: the connection is answered with an error and
// closed, as Redis does.
var ErrProtocol = errors.New("Protocol error")

// Limits of the request parser (Redis's defaults).
const (
	DefaultMaxBulkBytes = 512 << 20 // proto-max-bulk-len
	DefaultMaxArgs      = 1 << 20
	maxInlineBytes      = 64 << 10
	// arenaArgBytes: arguments up to this size share a per-command buffer; larger
	// ones (values) get their own allocation, which a SET hands to the cache as is.
	arenaArgBytes = 4 << 10
	// eagerBulkBytes: a declared bulk length up to this is allocated at once; a larger
	// one grows as its bytes arrive, so a client cannot make the server allocate
	// 512 MiB by sending "$536870912".
	eagerBulkBytes = 64 << 20
)

// reader parses RESP2 requests: multibulk arrays of bulk strings (what clients send)
// and inline commands (what telnet and `redis-cli` in some modes send). It parses
// untrusted bytes (FuzzReader).
type reader struct {
	br      *bufio.Reader
	maxBulk int64
	maxArgs int
	args    [][]byte
	arena   []byte
}

func newReader(r io.Reader, size int, maxBulk int64, maxArgs int) *reader {
	return &reader{br: bufio.NewReaderSize(r, size), maxBulk: maxBulk, maxArgs: maxArgs}
}

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

// line reads one CRLF-terminated line (without CRLF), at most max bytes.
func (r *reader) line(max int) ([]byte, error) {
	b, err := r.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) || len(b) > max+2 {
		return nil, protoErr("too big request line")
	}
	if err != nil {
		if errors.Is(err, io.EOF) && len(b) > 0 {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	b = b[:len(b)-1]
	if len(b) > 0 && b[len(b)-1] == '\r' {
		b = b[:len(b)-1]
	}
	return b, nil
}

// parseLen parses the decimal after a '*' or '$'.
func parseLen(b []byte, what string) (int64, error) {
	if len(b) == 0 || len(b) > 19 {
		return 0, protoErr("invalid %s length", what)
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, protoErr("invalid %s length", what)
	}
	return n, nil
}

// readCommand returns the next command's arguments. Arguments of at most
// arenaArgBytes alias a buffer reused by the next call; larger ones are the caller's.
// It returns io.EOF at a clean end of input.
func (r *reader) readCommand() ([][]byte, error) {
	r.args = r.args[:0]
	r.arena = r.arena[:0]
	for {
		c, err := r.br.ReadByte()
		if err != nil {
			return nil, err
		}
		if c != '*' {
			_ = r.br.UnreadByte()
			args, err := r.inline()
			if err != nil || len(args) > 0 {
				return args, err
			}
			continue // an empty line
		}
		break
	}
	l, err := r.line(32)
	if err != nil {
		return nil, err
	}
	n, err := parseLen(l, "multibulk")
	if err != nil {
		return nil, err
	}
	if n > int64(r.maxArgs) {
		return nil, protoErr("invalid multibulk length")
	}
	if n <= 0 {
		return nil, nil // "*0" and "*-1" are skipped, as Redis does
	}
	for i := int64(0); i < n; i++ {
		c, err := r.br.ReadByte()
		if err != nil {
			return nil, eofIsUnexpected(err)
		}
		if c != '$' {
			return nil, protoErr("expected '$', got '%c'", c)
		}
		l, err := r.line(32)
		if err != nil {
			return nil, eofIsUnexpected(err)
		}
		size, err := parseLen(l, "bulk")
		if err != nil {
			return nil, err
		}
		if size < 0 || size > r.maxBulk {
			return nil, protoErr("invalid bulk length")
		}
		arg, err := r.bulk(int(size))
		if err != nil {
			return nil, eofIsUnexpected(err)
		}
		r.args = append(r.args, arg)
	}
	return r.args, nil
}

func eofIsUnexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// bulk reads size bytes and the CRLF after them.
func (r *reader) bulk(size int) ([]byte, error) {
	var arg []byte
	switch {
	case size <= arenaArgBytes:
		start := len(r.arena)
		if cap(r.arena)-start < size {
			// A new arena: earlier arguments keep the old one.
			r.arena = make([]byte, 0, max(2*cap(r.arena), size, 16<<10))
			start = 0
		}
		r.arena = r.arena[:start+size]
		arg = r.arena[start : start+size : start+size]
		if _, err := io.ReadFull(r.br, arg); err != nil {
			return nil, err
		}
	case size <= eagerBulkBytes:
		arg = make([]byte, size)
		if _, err := io.ReadFull(r.br, arg); err != nil {
			return nil, err
		}
	default:
		arg = make([]byte, 0, eagerBulkBytes)
		for len(arg) < size {
			if len(arg) == cap(arg) {
				arg = append(arg, 0)[:len(arg)]
			}
			m := min(cap(arg), size) - len(arg)
			n, err := io.ReadFull(r.br, arg[len(arg):len(arg)+m])
			arg = arg[:len(arg)+n]
			if err != nil {
				return nil, err
			}
		}
	}
	var crlf [2]byte
	if _, err := io.ReadFull(r.br, crlf[:]); err != nil {
		return nil, err
	}
	if crlf != [2]byte{'\r', '\n'} {
		return nil, protoErr("expected CRLF after a bulk string")
	}
	return arg, nil
}

// inline parses a command line of space-separated arguments ("quoted" and 'quoted'
// arguments with Redis's escapes inside double quotes).
func (r *reader) inline() ([][]byte, error) {
	l, err := r.line(maxInlineBytes)
	if err != nil {
		return nil, err
	}
	for len(l) > 0 {
		for len(l) > 0 && (l[0] == ' ' || l[0] == '\t') {
			l = l[1:]
		}
		if len(l) == 0 {
			break
		}
		var arg []byte
		switch l[0] {
		case '"', '\'':
			q := l[0]
			i := 1
			for ; i < len(l) && l[i] != q; i++ {
				if q == '"' && l[i] == '\\' && i+1 < len(l) {
					i++
					switch l[i] {
					case 'n':
						arg = append(arg, '\n')
					case 'r':
						arg = append(arg, '\r')
					case 't':
						arg = append(arg, '\t')
					case 'x':
						if i+2 < len(l) {
							if v, err := strconv.ParseUint(string(l[i+1:i+3]), 16, 8); err == nil {
								arg = append(arg, byte(v))
								i += 2
								continue
							}
						}
						arg = append(arg, 'x')
					default:
						arg = append(arg, l[i])
					}
					continue
				}
				arg = append(arg, l[i])
			}
			if i >= len(l) {
				return nil, protoErr("unbalanced quotes in request")
			}
			l = l[i+1:]
			if len(l) > 0 && l[0] != ' ' && l[0] != '\t' {
				return nil, protoErr("unbalanced quotes in request")
			}
			if arg == nil {
				arg = []byte{}
			}
		default:
			i := bytes.IndexAny(l, " \t")
			if i < 0 {
				i = len(l)
			}
			arg = append([]byte(nil), l[:i]...)
			l = l[i:]
		}
		r.args = append(r.args, arg)
		if len(r.args) > r.maxArgs {
			return nil, protoErr("invalid multibulk length")
		}
	}
	return r.args, nil
}

// writer writes RESP2 replies into a buffered connection; a large bulk reply is
// written from the caller's slices without being copied into the buffer.
type writer struct {
	bw      *bufio.Writer
	scratch []byte
}

func newWriter(w io.Writer, size int) *writer {
	return &writer{bw: bufio.NewWriterSize(w, size)}
}

func (w *writer) simple(s string) {
	w.bw.WriteByte('+')
	w.bw.WriteString(s)
	w.bw.WriteString("\r\n")
}

// errorf writes "-ERR ..." (or another prefix when the message starts with an
// upper-case word such as WRONGTYPE or NOPROTO).
func (w *writer) error(msg string) {
	w.bw.WriteByte('-')
	for i := 0; i < len(msg); i++ {
		if msg[i] == '\r' || msg[i] == '\n' {
			msg = msg[:i] // an error is one line
			break
		}
	}
	w.bw.WriteString(msg)
	w.bw.WriteString("\r\n")
}

func (w *writer) int(n int64) {
	w.scratch = append(w.scratch[:0], ':')
	w.scratch = strconv.AppendInt(w.scratch, n, 10)
	w.scratch = append(w.scratch, '\r', '\n')
	w.bw.Write(w.scratch)
}

func (w *writer) header(c byte, n int64) {
	w.scratch = append(w.scratch[:0], c)
	w.scratch = strconv.AppendInt(w.scratch, n, 10)
	w.scratch = append(w.scratch, '\r', '\n')
	w.bw.Write(w.scratch)
}

func (w *writer) nilBulk() { w.bw.WriteString("$-1\r\n") }

func (w *writer) array(n int) { w.header('*', int64(n)) }

func (w *writer) bulk(b []byte) {
	w.header('$', int64(len(b)))
	w.bw.Write(b)
	w.bw.WriteString("\r\n")
}

func (w *writer) bulkString(s string) {
	w.header('$', int64(len(s)))
	w.bw.WriteString(s)
	w.bw.WriteString("\r\n")
}

// bulkParts writes one bulk string made of parts.
func (w *writer) bulkParts(parts [][]byte) {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	w.header('$', int64(n))
	for _, p := range parts {
		w.bw.Write(p) // a large p goes to the connection directly once the buffer is flushed
	}
	w.bw.WriteString("\r\n")
}

func (w *writer) flush() error { return w.bw.Flush() }
