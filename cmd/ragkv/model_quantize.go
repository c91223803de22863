package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ragkv/ragkv/internal/cliutil"
	"github.com/ragkv/ragkv/model/quantize"
)

// model quantize.
func init() {
	modelCmd.AddCommand(newModelQuantizeCmd())
}

type modelQuantizeResult struct {
	*quantize.Result
	Seconds      float64 `json:"seconds"`
	SecondsPerGB float64 `json:"seconds_per_gb_in"`
}

func newModelQuantizeCmd() *cobra.Command {
	var (
		in, out, typ string
		threads      int
		asJSON       bool
		listTensors  bool
	)
	cmd := &cobra.Command{
		Use:   "quantize",
		Short: "Quantize an f32/f16/bf16 GGUF file or a HuggingFace safetensors directory to GGUF (" + strings.Join(quantize.FileTypeNames(), ", ") + ") with llama.cpp's per-tensor rules",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if in == "" {
				return flagErr("in", "an input GGUF file or HF safetensors directory is required")
			}
			if _, err := os.Stat(in); err != nil {
				return flagErr("in", "%v", err)
			}
			if out == "" {
				return flagErr("out", "an output file is required")
			}
			if st, err := os.Stat(out); err == nil && st.IsDir() {
				return flagErr("out", "%s is a directory", out)
			}
			if _, err := os.Stat(filepath.Dir(out)); err != nil {
				return flagErr("out", "%v", err)
			}
			ft, err := quantize.ParseFileType(typ)
			if err != nil {
				return flagErr("type", "must be one of %s, got %q", strings.Join(quantize.FileTypeNames(), ", "), typ)
			}
			if threads < 0 {
				return flagErr("threads", "must be ≥ 0 (0: all CPUs), got %d", threads)
			}
			var prog *cliutil.Progress
			var last int64
			start := time.Now()
			o := quantize.Options{Type: ft, Threads: threads, Progress: func(done, total int64) {
				if prog == nil {
					prog = cliutil.NewProgress(os.Stderr, "quantize "+ft.String()+" (MiB)", total>>20)
				}
				prog.Add(done>>20 - last)
				last = done >> 20
			}}
			res, err := quantize.Run(cmd.Context(), in, out, o)
			prog.Finish()
			if err != nil {
				return fmt.Errorf("model quantize: %w", err)
			}
			el := time.Since(start).Seconds()
			r := modelQuantizeResult{Result: res, Seconds: el}
			if res.BytesIn > 0 {
				r.SecondsPerGB = el / (float64(res.BytesIn) / 1e9)
			}
			for _, t := range res.Tensors {
				if t.Fallback != "" {
					fmt.Fprintf(os.Stderr, "%s: %s\n", t.Name, t.Fallback)
				}
			}
			for _, w := range res.Warnings {
				fmt.Fprintf(os.Stderr, "warning: %s\n", w)
			}
			if asJSON {
				if !listTensors {
					r.Result.Tensors = nil
				}
				return cliutil.PrintJSON(cmd.OutOrStdout(), r)
			}
			w := cmd.OutOrStdout()
			if listTensors {
				for _, t := range res.Tensors {
					fmt.Fprintf(w, "  %-32s %-5s → %-5s %v\n", t.Name, t.From, t.To, t.Dims)
				}
			}
			var types []string
			for k, n := range res.TypeCounts {
				types = append(types, fmt.Sprintf("%s ×%d", k, n))
			}
			sort.Strings(types)
			fmt.Fprintf(w, "wrote %s (%s, general.file_type %d): %.1f MiB of tensors → %.1f MiB; %s; %d fallbacks; %.1f s\n",
				out, res.Type, res.FileType, float64(res.BytesIn)/(1<<20), float64(res.BytesOut)/(1<<20), strings.Join(types, ", "), res.Fallbacks, el)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&in, "in", "", "input: GGUF file (f32/f16/bf16 weights) or HF directory (config.json, *.safetensors, tokenizer.json)")
	f.StringVar(&out, "out", "", "output GGUF file (written to a temporary file, renamed when complete)")
	f.StringVar(&typ, "type", "", "quantization: "+strings.Join(quantize.FileTypeNames(), ", "))
	f.IntVar(&threads, "threads", 0, "quantizing threads (0: all CPUs)")
	f.BoolVar(&asJSON, "json", false, "print one JSON summary as the last stdout line")
	f.BoolVar(&listTensors, "tensors", false, "list every tensor's type (in the JSON summary too)")
	return cmd
}
