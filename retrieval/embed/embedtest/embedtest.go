// Package embedtest provides small deterministic word vectors with topical structure and
// an OpenAI-compatible /v1/embeddings test server, for tests of the embedders and of
// the packages that use them (as net/http/httptest does for HTTP).
package embedtest

import (
	"compress/gzip"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode"

	"github.com/ragkv/ragkv/retrieval/embed"
)

// Dim is the dimension of the test word vectors.
const Dim = 16

// Topics groups the vocabulary; words of one topic have nearby vectors.
var Topics = map[string][]string{
	"animals":  {"cat", "dog", "pet", "puppy", "kitten", "animal", "fur", "vet", "bark", "tail"},
	"vehicles": {"car", "truck", "road", "engine", "wheel", "drive", "vehicle", "traffic", "fuel", "brake"},
	"food":     {"bread", "cheese", "cook", "kitchen", "recipe", "eat", "food", "meal", "bake", "soup"},
	"science":  {"cell", "protein", "gene", "cancer", "vitamin", "study", "patients", "clinical", "dose", "tumor"},
}

// FunctionWords are frequent words that share one common direction.
var FunctionWords = []string{"the", "a", "of", "and", "in", "is", "to", "for", "with", "on", "my", "how", "what", "i"}

var topicOrder = []string{"animals", "vehicles", "food", "science"}

// Words returns the vocabulary in frequency-rank order (function words first) and the
// vectors (len(words) × Dim).
func Words() ([]string, []float32) {
	var words []string
	var vecs []float32
	rng := uint64(12345)
	noise := func() float32 {
		rng ^= rng << 13
		rng ^= rng >> 7
		rng ^= rng << 17
		return float32(rng%2001)/1000 - 1 // [-1, 1]
	}
	for _, w := range FunctionWords {
		v := make([]float32, Dim)
		v[Dim-1] = 3 // the common component
		for j := 0; j < Dim-1; j++ {
			v[j] = 0.2 * noise()
		}
		words = append(words, w)
		vecs = append(vecs, v...)
	}
	for ti, t := range topicOrder {
		for _, w := range Topics[t] {
			v := make([]float32, Dim)
			v[Dim-1] = 1
			for j := 0; j < Dim-1; j++ {
				v[j] = 0.3 * noise()
			}
			v[3*ti] += 2
			v[3*ti+1] += 1
			words = append(words, w)
			vecs = append(vecs, v...)
		}
	}
	return words, vecs
}

// WordVectors returns the vocabulary as an embed.WordVectors.
func WordVectors(t testing.TB) *embed.WordVectors {
	t.Helper()
	words, vecs := Words()
	wv, err := embed.NewWordVectors(words, Dim, vecs)
	if err != nil {
		t.Fatalf("embedtest: %v", err)
	}
	return wv
}

// WriteGloVe writes the vocabulary in GloVe text format into dir (gzip-compressed when
// gz) and returns the path.
func WriteGloVe(dir string, gz bool) (string, error) {
	words, vecs := Words()
	var b strings.Builder
	for i, w := range words {
		b.WriteString(w)
		for _, x := range vecs[i*Dim : (i+1)*Dim] {
			b.WriteByte(' ')
			b.WriteString(strconv.FormatFloat(float64(x), 'g', -1, 32))
		}
		b.WriteByte('\n')
	}
	name := "glove-test.txt"
	if gz {
		name += ".gz"
	}
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if !gz {
		_, err = f.WriteString(b.String())
		return path, err
	}
	zw := gzip.NewWriter(f)
	if _, err := zw.Write([]byte(b.String())); err != nil {
		return "", err
	}
	return path, zw.Close()
}

// Server is an httptest server speaking the OpenAI embeddings protocol. Its embedding
// of a text is the plain (unnormalized) mean of its words' test vectors, and it lists
// the results in reverse order with their "index" fields, as servers may.
type Server struct {
	*httptest.Server
	// APIKey, when set, must be sent as a bearer token.
	APIKey string

	mu       sync.Mutex
	requests int
	batches  []int
	fail     int // status code to fail with (0: succeed)
}

// NewServer starts a test embeddings server, closed when the test ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{}
	wv := WordVectors(t)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests++
		fail := s.fail
		s.mu.Unlock()
		if r.Method != http.MethodPost || r.URL.Path != "/v1/embeddings" {
			http.Error(w, `{"error":{"message":"not found"}}`, http.StatusNotFound)
			return
		}
		if s.APIKey != "" && r.Header.Get("Authorization") != "Bearer "+s.APIKey {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":{"message":"invalid api key"}}`))
			return
		}
		if fail != 0 {
			w.WriteHeader(fail)
			_, _ = w.Write([]byte(`{"error":{"message":"injected failure"}}`))
			return
		}
		var req struct {
			Model string   `json:"model"`
			Input []string `json:"input"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Model == "" {
			http.Error(w, `{"error":{"message":"bad request"}}`, http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.batches = append(s.batches, len(req.Input))
		s.mu.Unlock()
		type item struct {
			Object    string    `json:"object"`
			Index     int       `json:"index"`
			Embedding []float32 `json:"embedding"`
		}
		var data []item
		for i, text := range req.Input {
			data = append(data, item{Object: "embedding", Index: i, Embedding: MeanVector(wv, text)})
		}
		slices.Reverse(data)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "model": req.Model, "data": data})
	}))
	t.Cleanup(s.Close)
	return s
}

// Fail makes later requests fail with the given HTTP status (0: succeed again).
func (s *Server) Fail(status int) {
	s.mu.Lock()
	s.fail = status
	s.mu.Unlock()
}

// Batches returns the number of inputs of every request served so far.
func (s *Server) Batches() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.batches)
}

// MeanVector is the server's embedding: the mean vector of the known words (a small
// constant vector when none is known, so that it is never zero).
func MeanVector(wv *embed.WordVectors, text string) []float32 {
	v := make([]float32, Dim)
	n := 0
	for _, w := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) }) {
		if i := wv.Lookup(w); i >= 0 {
			for j, x := range wv.Vector(i) {
				v[j] += x
			}
			n++
		}
	}
	if n == 0 {
		for j := range v {
			v[j] = float32(1 / math.Sqrt(Dim))
		}
		return v
	}
	for j := range v {
		v[j] /= float32(n)
	}
	return v
}
