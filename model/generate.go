package model

import (
	"context"
	"fmt"
	"io"
	"time"
)

// GenerateOptions tunes Generate.
type GenerateOptions struct {
	// Steps counts positions including the prompt (run.c's -n); ≤ 0 or beyond the
	// context: the context length.
	Steps int
	// Sampler picks tokens (nil: greedy).
	Sampler *Sampler
	// StopAtEOS also stops at the EOS token (run.c stops only at BOS).
	StopAtEOS bool
	// Tokens, when not nil, is the prompt as token ids (the prompt text is then
	// ignored): for prompts tokenized in parts, as a fused prefill renders them.
	Tokens []int
}

// GenerateStats reports a generation.
type GenerateStats struct {
	PromptTokens    int
	GeneratedTokens int
	Tokens          []int // prompt (with BOS) and generated tokens
	PrefillTime     time.Duration
	DecodeTime      time.Duration
}

// Generate reproduces llama2.c's run.c generate loop, writing to w: the prompt (encoded
// with BOS) is printed piece by piece, then sampled tokens, until Steps positions or a
// BOS token; pieces that are a single unprintable byte are skipped (SentencePiece
// tokenizers, as run.c does), a leading space
// after BOS is dropped, and a final newline is printed. The prompt is prefilled as one
// batch.
func (m *Model) Generate(ctx context.Context, w io.Writer, prompt string, o GenerateOptions) (*GenerateStats, error) {
	toks := o.Tokens
	if toks == nil {
		toks = m.Tok.Encode(prompt, true, false)
	}
	if len(toks) < 1 {
		return nil, fmt.Errorf("%w: empty prompt and no BOS token", ErrInvalid)
	}
	steps := o.Steps
	if steps <= 0 || steps > m.Config.Ctx {
		steps = m.Config.Ctx
	}
	smp := o.Sampler
	if smp == nil {
		smp = NewSampler(0, 0, 1)
	}
	st := &GenerateStats{PromptTokens: len(toks), Tokens: append([]int(nil), toks...)}
	bos, eos := m.Tok.BOS(), m.Tok.EOS()
	// run.c's safe_printf drops single-byte pieces that are neither printable nor space
	// (byte-fallback tokens); byte-level BPE pieces are raw UTF-8 fragments and all print.
	filter := m.Tok.Kind() == "spm"
	emit := func(prev, next int) error {
		p := m.Tok.Piece(prev, next)
		if len(p) == 0 || (filter && len(p) == 1 && !(isPrint(p[0]) || isSpace(p[0]))) {
			return nil
		}
		_, err := w.Write(p)
		return err
	}
	// Prompt pieces (run.c prints them as it forwards the prompt).
	np := min(len(toks)-1, steps)
	for i := 0; i < np; i++ {
		if err := emit(toks[i], toks[i+1]); err != nil {
			return st, err
		}
	}
	if steps >= len(toks) {
		state := m.NewState(nil, steps)
		t0 := time.Now()
		logits, err := state.Feed(ctx, toks...)
		if err != nil {
			return st, err
		}
		st.PrefillTime = time.Since(t0)
		t0 = time.Now()
		token := toks[len(toks)-1]
		for pos := len(toks); ; pos++ {
			next := smp.Sample(logits)
			if next == bos || (o.StopAtEOS && next == eos) {
				break
			}
			st.Tokens = append(st.Tokens, next)
			st.GeneratedTokens++
			if err := emit(token, next); err != nil {
				return st, err
			}
			token = next
			if pos >= steps {
				break
			}
			if logits, err = state.Feed(ctx, token); err != nil {
				return st, err
			}
		}
		st.DecodeTime = time.Since(t0)
	}
	_, err := io.WriteString(w, "\n")
	return st, err
}

func isPrint(b byte) bool { return b >= 0x20 && b < 0x7f }
func isSpace(b byte) bool { return b == ' ' || (b >= '\t' && b <= '\r') }
