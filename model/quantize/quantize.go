package quantize

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/ragkv/ragkv/internal/kernels"
	"github.com/ragkv/ragkv/model/gguf"
)

// Options configures Run.
type Options struct {
	Type FileType
	// Threads quantizing rows in parallel (≤ 0: GOMAXPROCS). The output does not depend
	// on it.
	Threads int
	// Progress, if not nil, is called (from one goroutine at a time) with the bytes of
	// input tensor data processed so far and the total.
	Progress func(done, total int64)
}

// Validate checks the options.
func (o *Options) Validate() error {
	if !o.Type.valid() {
		return fmt.Errorf("%w: type %v (supported: %v)", ErrInvalid, o.Type, FileTypeNames())
	}
	return nil
}

// EnsureDefaults fills unset fields.
func (o *Options) EnsureDefaults() {
	if o.Threads <= 0 {
		o.Threads = runtime.GOMAXPROCS(0)
	}
}

// TensorResult describes what happened to one tensor.
type TensorResult struct {
	Name     string   `json:"name"`
	Dims     []uint64 `json:"dims"`
	From     string   `json:"from"`
	To       string   `json:"to"`
	BytesIn  int64    `json:"bytes_in"`
	BytesOut int64    `json:"bytes_out"`
	// Fallback, when set, says why the type is not the one the mix's rule chose.
	Fallback string `json:"fallback,omitempty"`
}

// Result summarizes a conversion.
type Result struct {
	In       string `json:"in"`
	Out      string `json:"out"`
	Format   string `json:"format"` // input format: gguf or safetensors
	Arch     string `json:"arch"`
	Type     string `json:"type"`
	FileType uint32 `json:"file_type"` // general.file_type written
	// TypeCounts counts the output tensors per type.
	TypeCounts map[string]int `json:"tensors_per_type"`
	BytesIn    int64          `json:"bytes_in"`  // tensor data read
	BytesOut   int64          `json:"bytes_out"` // tensor data written (without padding)
	FileBytes  int64          `json:"file_bytes"`
	Fallbacks  int            `json:"fallbacks"`
	Tensors    []TensorResult `json:"tensors,omitempty"`
	Warnings   []string       `json:"warnings,omitempty"`
}

// plan is the decision for one tensor.
type plan struct {
	t        *tensor
	to       gguf.TensorType
	quantize bool // produce the bytes from float rows (else copy raw)
	fallback string
	outBytes int64
}

// makePlan applies the type rules to every tensor of s.
func makePlan(s *source, ft FileType) ([]plan, *rules, error) {
	names := make([]string, len(s.tensors))
	for i, t := range s.tensors {
		names[i] = t.name
	}
	r := newRules(ft, s.info, names)
	ps := make([]plan, 0, len(s.tensors))
	for _, t := range s.tensors {
		p := plan{t: t, to: t.keep}
		if quantizable(t.name, t.dims) {
			to, fb, err := r.typeFor(t.name, t.dims)
			if err != nil {
				return nil, nil, err
			}
			p.to, p.fallback = to, fb
		}
		p.quantize = p.to != t.typ || t.raw == nil
		if p.quantize {
			if t.rows == nil {
				return nil, nil, fmt.Errorf("%w: tensor %q is %s; requantizing to %s is not supported (give an f32, f16 or bf16 model)",
					ErrUnsupported, t.name, t.typ, p.to)
			}
			if t.typ != gguf.TensorF32 && t.typ != gguf.TensorF16 && t.typ != gguf.TensorBF16 {
				return nil, nil, fmt.Errorf("%w: tensor %q is %s; requantizing to %s is not supported (give an f32, f16 or bf16 model)",
					ErrUnsupported, t.name, t.typ, p.to)
			}
			if !kernels.DType(p.to).Supported() {
				return nil, nil, fmt.Errorf("%w: tensor %q: no quantizer for %s", ErrUnsupported, t.name, p.to)
			}
		}
		sz, err := (gguf.TensorInfo{Name: t.name, Dims: t.dims, Type: p.to}).Size()
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrUnsupported, err)
		}
		p.outBytes = int64(sz)
		ps = append(ps, p)
	}
	return ps, r, nil
}

// outputKVs is the input metadata with general.quantization_version and
// general.file_type set (appended last, as gguf_set_val_u32 does) and split keys removed.
func outputKVs(in []gguf.KV, ft FileType) []gguf.KV {
	drop := map[string]bool{"general.quantization_version": true, "general.file_type": true,
		"split.no": true, "split.count": true, "split.tensors.count": true}
	out := make([]gguf.KV, 0, len(in)+2)
	for _, kv := range in {
		if !drop[kv.Key] {
			out = append(out, kv)
		}
	}
	return append(out, gguf.KV{Key: "general.quantization_version", Value: gguf.Uint32(2)},
		gguf.KV{Key: "general.file_type", Value: gguf.Uint32(uint32(ft))})
}

// open reads the input: a GGUF file, or a HF safetensors directory or file.
func open(in string) (*source, error) {
	st, err := os.Stat(in)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if !st.IsDir() && gguf.HasMagic(in) {
		return openGGUF(in)
	}
	if st.IsDir() || filepath.Ext(in) == ".safetensors" {
		return openHF(in)
	}
	return nil, fmt.Errorf("%w: %s is neither a GGUF file nor a safetensors model", ErrInvalid, in)
}

// Run converts the model at in (a GGUF file or a HF safetensors directory) to a GGUF file
// at out with the mix o.Type. The file is written to a temporary file beside out and
// renamed when complete; on any error nothing is left at out (an existing file there is
// only replaced on success).
func Run(ctx context.Context, in, out string, o Options) (*Result, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o.EnsureDefaults()
	if out == "" {
		return nil, fmt.Errorf("%w: no output file", ErrInvalid)
	}
	if a, err := os.Stat(in); err == nil {
		if b, err := os.Stat(out); err == nil && os.SameFile(a, b) {
			return nil, fmt.Errorf("%w: output %s is the input file", ErrInvalid, out)
		}
	}
	src, err := open(in)
	if err != nil {
		return nil, err
	}
	defer src.close()
	plans, r, err := makePlan(src, o.Type)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in, err)
	}
	res := &Result{In: in, Out: out, Format: src.format, Arch: src.info.arch, Type: o.Type.String(), FileType: uint32(o.Type),
		TypeCounts: map[string]int{}, Fallbacks: r.nFall}
	if src.format == "safetensors" && !hasKeyPrefix(src.kvs, "tokenizer.") {
		res.Warnings = append(res.Warnings, "no tokenizer.json beside the model: the output has no tokenizer metadata")
	}

	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("%w: output: %w", ErrInvalid, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := write(ctx, tmp, src, plans, o, res); err != nil {
		return nil, err
	}
	if err := tmp.Sync(); err != nil {
		return nil, fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	st, err := tmp.Stat()
	if err != nil {
		return nil, err
	}
	res.FileBytes = st.Size()
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return nil, fmt.Errorf("%w: output: %w", ErrInvalid, err)
	}
	done = true
	return res, nil
}

func hasKeyPrefix(kvs []gguf.KV, p string) bool {
	for _, kv := range kvs {
		if len(kv.Key) >= len(p) && kv.Key[:len(p)] == p {
			return true
		}
	}
	return false
}

// write streams the output GGUF to f.
func write(ctx context.Context, f *os.File, src *source, plans []plan, o Options, res *Result) error {
	gw := gguf.NewWriter(f)
	for _, kv := range outputKVs(src.kvs, o.Type) {
		if err := gw.AddKV(kv.Key, kv.Value); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	var total int64
	for _, p := range plans {
		if err := gw.AddTensor(p.t.name, p.to, p.t.dims); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		total += p.t.inBytes
	}
	if err := gw.WriteHeader(); err != nil {
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	q := newRowQuantizer(o.Threads)
	var doneBytes int64
	for _, p := range plans {
		if err := ctx.Err(); err != nil {
			return err
		}
		t := p.t
		if !p.quantize {
			if _, err := gw.Write(t.raw); err != nil {
				return fmt.Errorf("write %s: %w", f.Name(), err)
			}
			doneBytes += t.inBytes
			if o.Progress != nil {
				o.Progress(doneBytes, total)
			}
		} else {
			err := q.tensor(ctx, t, kernels.DType(p.to), func(b []byte, frac float64) error {
				if _, err := gw.Write(b); err != nil {
					return fmt.Errorf("write %s: %w", f.Name(), err)
				}
				if o.Progress != nil {
					o.Progress(doneBytes+int64(frac*float64(t.inBytes)), total)
				}
				return nil
			})
			if err != nil {
				return err
			}
			doneBytes += t.inBytes
		}
		res.TypeCounts[p.to.String()]++
		res.BytesIn += t.inBytes
		res.BytesOut += p.outBytes
		res.Tensors = append(res.Tensors, TensorResult{Name: t.name, Dims: t.dims, From: t.typ.String(), To: p.to.String(),
			BytesIn: t.inBytes, BytesOut: p.outBytes, Fallback: p.fallback})
	}
	if err := gw.Finish(); err != nil {
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	return nil
}

// rowQuantizer converts tensors chunk by chunk: each chunk's rows are split among the
// workers, each reading float rows into its own scratch and quantizing them into its part
// of the chunk's output buffer.
type rowQuantizer struct {
	threads int
	scratch [][]float32
	out     []byte
}

func newRowQuantizer(threads int) *rowQuantizer {
	return &rowQuantizer{threads: threads, scratch: make([][]float32, threads)}
}

// chunkFloats bounds the float32 values read per worker per chunk.
const chunkFloats = 1 << 20

// tensor quantizes t to dt and hands the output, a chunk of rows at a time, to emit
// with the fraction of the tensor done.
func (q *rowQuantizer) tensor(ctx context.Context, t *tensor, dt kernels.DType, emit func([]byte, float64) error) error {
	cols, rows := t.cols(), t.nrows()
	rb, err := kernels.RowBytes(dt, cols)
	if err != nil {
		return fmt.Errorf("%w: tensor %q: %w", ErrUnsupported, t.name, err)
	}
	perWorker := max(1, chunkFloats/cols)
	chunk := perWorker * q.threads
	if need := min(chunk, rows) * rb; cap(q.out) < need {
		q.out = make([]byte, need)
	}
	for lo := 0; lo < rows; lo += chunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		hi := min(rows, lo+chunk)
		out := q.out[:(hi-lo)*rb]
		n := hi - lo
		workers := min(q.threads, (n+perWorker-1)/perWorker)
		per := (n + workers - 1) / workers
		errs := make([]error, workers)
		var wg sync.WaitGroup
		for w := range workers {
			a, b := lo+w*per, min(hi, lo+(w+1)*per)
			if a >= b {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[w] = q.rows(w, t, dt, out[(a-lo)*rb:(b-lo)*rb], a, b, cols, rb)
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return err
			}
		}
		if err := emit(out, float64(hi)/float64(rows)); err != nil {
			return err
		}
	}
	return nil
}

// rows quantizes rows [a, b) of t into dst with worker w's scratch.
func (q *rowQuantizer) rows(w int, t *tensor, dt kernels.DType, dst []byte, a, b, cols, rb int) error {
	step := max(1, min(b-a, chunkFloats/cols))
	if cap(q.scratch[w]) < step*cols {
		q.scratch[w] = make([]float32, step*cols)
	}
	for r := a; r < b; r += step {
		n := min(step, b-r)
		f := q.scratch[w][:n*cols]
		if err := t.rows(f, r); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		if err := kernels.Quantize(dst[(r-a)*rb:(r-a+n)*rb], f, dt); err != nil {
			return fmt.Errorf("%w: tensor %q: %w", ErrUnsupported, t.name, err)
		}
	}
	return nil
}
