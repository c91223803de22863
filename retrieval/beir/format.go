package beir

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// ErrMalformed marks input that does not follow the BEIR formats.
var ErrMalformed = errors.New("beir: malformed input")

// MaxLineBytes bounds one JSONL line (a whole document).
const MaxLineBytes = 64 << 20

// Doc is one corpus document.
type Doc struct {
	ID    string
	Title string
	Text  string
}

// Query is one query.
type Query struct {
	ID   string
	Text string
}

// Qrels maps query id → document id → graded relevance.
type Qrels map[string]map[string]int

// jsonID accepts an id written as a JSON string or a JSON number (some BEIR exports
// write numeric ids unquoted).
type jsonID string

func (id *jsonID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*id = jsonID(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("id must be a string or a number, got %s", b)
	}
	*id = jsonID(n.String())
	return nil
}

// ScanJSONL calls fn for every non-blank line of r with its 1-based line number. An
// error returned by fn stops the scan and is returned as is. name labels errors.
func ScanJSONL(r io.Reader, name string, fn func(line int, b []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxLineBytes)
	n := 0
	for sc.Scan() {
		n++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if err := fn(n, b); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("%w: %s:%d: line longer than %d bytes", ErrMalformed, name, n+1, MaxLineBytes)
		}
		return fmt.Errorf("read %s: %w", name, err)
	}
	return nil
}

// LineError builds an ErrMalformed error that names the file and line.
func LineError(name string, line int, format string, args ...any) error {
	return fmt.Errorf("%w: %s:%d: %s", ErrMalformed, name, line, fmt.Sprintf(format, args...))
}

// DecodeStrict decodes one JSON object, rejecting trailing data.
func DecodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// ReadCorpus streams the documents of a BEIR corpus to fn. A line that is not a JSON
// object, lacks "_id", repeats an earlier id, or has neither title nor text is an error.
func ReadCorpus(r io.Reader, name string, fn func(Doc) error) error {
	seen := map[string]int{}
	return ScanJSONL(r, name, func(line int, b []byte) error {
		var d struct {
			ID    *jsonID `json:"_id"`
			Title string  `json:"title"`
			Text  string  `json:"text"`
		}
		if err := DecodeStrict(b, &d); err != nil {
			return LineError(name, line, "invalid JSON document: %v", err)
		}
		if d.ID == nil || *d.ID == "" {
			return LineError(name, line, `missing "_id"`)
		}
		id := string(*d.ID)
		if prev, dup := seen[id]; dup {
			return LineError(name, line, "duplicate _id %q (first on line %d)", id, prev)
		}
		seen[id] = line
		if strings.TrimSpace(d.Title) == "" && strings.TrimSpace(d.Text) == "" {
			return LineError(name, line, "document %q has neither title nor text", id)
		}
		return fn(Doc{ID: id, Title: d.Title, Text: d.Text})
	})
}

// ReadQueries reads a BEIR queries file.
func ReadQueries(r io.Reader, name string) ([]Query, error) {
	var qs []Query
	seen := map[string]int{}
	err := ScanJSONL(r, name, func(line int, b []byte) error {
		var q struct {
			ID   *jsonID `json:"_id"`
			Text *string `json:"text"`
		}
		if err := DecodeStrict(b, &q); err != nil {
			return LineError(name, line, "invalid JSON query: %v", err)
		}
		if q.ID == nil || *q.ID == "" {
			return LineError(name, line, `missing "_id"`)
		}
		if q.Text == nil || strings.TrimSpace(*q.Text) == "" {
			return LineError(name, line, `query %q has no "text"`, string(*q.ID))
		}
		id := string(*q.ID)
		if prev, dup := seen[id]; dup {
			return LineError(name, line, "duplicate _id %q (first on line %d)", id, prev)
		}
		seen[id] = line
		qs = append(qs, Query{ID: id, Text: *q.Text})
		return nil
	})
	return qs, err
}

// ReadQrels reads a BEIR qrels TSV file: a header line, then query-id, corpus-id and an
// integer score separated by tabs.
func ReadQrels(r io.Reader, name string) (Qrels, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	q := Qrels{}
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), "\r")
		if n == 1 {
			// The header (query-id corpus-id score) carries no judgement.
			if f := strings.Fields(line); len(f) == 3 {
				if _, err := strconv.Atoi(f[2]); err == nil {
					return nil, LineError(name, 1, "first line must be the header (query-id corpus-id score), got a judgement")
				}
			}
			continue
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 3 {
			f = strings.Fields(line)
		}
		if len(f) != 3 {
			return nil, LineError(name, n, "want 3 tab-separated fields (query-id corpus-id score), got %d", len(f))
		}
		score, err := strconv.Atoi(strings.TrimSpace(f[2]))
		if err != nil {
			return nil, LineError(name, n, "score %q is not an integer", f[2])
		}
		qid, did := strings.TrimSpace(f[0]), strings.TrimSpace(f[1])
		if qid == "" || did == "" {
			return nil, LineError(name, n, "empty query-id or corpus-id")
		}
		m := q[qid]
		if m == nil {
			m = map[string]int{}
			q[qid] = m
		}
		m[did] = score
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%w: %s:%d: line longer than 1 MiB", ErrMalformed, name, n+1)
		}
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: %s: empty file (want a header line)", ErrMalformed, name)
	}
	return q, nil
}

// LoadQueries reads a queries file by path.
func LoadQueries(path string) ([]Query, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadQueries(f, path)
}

// LoadQrels reads a qrels file by path.
func LoadQrels(path string) (Qrels, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadQrels(f, path)
}
