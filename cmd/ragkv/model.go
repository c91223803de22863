package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ragkv/ragkv/internal/cliutil"
	"github.com/ragkv/ragkv/internal/kernels"
	"github.com/ragkv/ragkv/model"
	"github.com/ragkv/ragkv/model/encoder"
	"github.com/ragkv/ragkv/model/gguf"
)

// model inspect / model synth.
func init() {
	modelCmd.AddCommand(newModelInspectCmd(), newModelSynthCmd())
}

type modelInspectTensor struct {
	Name  string   `json:"name"`
	Type  string   `json:"type"`
	Dims  []uint64 `json:"dims"`
	Bytes uint64   `json:"bytes"`
}

type modelInspectResult struct {
	Path       string               `json:"path"`
	Format     string               `json:"format"`
	Config     *model.Config        `json:"config,omitempty"`
	Encoder    *encoder.Config      `json:"encoder,omitempty"` // BERT-family encoders (architecture bert)
	WeightType string               `json:"weight_type,omitempty"`
	Tokenizer  string               `json:"tokenizer,omitempty"`
	VocabSize  int                  `json:"vocab_size,omitempty"`
	Metadata   map[string]any       `json:"metadata,omitempty"`
	Tensors    []modelInspectTensor `json:"tensors,omitempty"`
	TensorData uint64               `json:"tensor_bytes,omitempty"`
	LoadError  string               `json:"load_error,omitempty"`
}

func newModelInspectCmd() *cobra.Command {
	var asJSON, showTensors bool
	cmd := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Show a model file's architecture, metadata and tensors",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			if _, err := os.Stat(path); err != nil {
				return usageError{fmt.Errorf("model file: %w", err)}
			}
			res := modelInspectResult{Path: path}
			if gguf.HasMagic(path) {
				res.Format = "gguf"
				f, err := gguf.Open(path)
				if err != nil {
					return err
				}
				res.Metadata = map[string]any{}
				for _, kv := range f.KVs {
					res.Metadata[kv.Key] = ggufValueSummary(kv.Value)
				}
				for _, t := range f.Tensors {
					sz, _ := t.Size()
					res.TensorData += sz
					if showTensors || asJSON {
						res.Tensors = append(res.Tensors, modelInspectTensor{t.Name, t.Type.String(), t.Dims, sz})
					}
				}
				f.Close()
			}
			if res.Metadata["general.architecture"] == "bert" {
				b, err := encoder.Open(path, encoder.Options{Threads: 1})
				if err != nil {
					res.LoadError = err.Error()
				} else {
					res.Encoder = &b.Config
					res.Tokenizer = b.Tok.Kind()
					res.VocabSize = b.Tok.VocabSize()
					b.Close()
				}
				if asJSON {
					return cliutil.PrintJSON(cmd.OutOrStdout(), res)
				}
				printModelInspect(cmd.OutOrStdout(), res)
				return nil
			}
			m, err := model.Open(path, model.Options{Threads: 1})
			if err != nil {
				if res.Format == "" {
					return err
				}
				res.LoadError = err.Error()
			} else {
				res.Format = m.Format
				res.Config = &m.Config
				res.WeightType = m.WeightType.String()
				res.Tokenizer = m.Tok.Kind()
				res.VocabSize = m.Tok.VocabSize()
				m.Close()
			}
			if asJSON {
				return cliutil.PrintJSON(cmd.OutOrStdout(), res)
			}
			printModelInspect(cmd.OutOrStdout(), res)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	cmd.Flags().BoolVar(&showTensors, "tensors", false, "list tensors")
	return cmd
}

// ggufValueSummary shortens long arrays for display.
func ggufValueSummary(v gguf.Value) any {
	a, ok := v.V.(gguf.Array)
	if !ok {
		return v.V
	}
	if n := a.Len(); n > 8 {
		return fmt.Sprintf("[%d × %s]", n, a.Elem)
	}
	return a.V
}

func printModelInspect(w io.Writer, r modelInspectResult) {
	fmt.Fprintf(w, "file:    %s (%s)\n", r.Path, r.Format)
	if c := r.Config; c != nil {
		fmt.Fprintf(w, "arch:    %s  dim %d  hidden %d  layers %d  heads %d/%d (kv)  head_dim %d  vocab %d  ctx %d\n",
			c.Arch, c.Dim, c.Hidden, c.Layers, c.Heads, c.KVHeads, c.HeadDim, c.Vocab, c.Ctx)
		fmt.Fprintf(w, "rope:    %s, theta %g   norm eps %g   qkv bias %v   tied %v\n", c.Rope, c.RopeTheta, c.NormEps, c.QKVBias, c.Tied)
		fmt.Fprintf(w, "weights: %s   tokenizer: %s (%d tokens)\n", r.WeightType, r.Tokenizer, r.VocabSize)
	}
	if c := r.Encoder; c != nil {
		fmt.Fprintf(w, "encoder: bert  dim %d  hidden %d  layers %d  heads %d  vocab %d  positions %d  token types %d  norm eps %g  pooling %s\n",
			c.Dim, c.Hidden, c.Layers, c.Heads, c.Vocab, c.MaxPos, c.TypeVocab, c.NormEps, c.Pooling)
		fmt.Fprintf(w, "         tokenizer: %s (%d tokens)\n", r.Tokenizer, r.VocabSize)
	}
	if r.LoadError != "" {
		fmt.Fprintf(w, "load:    %s\n", r.LoadError)
	}
	if len(r.Metadata) > 0 {
		keys := make([]string, 0, len(r.Metadata))
		for k := range r.Metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintln(w, "metadata:")
		for _, k := range keys {
			fmt.Fprintf(w, "  %-45s %v\n", k, r.Metadata[k])
		}
	}
	for _, t := range r.Tensors {
		fmt.Fprintf(w, "  %-32s %-5s %v\n", t.Name, t.Type, t.Dims)
	}
	if r.TensorData > 0 {
		fmt.Fprintf(w, "tensor data: %.1f MiB\n", float64(r.TensorData)/(1<<20))
	}
}

func newModelSynthCmd() *cobra.Command {
	var (
		shape, dtype, out string
		seed              uint64
		layers, ctxLen    int
	)
	cmd := &cobra.Command{
		Use: "synth",
		Short: "Write a GGUF file with random weights of a real model's shape (" + strings.Join(model.ShapeNames(), ", ") +
			"; encoders: " + strings.Join(encoder.ShapeNames(), ", ") + ")",
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, isEncoder := encoder.Shapes[shape]
			if _, ok := model.Shapes[shape]; !ok && !isEncoder {
				return flagErr("shape", "unknown shape %q (known: %s; encoders: %s)", shape, strings.Join(model.ShapeNames(), ", "),
					strings.Join(encoder.ShapeNames(), ", "))
			}
			t, err := kernels.ParseDType(dtype)
			if err != nil || (t != kernels.F32 && t != kernels.F16 && t != kernels.Q8_0 && t != kernels.BF16) {
				return flagErr("dtype", "must be f32, f16, bf16 or q8_0, got %q", dtype)
			}
			if layers < 0 {
				return flagErr("layers", "must be ≥ 0 (0: the shape's own), got %d", layers)
			}
			if ctxLen < 0 {
				return flagErr("ctx", "must be ≥ 0 (0: the shape's own), got %d", ctxLen)
			}
			if out == "" {
				return flagErr("out", "an output file is required")
			}
			if isEncoder && (layers != 0 || ctxLen != 0) {
				return flagErr("layers", "--layers and --ctx do not apply to encoder shapes")
			}
			f, err := os.Create(out)
			if err != nil {
				return flagErr("out", "%v", err)
			}
			if isEncoder {
				err := encoder.SynthGGUF(cmd.Context(), f, encoder.SynthOptions{Shape: shape, DType: t, Seed: seed})
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					os.Remove(out)
				}
				return err
			}
			prog := cliutil.NewProgress(os.Stderr, "synth "+shape, 0)
			var last int64
			o := model.SynthOptions{Shape: shape, DType: t, Seed: seed, Layers: layers, Ctx: ctxLen,
				Progress: func(done, total int64) {
					prog.Add((done - last) >> 20)
					last = done &^ (1<<20 - 1)
				}}
			err = model.SynthGGUF(cmd.Context(), f, o)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			prog.Finish()
			if err != nil {
				os.Remove(out)
				return err
			}
			fi, _ := os.Stat(out)
			fmt.Fprintf(os.Stderr, "wrote %s (%.1f MiB)\n", out, float64(fi.Size())/(1<<20))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&shape, "shape", "smollm-135m", "model shape")
	f.StringVar(&dtype, "dtype", "f32", "weight type: f32, f16, bf16, q8_0")
	f.Uint64Var(&seed, "seed", 1, "random seed")
	f.IntVar(&layers, "layers", 0, "override the number of layers (0: the shape's)")
	f.IntVar(&ctxLen, "ctx", 0, "override the declared context length (0: the shape's)")
	f.StringVar(&out, "out", "", "output GGUF file")
	return cmd
}
