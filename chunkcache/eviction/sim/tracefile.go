package sim

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// ErrTraceFormat is returned (wrapped, with the line or record) for a trace file that
// does not parse.
var ErrTraceFormat = errors.New("sim: malformed trace")

// Trace file formats.
const (
	FormatTxt           = "txt"           // libCacheSim plain text: one object id per line
	FormatCSV           = "csv"           // libCacheSim CSV (columns chosen by CSVParams)
	FormatOracleGeneral = "oraclegeneral" // libCacheSim oracleGeneral binary records
	FormatChunk         = "chunk"         // ragkv chunk trace: key, size and recompute cost per request
)

// Formats lists the trace file formats ReadTrace accepts.
func Formats() []string {
	return []string{FormatTxt, FormatCSV, FormatOracleGeneral, FormatChunk}
}

// ChunkTraceHeader is the first line of a chunk trace.
const ChunkTraceHeader = "# ragkv chunk trace v1"

// MaxTraceRequests bounds the requests ReadTrace accepts (the replays hold the trace
// in memory).
const MaxTraceRequests = 1 << 28

// CSVParams selects the columns of a CSV trace, with libCacheSim's names and meaning
// (cachesim -t "obj-id-col=5,obj-size-col=4,has-header=true,delimiter=,"): columns are
// numbered from 1; ObjSizeCol 0 means every request has size 1; Header nil means
// detect it as libCacheSim does (a first line with more letters than digits, a–f not
// counted, is a header); Delimiter 0 means ','. ObjIDIsNum parses ids as unsigned
// integers (C strtoull with base 0), so "0x10" and "16" are one object; otherwise ids
// are compared as strings.
type CSVParams struct {
	ObjIDCol   int
	ObjSizeCol int
	TimeCol    int
	Header     *bool
	Delimiter  byte
	ObjIDIsNum bool
}

// ParseCSVParams parses libCacheSim's trace-type-params syntax: comma-separated
// key=value pairs (obj-id-col, obj-size-col, time-col, has-header or header,
// delimiter, obj-id-is-num; '_' may replace '-'). "delimiter=," is written
// "delimiter=,," as in libCacheSim, or "delimiter=\t" for a tab.
func ParseCSVParams(s string) (CSVParams, error) {
	p := CSVParams{ObjIDCol: 1}
	rest := strings.TrimSpace(s)
	for rest != "" {
		key, after, ok := strings.Cut(rest, "=")
		if !ok {
			return p, fmt.Errorf("%w: trace params %q: %q has no '='", ErrTraceFormat, s, rest)
		}
		key = strings.ReplaceAll(strings.ToLower(strings.TrimSpace(key)), "_", "-")
		var val string
		if key == "delimiter" && strings.HasPrefix(after, ",") {
			// "delimiter=,," or a trailing "delimiter=,"
			val, rest = ",", strings.TrimPrefix(after[1:], ",")
		} else {
			val, rest, _ = strings.Cut(after, ",")
		}
		val = strings.TrimSpace(val)
		rest = strings.TrimLeft(rest, " ,")
		num := func() (int, error) {
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 || n > 1<<16 {
				return 0, fmt.Errorf("%w: trace params: %s=%q is not a column number", ErrTraceFormat, key, val)
			}
			return n, nil
		}
		var err error
		switch key {
		case "obj-id-col", "obj-id-field":
			p.ObjIDCol, err = num()
			if err == nil && p.ObjIDCol == 0 {
				err = fmt.Errorf("%w: trace params: obj-id-col must be ≥ 1", ErrTraceFormat)
			}
		case "obj-size-col", "obj-size-field", "size-col", "size-field":
			p.ObjSizeCol, err = num()
		case "time-col", "time-field":
			p.TimeCol, err = num()
		case "has-header", "header":
			b := isTrue(val)
			p.Header = &b
		case "obj-id-is-num":
			p.ObjIDIsNum = isTrue(val)
		case "delimiter":
			switch val {
			case ",", "":
				p.Delimiter = ','
			case `\t`:
				p.Delimiter = '\t'
			default:
				if len(val) != 1 {
					return p, fmt.Errorf("%w: trace params: delimiter %q (want one character or \\t)", ErrTraceFormat, val)
				}
				p.Delimiter = val[0]
			}
		default:
			return p, fmt.Errorf("%w: trace params: unknown key %q (want obj-id-col, obj-size-col, time-col, has-header, delimiter, obj-id-is-num)", ErrTraceFormat, key)
		}
		if err != nil {
			return p, err
		}
	}
	return p, nil
}

func isTrue(s string) bool {
	switch strings.ToLower(s) {
	case "1", "true", "yes", "t", "y":
		return true
	}
	return false
}

// ReadOptions modify how a trace file is read.
type ReadOptions struct {
	// IgnoreSize makes every request size 1 (cachesim --ignore-obj-size): hit ratios
	// then count requests, as for unit-size traces.
	IgnoreSize bool
	// CSV selects the CSV columns (FormatCSV only).
	CSV CSVParams
	// MaxRequests stops after this many requests (0: all, up to MaxTraceRequests).
	MaxRequests int
}

// traceBuilder maps object ids to dense chunk ids and records sizes and costs per id,
// switching to per-request sizes/costs when an object's value changes.
type traceBuilder struct {
	t        *Trace
	ids      map[string]uint32
	numIDs   map[uint64]uint32
	sized    bool
	costed   bool
	max      int
	ignoreSz bool
}

func newTraceBuilder(name string, o ReadOptions, sized, costed bool) *traceBuilder {
	max := o.MaxRequests
	if max <= 0 || max > MaxTraceRequests {
		max = MaxTraceRequests
	}
	b := &traceBuilder{t: &Trace{Name: name}, ids: map[string]uint32{}, numIDs: map[uint64]uint32{},
		sized: sized && !o.IgnoreSize, costed: costed, max: max, ignoreSz: o.IgnoreSize}
	if b.sized {
		b.t.Sizes = []int64{}
	}
	if b.costed {
		b.t.Costs = []float64{}
	}
	return b
}

func (b *traceBuilder) full() bool { return len(b.t.Requests) >= b.max }

func (b *traceBuilder) idFor(s string) (uint32, bool) {
	id, ok := b.ids[s]
	if !ok {
		id = uint32(len(b.ids) + len(b.numIDs))
		b.ids[s] = id
	}
	return id, !ok
}

func (b *traceBuilder) idForNum(n uint64) (uint32, bool) {
	id, ok := b.numIDs[n]
	if !ok {
		id = uint32(len(b.ids) + len(b.numIDs))
		b.numIDs[n] = id
	}
	return id, !ok
}

func (b *traceBuilder) add(id uint32, isNew bool, size int64, cost float64) {
	t := b.t
	i := len(t.Requests)
	t.Requests = append(t.Requests, id)
	if b.sized {
		if isNew {
			t.Sizes = append(t.Sizes, size)
		}
		if t.ReqSizes == nil && t.Sizes[id] != size {
			t.ReqSizes = make([]int64, i, cap(t.Requests))
			for j := 0; j < i; j++ {
				t.ReqSizes[j] = t.Sizes[t.Requests[j]]
			}
		}
		if t.ReqSizes != nil {
			t.ReqSizes = append(t.ReqSizes, size)
		}
	}
	if b.costed {
		if isNew {
			t.Costs = append(t.Costs, cost)
		}
		if t.ReqCosts == nil && t.Costs[id] != cost {
			t.ReqCosts = make([]float64, i, cap(t.Requests))
			for j := 0; j < i; j++ {
				t.ReqCosts[j] = t.Costs[t.Requests[j]]
			}
		}
		if t.ReqCosts != nil {
			t.ReqCosts = append(t.ReqCosts, cost)
		}
	}
}

func (b *traceBuilder) finish(desc string) (*Trace, error) {
	if len(b.t.Requests) == 0 {
		return nil, fmt.Errorf("%w: %s: no requests", ErrTraceFormat, b.t.Name)
	}
	b.t.Description = desc
	keys, bytes := b.t.WorkingSet()
	b.t.Params = map[string]any{"requests": len(b.t.Requests), "objects": keys, "working_set_bytes": bytes,
		"ignore_size": b.ignoreSz}
	return b.t, nil
}

// ReadTrace reads a trace file in one of Formats() and maps its object ids to dense
// chunk ids in order of first appearance. Sizes are bytes (1 for txt traces, for CSV
// traces without a size column, and with IgnoreSize); recompute costs are 1 except in
// chunk traces. Requests of size 0 are skipped, as libCacheSim does. An object whose
// size or cost changes between requests gets per-request values (Trace.ReqSizes,
// ReqCosts); its working-set size is its first size, as in libCacheSim.
//
// Formats:
//
//   - txt: one object id per line (any string; empty lines skipped).
//   - csv: delimited text, columns per ReadOptions.CSV (libCacheSim's csv reader).
//   - oraclegeneral: little-endian 24-byte records {u32 timestamp, u64 object id, u32
//     size, i64 next access (request index, -1 none)}; the next-access field is ignored
//     (Belady recomputes it).
//   - chunk: ragkv's chunk trace (see the package doc): the line ChunkTraceHeader, a
//     CSV header naming at least the columns key, size_bytes and cost, then one
//     request per line.
func ReadTrace(r io.Reader, name, format string, o ReadOptions) (*Trace, error) {
	switch strings.ToLower(format) {
	case FormatTxt:
		return readTxt(r, name, o)
	case FormatCSV:
		return readCSV(r, name, o)
	case FormatOracleGeneral, "oraclegeneralbin":
		return readOracleGeneral(r, name, o)
	case FormatChunk:
		return readChunk(r, name, o)
	}
	return nil, fmt.Errorf("%w: unknown format %q (want %s)", ErrTraceFormat, format, strings.Join(Formats(), ", "))
}

// maxLine bounds one text line (ids and CSV rows).
const maxLine = 1 << 20

func newScanner(r io.Reader) *bufio.Scanner {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	return sc
}

func scanErr(name string, line int, err error) error {
	if errors.Is(err, bufio.ErrTooLong) {
		return fmt.Errorf("%w: %s line %d: longer than %d bytes", ErrTraceFormat, name, line, maxLine)
	}
	return fmt.Errorf("sim: read %s: %w", name, err)
}

func readTxt(r io.Reader, name string, o ReadOptions) (*Trace, error) {
	b := newTraceBuilder(name, o, false, false)
	sc := newScanner(r)
	line := 0
	for !b.full() && sc.Scan() {
		line++
		s := strings.TrimRight(sc.Text(), "\r")
		if s == "" {
			continue
		}
		id, isNew := b.idFor(s)
		b.add(id, isNew, 1, 1)
	}
	if err := sc.Err(); err != nil {
		return nil, scanErr(name, line, err)
	}
	return b.finish("libCacheSim plain-text trace")
}

// detectHeader is libCacheSim's csv_detect_header.
func detectHeader(line string) bool {
	// libCacheSim also counts the letters a–f, but both of its other branches say
	// "header".
	digits, letters := 0, 0
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			letters++
		}
	}
	return digits <= letters
}

// splitCSV splits one CSV row on delim, honouring double-quoted fields ("" is a
// quote inside one).
func splitCSV(line string, delim byte, dst []string) ([]string, error) {
	dst = dst[:0]
	for i := 0; ; {
		if i < len(line) && line[i] == '"' {
			var sb strings.Builder
			j := i + 1
			for {
				k := strings.IndexByte(line[j:], '"')
				if k < 0 {
					return dst, errors.New("unterminated quoted field")
				}
				sb.WriteString(line[j : j+k])
				j += k + 1
				if j < len(line) && line[j] == '"' {
					sb.WriteByte('"')
					j++
					continue
				}
				break
			}
			dst = append(dst, sb.String())
			if j == len(line) {
				return dst, nil
			}
			if line[j] != delim {
				return dst, fmt.Errorf("text after a quoted field at byte %d", j)
			}
			i = j + 1
			continue
		}
		k := strings.IndexByte(line[i:], delim)
		if k < 0 {
			dst = append(dst, line[i:])
			return dst, nil
		}
		dst = append(dst, line[i:i+k])
		i += k + 1
	}
}

// parseUintC parses like C strtoull(s, &end, 0) on a whole field: decimal, 0x hex or
// leading-0 octal.
func parseUintC(s string) (uint64, error) {
	return strconv.ParseUint(strings.TrimSpace(s), 0, 64)
}

func readCSV(r io.Reader, name string, o ReadOptions) (*Trace, error) {
	p := o.CSV
	if p.ObjIDCol <= 0 {
		p.ObjIDCol = 1
	}
	delim := p.Delimiter
	if delim == 0 {
		delim = ','
	}
	b := newTraceBuilder(name, o, p.ObjSizeCol > 0, false)
	sc := newScanner(r)
	line := 0
	var fields []string
	var err error
	for !b.full() && sc.Scan() {
		line++
		s := strings.TrimRight(sc.Text(), "\r")
		if line == 1 {
			header := p.Header != nil && *p.Header
			if p.Header == nil {
				header = detectHeader(s)
			}
			if header {
				continue
			}
		}
		if s == "" {
			continue
		}
		fields, err = splitCSV(s, delim, fields)
		if err != nil {
			return nil, fmt.Errorf("%w: %s line %d: %v", ErrTraceFormat, name, line, err)
		}
		col := func(c int, what string) (string, error) {
			if c > len(fields) {
				return "", fmt.Errorf("%w: %s line %d: %s column %d, but the row has %d fields", ErrTraceFormat, name, line, what, c, len(fields))
			}
			return fields[c-1], nil
		}
		idStr, err := col(p.ObjIDCol, "obj-id")
		if err != nil {
			return nil, err
		}
		size := int64(1)
		if p.ObjSizeCol > 0 {
			ss, err := col(p.ObjSizeCol, "obj-size")
			if err != nil {
				return nil, err
			}
			n, perr := parseUintC(ss)
			if perr != nil || n > math.MaxUint32 {
				return nil, fmt.Errorf("%w: %s line %d: size %q is not a 32-bit unsigned integer", ErrTraceFormat, name, line, ss)
			}
			if n == 0 {
				continue // libCacheSim skips zero-size requests
			}
			size = int64(n)
		}
		var id uint32
		var isNew bool
		if p.ObjIDIsNum {
			n, perr := parseUintC(idStr)
			if perr != nil {
				return nil, fmt.Errorf("%w: %s line %d: object id %q is not a number (obj-id-is-num)", ErrTraceFormat, name, line, idStr)
			}
			id, isNew = b.idForNum(n)
		} else {
			id, isNew = b.idFor(idStr)
		}
		if o.IgnoreSize {
			size = 1
		}
		b.add(id, isNew, size, 1)
	}
	if err := sc.Err(); err != nil {
		return nil, scanErr(name, line, err)
	}
	return b.finish("libCacheSim CSV trace")
}

// OracleGeneralRecordBytes is the size of one oracleGeneral record.
const OracleGeneralRecordBytes = 24

func readOracleGeneral(r io.Reader, name string, o ReadOptions) (*Trace, error) {
	b := newTraceBuilder(name, o, true, false)
	br := bufio.NewReaderSize(r, 1<<16)
	var rec [OracleGeneralRecordBytes]byte
	n := 0
	for !b.full() {
		k, err := io.ReadFull(br, rec[:])
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: %s: %d trailing bytes after record %d (records are %d bytes)", ErrTraceFormat, name, k, n, OracleGeneralRecordBytes)
		}
		if err != nil {
			return nil, fmt.Errorf("sim: read %s: %w", name, err)
		}
		n++
		obj := binary.LittleEndian.Uint64(rec[4:])
		size := int64(binary.LittleEndian.Uint32(rec[12:]))
		if size == 0 {
			continue
		}
		if o.IgnoreSize {
			size = 1
		}
		id, isNew := b.idForNum(obj)
		b.add(id, isNew, size, 1)
	}
	return b.finish("libCacheSim oracleGeneral trace")
}

// AppendOracleGeneral appends one oracleGeneral record (for tests and converters).
func AppendOracleGeneral(dst []byte, ts uint32, obj uint64, size uint32, next int64) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, ts)
	dst = binary.LittleEndian.AppendUint64(dst, obj)
	dst = binary.LittleEndian.AppendUint32(dst, size)
	return binary.LittleEndian.AppendUint64(dst, uint64(next))
}

// ChunkRequest is one request of a chunk trace.
type ChunkRequest struct {
	// Key identifies the chunk (ragkv writes the 64-hex content key). It must not
	// contain a comma, quote or line break.
	Key string
	// SizeBytes is the stored KV size (> 0); Cost the recompute cost a hit saves (≥ 0,
	// e.g. prefill FLOPs or tokens).
	SizeBytes int64
	Cost      float64
	// Namespace and Tokens are informational (optional).
	Namespace string
	Tokens    int
}

// ChunkTraceWriter writes a chunk trace.
type ChunkTraceWriter struct {
	w   *bufio.Writer
	buf []byte
	n   int
}

// NewChunkTraceWriter writes the header lines to w.
func NewChunkTraceWriter(w io.Writer) (*ChunkTraceWriter, error) {
	bw := bufio.NewWriter(w)
	if _, err := bw.WriteString(ChunkTraceHeader + "\nkey,size_bytes,cost,namespace,tokens\n"); err != nil {
		return nil, err
	}
	return &ChunkTraceWriter{w: bw}, nil
}

// Write appends one request.
func (cw *ChunkTraceWriter) Write(r ChunkRequest) error {
	if r.Key == "" || strings.ContainsAny(r.Key, ",\"\r\n") || strings.ContainsAny(r.Namespace, ",\"\r\n") {
		return fmt.Errorf("%w: chunk trace request %d: key %q / namespace %q must be non-empty and free of commas, quotes and line breaks", ErrTraceFormat, cw.n, r.Key, r.Namespace)
	}
	if r.SizeBytes <= 0 || r.Cost < 0 || math.IsNaN(r.Cost) || math.IsInf(r.Cost, 0) || r.Tokens < 0 {
		return fmt.Errorf("%w: chunk trace request %d: size %d, cost %v, tokens %d (want size > 0, finite cost ≥ 0, tokens ≥ 0)", ErrTraceFormat, cw.n, r.SizeBytes, r.Cost, r.Tokens)
	}
	b := cw.buf[:0]
	b = append(b, r.Key...)
	b = append(b, ',')
	b = strconv.AppendInt(b, r.SizeBytes, 10)
	b = append(b, ',')
	b = strconv.AppendFloat(b, r.Cost, 'g', -1, 64)
	b = append(b, ',')
	b = append(b, r.Namespace...)
	b = append(b, ',')
	b = strconv.AppendInt(b, int64(r.Tokens), 10)
	b = append(b, '\n')
	cw.buf = b
	cw.n++
	_, err := cw.w.Write(b)
	return err
}

// Flush writes buffered requests.
func (cw *ChunkTraceWriter) Flush() error { return cw.w.Flush() }

func readChunk(r io.Reader, name string, o ReadOptions) (*Trace, error) {
	b := newTraceBuilder(name, o, true, true)
	sc := newScanner(r)
	line := 0
	colKey, colSize, colCost := -1, -1, -1
	var fields []string
	var err error
	for !b.full() && sc.Scan() {
		line++
		s := strings.TrimRight(sc.Text(), "\r")
		switch {
		case line == 1:
			if s != ChunkTraceHeader {
				return nil, fmt.Errorf("%w: %s: first line %q, want %q", ErrTraceFormat, name, truncate(s, 64), ChunkTraceHeader)
			}
			continue
		case s == "" || strings.HasPrefix(s, "#"):
			continue
		case colKey < 0:
			fields, _ = splitCSV(s, ',', fields)
			for i, f := range fields {
				switch strings.TrimSpace(f) {
				case "key":
					colKey = i
				case "size_bytes":
					colSize = i
				case "cost":
					colCost = i
				}
			}
			if colKey < 0 || colSize < 0 || colCost < 0 {
				return nil, fmt.Errorf("%w: %s line %d: column header %q must name key, size_bytes and cost", ErrTraceFormat, name, line, truncate(s, 128))
			}
			continue
		}
		fields, err = splitCSV(s, ',', fields)
		if err != nil {
			return nil, fmt.Errorf("%w: %s line %d: %v", ErrTraceFormat, name, line, err)
		}
		if n := max(colKey, colSize, colCost); n >= len(fields) {
			return nil, fmt.Errorf("%w: %s line %d: %d fields, want at least %d", ErrTraceFormat, name, line, len(fields), n+1)
		}
		key := fields[colKey]
		if key == "" {
			return nil, fmt.Errorf("%w: %s line %d: empty key", ErrTraceFormat, name, line)
		}
		size, perr := strconv.ParseInt(strings.TrimSpace(fields[colSize]), 10, 64)
		if perr != nil || size < 0 {
			return nil, fmt.Errorf("%w: %s line %d: size_bytes %q is not a non-negative integer", ErrTraceFormat, name, line, fields[colSize])
		}
		cost, perr := strconv.ParseFloat(strings.TrimSpace(fields[colCost]), 64)
		if perr != nil || cost < 0 || math.IsNaN(cost) || math.IsInf(cost, 0) {
			return nil, fmt.Errorf("%w: %s line %d: cost %q is not a finite number ≥ 0", ErrTraceFormat, name, line, fields[colCost])
		}
		if size == 0 {
			continue
		}
		if o.IgnoreSize {
			size = 1
		}
		id, isNew := b.idFor(key)
		b.add(id, isNew, size, cost)
	}
	if err := sc.Err(); err != nil {
		return nil, scanErr(name, line, err)
	}
	if line == 0 {
		return nil, fmt.Errorf("%w: %s: empty file, want the line %q", ErrTraceFormat, name, ChunkTraceHeader)
	}
	return b.finish("ragkv chunk trace (sizes and recompute costs per request)")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Sniff guesses a trace file's format from its first bytes: chunk (the header line),
// oraclegeneral (not text), csv (a delimiter on the first line) or txt.
func Sniff(head []byte) string {
	if bytes.HasPrefix(head, []byte(ChunkTraceHeader)) {
		return FormatChunk
	}
	for _, c := range head {
		if c == 0 || (c < 0x20 && c != '\n' && c != '\r' && c != '\t') {
			return FormatOracleGeneral
		}
	}
	first, _, _ := bytes.Cut(head, []byte("\n"))
	if bytes.ContainsAny(first, ",\t") {
		return FormatCSV
	}
	return FormatTxt
}
