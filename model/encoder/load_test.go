package encoder

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ragkv/ragkv/internal/kernels"
	"github.com/ragkv/ragkv/model"
	"github.com/ragkv/ragkv/model/gguf"
	"github.com/ragkv/ragkv/model/internal/safetensors"
)

// hfName maps a GGUF bert tensor name to HF's.
func hfName(g string) string {
	for _, p := range [][2]string{{ggufNames.tok, hfNames.tok}, {ggufNames.pos, hfNames.pos}, {ggufNames.typ, hfNames.typ},
		{ggufNames.embNormW, hfNames.embNormW}, {ggufNames.embNormB, hfNames.embNormB}} {
		if g == p[0] {
			return p[1]
		}
	}
	var l int
	var rest string
	if _, err := fmt.Sscanf(g, "blk.%d.%s", &l, &rest); err != nil {
		panic(g)
	}
	base, suffix, _ := strings.Cut(rest, ".")
	for _, p := range [][2]string{{"attn_q", hfNames.q}, {"attn_k", hfNames.k}, {"attn_v", hfNames.v}, {"attn_output", hfNames.o},
		{"attn_output_norm", hfNames.attnNorm}, {"ffn_up", hfNames.up}, {"ffn_down", hfNames.down}, {"layer_output_norm", hfNames.outNorm}} {
		if base == p[0] {
			return fmt.Sprintf(p[1], l) + "." + suffix
		}
	}
	panic(g)
}

// writeHF writes the synthetic tiny-bert weights (matrices of type dt) as a HF BERT directory: config.json,
// model.safetensors (names with prefix, LayerNorm weights as gamma/beta if old), vocab.txt
// or tokenizer.json, and a sentence-transformers pooling config if pooling is set.
func writeHF(t *testing.T, dir, prefix string, old, tokJSON bool, pooling string, dt kernels.DType) {
	t.Helper()
	c := Shapes["tiny-bert"]
	var ts []safetensors.Tensor
	for _, st := range SynthTensors(c, dt) {
		b, err := model.SynthTensorData(st, 1)
		if err != nil {
			t.Fatal(err)
		}
		name := hfName(st.Name)
		if old {
			name = strings.NewReplacer("LayerNorm.weight", "LayerNorm.gamma", "LayerNorm.bias", "LayerNorm.beta").Replace(name)
		}
		shape := []int{st.Rows, st.Cols}
		if st.Rows == 1 && !strings.Contains(name, "token_type") {
			shape = shape[1:]
		}
		sdt := map[kernels.DType]string{kernels.F32: "F32", kernels.F16: "F16", kernels.BF16: "BF16"}[st.Type]
		ts = append(ts, safetensors.Tensor{Name: prefix + name, DType: sdt, Shape: shape, Data: b})
	}
	var buf bytes.Buffer
	if err := safetensors.Write(&buf, ts, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("model.safetensors", buf.Bytes())
	cfg := fmt.Sprintf(`{"model_type":"bert","architectures":["BertModel"],"hidden_size":%d,"intermediate_size":%d,"num_hidden_layers":%d,
		"num_attention_heads":%d,"vocab_size":%d,"max_position_embeddings":%d,"type_vocab_size":%d,"layer_norm_eps":1e-12,"hidden_act":"gelu",
		"position_embedding_type":"absolute"}`, c.Dim, c.Hidden, c.Layers, c.Heads, c.Vocab, c.MaxPos, c.TypeVocab)
	write("config.json", []byte(cfg))
	vocab, err := SynthVocab(c.Vocab)
	if err != nil {
		t.Fatal(err)
	}
	if tokJSON {
		v := map[string]int{}
		for i, s := range vocab {
			v[s] = i
		}
		tj, _ := json.Marshal(map[string]any{
			"normalizer":    map[string]any{"type": "BertNormalizer", "lowercase": true, "strip_accents": nil, "handle_chinese_chars": true, "clean_text": true},
			"pre_tokenizer": map[string]any{"type": "BertPreTokenizer"},
			"model":         map[string]any{"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100, "vocab": v},
		})
		write("tokenizer.json", tj)
	} else {
		write("vocab.txt", []byte(strings.Join(vocab, "\n")+"\n"))
		write("tokenizer_config.json", []byte(`{"do_lower_case": true}`))
	}
	if pooling != "" {
		write("modules.json", []byte(`[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},
			{"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"}]`))
		write("1_Pooling/config.json", []byte(fmt.Sprintf(`{"word_embedding_dimension":64,"pooling_mode_cls_token":%v,"pooling_mode_mean_tokens":%v}`,
			pooling == "cls", pooling == "mean")))
	}
}

var testTexts = []string{"Tom went to the park with his dog.", "In the park Tom found a big red ball!", "the protein", "Dense retrieval: cached tokens."}

func embedAll(t *testing.T, path string, o EmbedderOptions) ([][]float32, *Embedder) {
	t.Helper()
	e, err := NewEmbedder(path, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	v, err := e.Embed(context.Background(), testTexts)
	if err != nil {
		t.Fatal(err)
	}
	return v, e
}

// TestSafetensorsMatchesGGUF: the same weights as a HF directory (vocab.txt or
// tokenizer.json; "bert." prefix and gamma/beta names; pooling from the
// sentence-transformers config) give exactly the GGUF file's vectors.
func TestSafetensorsMatchesGGUF(t *testing.T) {
	dir := t.TempDir()
	path, _ := synthFile(t, dir, "tiny-bert", "f32", 1)
	want, _ := embedAll(t, path, EmbedderOptions{Pooling: PoolCLS})
	for i, v := range []struct {
		prefix       string
		old, tokJSON bool
		pooling      string
	}{{"", false, false, "cls"}, {"bert.", true, true, "cls"}, {"", false, true, ""}} {
		hf := filepath.Join(dir, fmt.Sprintf("hf%d", i))
		writeHF(t, hf, v.prefix, v.old, v.tokJSON, v.pooling, kernels.F32)
		o := EmbedderOptions{}
		if v.pooling == "" {
			o.Pooling = PoolCLS
		}
		got, e := embedAll(t, hf, o)
		if e.Pooling() != PoolCLS {
			t.Errorf("variant %d: pooling %v", i, e.Pooling())
		}
		if !strings.HasPrefix(e.Name(), "bert:hf") {
			t.Errorf("variant %d: name %q", i, e.Name())
		}
		for j := range want {
			if !slices.Equal(got[j], want[j]) {
				t.Errorf("variant %d text %d: safetensors vector differs from GGUF (cos %.9f)", i, j, cosine(got[j], want[j]))
			}
		}
	}
	// f16 and bf16 checkpoints equal the GGUF files of those types.
	for _, dt := range []kernels.DType{kernels.F16, kernels.BF16} {
		gp, _ := synthFile(t, dir, "tiny-bert", dt.String(), 1)
		want, _ := embedAll(t, gp, EmbedderOptions{})
		hf := filepath.Join(dir, "hf-"+dt.String())
		writeHF(t, hf, "", false, false, "mean", dt)
		got, _ := embedAll(t, hf, EmbedderOptions{})
		for j := range want {
			if !slices.Equal(got[j], want[j]) {
				t.Errorf("%s text %d: safetensors vector differs from GGUF (cos %.9f)", dt, j, cosine(got[j], want[j]))
			}
		}
	}
	// sentence-transformers' max_seq_length is the default truncation.
	if err := os.WriteFile(filepath.Join(dir, "hf0", "sentence_bert_config.json"), []byte(`{"max_seq_length": 6, "do_lower_case": false}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, e6 := embedAll(t, filepath.Join(dir, "hf0"), EmbedderOptions{})
	if ids := e6.Tokens("the park dog cat tom lily red"); len(ids) != 6 || ids[5] != 3 {
		t.Errorf("max_seq_length 6: %v", ids)
	}
	if ids := e6.Tokens("the park"); len(ids) != 4 {
		t.Errorf("short text: %v", ids)
	}
	os.Remove(filepath.Join(dir, "hf0", "sentence_bert_config.json"))
	// The .safetensors file path works too.
	if got, _ := embedAll(t, filepath.Join(dir, "hf0", "model.safetensors"), EmbedderOptions{}); !slices.Equal(got[0], want[0]) {
		t.Error("model.safetensors path differs")
	}
}

// TestEmbedderBatching: one batch, a batch per text and texts split across batches give
// the same vectors; vectors are unit length; truncation keeps [CLS] … [SEP].
func TestEmbedderBatching(t *testing.T) {
	dir := t.TempDir()
	path, _ := synthFile(t, dir, "tiny-bert", "f32", 1)
	one, e := embedAll(t, path, EmbedderOptions{})
	small, _ := embedAll(t, path, EmbedderOptions{BatchTokens: 1})
	mid, _ := embedAll(t, path, EmbedderOptions{BatchTokens: 25})
	for i := range one {
		if c := cosine(one[i], small[i]); c < 1-1e-6 {
			t.Errorf("text %d: batched vs alone cosine %.9f", i, c)
		}
		if c := cosine(one[i], mid[i]); c < 1-1e-6 {
			t.Errorf("text %d: split batches cosine %.9f", i, c)
		}
		var n float64
		for _, x := range one[i] {
			n += float64(x) * float64(x)
		}
		if n < 1-1e-5 || n > 1+1e-5 {
			t.Errorf("text %d: squared norm %g", i, n)
		}
	}
	if c := cosine(one[0], one[1]); c > 0.9999 {
		t.Errorf("different texts give the same vector (cos %g)", c)
	}
	long := strings.Repeat("park ", 300)
	ids := e.Tokens(long)
	if len(ids) != 128 || ids[0] != 2 || ids[127] != 3 {
		t.Errorf("truncated to %d tokens, first %d last %d", len(ids), ids[0], ids[len(ids)-1])
	}
	_, e5 := embedAll(t, path, EmbedderOptions{MaxTokens: 5, Prefix: "query: "})
	if ids := e5.Tokens("the park dog cat"); len(ids) != 5 || ids[4] != 3 {
		t.Errorf("max 5: %v", ids)
	}
	if e5.Name() == e.Name() {
		t.Errorf("options do not change the name %q", e.Name())
	}
	if v, err := e.Embed(context.Background(), []string{long, "", "x"}); err != nil || len(v) != 3 {
		t.Errorf("long and empty texts: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.Embed(ctx, testTexts); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// TestQueryPrefix: with QueryPrefix, EmbedQueries encodes exactly what Embed encodes
// with that prefix as Prefix, Embed keeps the passage prefix, and the name changes;
// without it EmbedQueries equals Embed.
func TestQueryPrefix(t *testing.T) {
	dir := t.TempDir()
	path, _ := synthFile(t, dir, "tiny-bert", "f32", 1)
	passages, plain := embedAll(t, path, EmbedderOptions{Prefix: "passage: "})
	asQuery, _ := embedAll(t, path, EmbedderOptions{Prefix: "query: "})
	_, e5 := embedAll(t, path, EmbedderOptions{Prefix: "passage: ", QueryPrefix: "query: "})
	ctx := context.Background()
	qv, err := e5.EmbedQueries(ctx, testTexts)
	if err != nil {
		t.Fatal(err)
	}
	pv, err := e5.Embed(ctx, testTexts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range testTexts {
		if !slices.Equal(qv[i], asQuery[i]) {
			t.Errorf("text %d: EmbedQueries differs from Embed with the query prefix", i)
		}
		if !slices.Equal(pv[i], passages[i]) {
			t.Errorf("text %d: Embed with a query prefix set differs from the passage encoding", i)
		}
		if c := cosine(qv[i], pv[i]); c > 1-1e-6 {
			t.Errorf("text %d: query and passage encodings are the same (cos %g)", i, c)
		}
	}
	if want := e5.b.tokenize("query: the park", 0); !slices.Equal(e5.QueryTokens("the park"), want) {
		t.Errorf("QueryTokens %v, want %v", e5.QueryTokens("the park"), want)
	}
	pq, err := plain.EmbedQueries(ctx, testTexts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range testTexts {
		if !slices.Equal(pq[i], passages[i]) {
			t.Errorf("text %d: without a query prefix EmbedQueries differs from Embed", i)
		}
	}
	if e5.Name() == plain.Name() {
		t.Errorf("the query prefix does not change the name %q", e5.Name())
	}
	if _, o, _, err := ParseSpec("gguf:/m.gguf,prefix=passage:%20,query-prefix=query:%20"); err != nil || o.Prefix != "passage: " || o.QueryPrefix != "query: " {
		t.Errorf("ParseSpec query-prefix: %+v %v", o, err)
	}
	if _, _, ok, err := ParseSpec("gguf:x,query-prefix=%zz"); !ok || err == nil {
		t.Errorf("ParseSpec bad query-prefix: ok %v err %v", ok, err)
	}
}

// rewriteGGUF copies a GGUF file with edit applied to its metadata and tensor list.
func rewriteGGUF(t *testing.T, src, dst string, edit func(kvs []gguf.KV, tensors []gguf.TensorInfo) ([]gguf.KV, []gguf.TensorInfo)) {
	t.Helper()
	f, err := gguf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	kvs, tis := edit(slices.Clone(f.KVs), slices.Clone(f.Tensors))
	var buf bytes.Buffer
	w := gguf.NewWriter(&buf)
	for _, kv := range kvs {
		if err := w.AddKV(kv.Key, kv.Value); err != nil {
			t.Fatal(err)
		}
	}
	for _, ti := range tis {
		if err := w.AddTensor(ti.Name, ti.Type, ti.Dims); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WriteHeader(); err != nil {
		t.Fatal(err)
	}
	for _, ti := range tis {
		_, b, err := f.TensorData(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		if sz, _ := ti.Size(); uint64(len(b)) != sz {
			b = make([]byte, sz)
		}
		if _, err := w.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestOpenErrors: malformed or unsupported files are errors wrapping model.ErrFormat or
// model.ErrUnsupported, never panics.
func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	path, _ := synthFile(t, dir, "tiny-bert", "f32", 1)
	setKV := func(key string, v gguf.Value) func([]gguf.KV, []gguf.TensorInfo) ([]gguf.KV, []gguf.TensorInfo) {
		return func(kvs []gguf.KV, ts []gguf.TensorInfo) ([]gguf.KV, []gguf.TensorInfo) {
			for i := range kvs {
				if kvs[i].Key == key {
					kvs[i].Value = v
					return kvs, ts
				}
			}
			return append(kvs, gguf.KV{Key: key, Value: v}), ts
		}
	}
	cases := []struct {
		name string
		edit func([]gguf.KV, []gguf.TensorInfo) ([]gguf.KV, []gguf.TensorInfo)
		want error
	}{
		{"causal", setKV("bert.attention.causal", gguf.Bool(true)), model.ErrUnsupported},
		{"pooling-rank", setKV("bert.pooling_type", gguf.Uint32(4)), model.ErrUnsupported},
		{"heads", setKV("bert.attention.head_count", gguf.Uint32(3)), model.ErrFormat},
		{"no-eps", func(kvs []gguf.KV, ts []gguf.TensorInfo) ([]gguf.KV, []gguf.TensorInfo) {
			return slices.DeleteFunc(kvs, func(kv gguf.KV) bool { return kv.Key == "bert.attention.layer_norm_epsilon" }), ts
		}, model.ErrFormat},
		{"missing-tensor", func(kvs []gguf.KV, ts []gguf.TensorInfo) ([]gguf.KV, []gguf.TensorInfo) {
			return kvs, slices.DeleteFunc(ts, func(ti gguf.TensorInfo) bool { return ti.Name == "blk.1.ffn_down.bias" })
		}, model.ErrFormat},
		{"wrong-shape", func(kvs []gguf.KV, ts []gguf.TensorInfo) ([]gguf.KV, []gguf.TensorInfo) {
			for i := range ts {
				if ts[i].Name == "blk.0.attn_q.weight" {
					ts[i].Dims = []uint64{64, 32}
				}
			}
			return kvs, ts
		}, model.ErrFormat},
		{"llama-arch", setKV("general.architecture", gguf.String("nomic-bert")), model.ErrUnsupported},
	}
	for _, c := range cases {
		p := filepath.Join(dir, c.name+".gguf")
		rewriteGGUF(t, path, p, c.edit)
		b, err := Open(p, Options{Threads: 1})
		if err == nil {
			b.Close()
			t.Errorf("%s: opened", c.name)
			continue
		}
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := Open(filepath.Join(dir, "none.gguf"), Options{}); err == nil {
		t.Error("missing file opened")
	}
	if err := os.WriteFile(filepath.Join(dir, "junk.bin"), []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(filepath.Join(dir, "junk.bin"), Options{}); !errors.Is(err, model.ErrFormat) {
		t.Errorf("junk: %v", err)
	}
	b, err := Open(path, Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, seqs := range [][][]int{{{}}, {{2, 512, 3}}, {{-1}}, {make([]int, 129)}} {
		if _, _, err := b.Hidden(context.Background(), seqs); !errors.Is(err, model.ErrInvalid) {
			t.Errorf("Hidden(%d tokens): %v", len(seqs[0]), err)
		}
	}
	for _, s := range []string{"gguf:x,pool=max", "gguf:x,max=-1", "gguf:x,nope=1", "gguf:x,pool", "gguf:x,prefix=%zz"} {
		if _, _, ok, err := ParseSpec(s); !ok || err == nil {
			t.Errorf("ParseSpec(%q): ok %v err %v", s, ok, err)
		}
	}
	if p, o, ok, err := ParseSpec("gguf:/m.gguf,pool=last,max=64,prefix=query:%20a%2Cb,eos=true"); err != nil || !ok || p != "/m.gguf" ||
		o.Pooling != PoolLast || o.MaxTokens != 64 || o.Prefix != "query: a,b" || !o.AddEOS {
		t.Errorf("ParseSpec: %q %+v %v %v", p, o, ok, err)
	}
	if _, _, ok, _ := ParseSpec("glove.txt.gz"); ok {
		t.Error("a GloVe path parsed as an encoder spec")
	}
}

// FuzzOpenGGUF: a synthetic encoder file with arbitrary bytes overwritten opens with an
// error or embeds a text without panicking.
func FuzzOpenGGUF(f *testing.F) {
	var buf bytes.Buffer
	if err := SynthGGUF(context.Background(), &buf, SynthOptions{Shape: "tiny-bert", DType: kernels.F32, Seed: 1}); err != nil {
		f.Fatal(err)
	}
	orig := buf.Bytes()
	for _, off := range []uint32{8, 24, 100, 400, 2000, 9000, 20000, 60000} {
		f.Add(off, []byte{0xff, 0xff, 0xff, 0x7f})
		f.Add(off, []byte{0, 0, 0, 0, 0, 0, 0, 0})
	}
	pool := kernels.NewPool(1)
	f.Cleanup(pool.Close)
	f.Fuzz(func(t *testing.T, off uint32, patch []byte) {
		b := slices.Clone(orig)
		copy(b[int(off)%len(b):], patch)
		p := filepath.Join(t.TempDir(), "m.gguf")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		e, err := NewEmbedder(p, EmbedderOptions{Pool: pool})
		if err != nil {
			return
		}
		defer e.Close()
		_, _ = e.Embed(context.Background(), []string{"Tom went to the park."})
	})
}

// TestEmbedConcurrent: concurrent Embed calls on one Embedder (BERT and decoder) give the
// vectors of a lone call.
func TestEmbedConcurrent(t *testing.T) {
	dir := t.TempDir()
	for _, shape := range []string{"tiny-bert", "tiny-llama3"} {
		path, _ := synthFile(t, dir, shape, "f32", 1)
		want, e := embedAll(t, path, EmbedderOptions{Threads: 2})
		errs := make(chan error, 4)
		for g := 0; g < 4; g++ {
			go func() {
				got, err := e.Embed(context.Background(), testTexts)
				if err == nil {
					for i := range got {
						if !slices.Equal(got[i], want[i]) {
							err = fmt.Errorf("%s text %d differs under concurrency", shape, i)
						}
					}
				}
				errs <- err
			}()
		}
		for g := 0; g < 4; g++ {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
	}
}
