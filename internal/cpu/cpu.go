// Package cpu owns the choice of kernel path: which set of SIMD kernels ragkv's numeric
// code (internal/kernels, the engine's vector math, the ANN scan) runs on this CPU. As in
// ggml's CPU backend there is one dispatch per feature set, and each SIMD kernel has a
// reference (pure Go) kernel beside it:
//
//	generic  pure Go, every platform (also the only path with the purego build tag)
//	avx2     amd64 with AVX2, FMA and F16C (Haswell, Zen 1–3 and later)
//	avx512   amd64 with AVX-512 F/BW/DQ/VL (+ VNNI for the int8 kernels), F16C and FMA
//	neon     arm64 Advanced SIMD (every arm64 CPU), with SDOT where the CPU has dotprod
//
// The best path the CPU supports is chosen at start-up; RAGKV_CPU=<path> (read once, at
// start) or Set choose another one that the CPU can run, so that on an AVX-512 machine the
// AVX2 and generic kernels can be run and compared too. Paths are ordered: a faster path
// may fall back to a slower one's kernel for an operation it has no kernel of its own for
// (avx512 uses the avx2 kernels where AVX-512 lacks one, e.g. int8 products without VNNI).
//
// The hot-path queries (HasAVX512, HasAVX2, HasNEON, ...) are plain loads of package variables.
// Set must not run concurrently with kernel calls: it is meant for start-up (flags,
// environment) and for tests, which switch paths between calls.
package cpu

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/klauspost/cpuid/v2"
)

// Path is a kernel path (see the package doc).
type Path uint8

const (
	Generic Path = iota
	AVX2
	AVX512
	NEON
)

var names = [...]string{Generic: "generic", AVX2: "avx2", AVX512: "avx512", NEON: "neon"}

func (p Path) String() string {
	if int(p) < len(names) {
		return names[p]
	}
	return fmt.Sprintf("Path(%d)", p)
}

// ErrUnsupported is returned (wrapped, naming the missing CPU features) for a path this
// CPU or build cannot run.
var ErrUnsupported = errors.New("kernel path not supported here")

// ErrUnknown is returned (wrapped) by Parse for a name that is no path.
var ErrUnknown = errors.New("unknown kernel path")

// Parse returns the path named s (generic, avx2, avx512, neon; case-insensitive).
func Parse(s string) (Path, error) {
	for i, n := range names {
		if strings.EqualFold(strings.TrimSpace(s), n) {
			return Path(i), nil
		}
	}
	return 0, fmt.Errorf("%w %q (want one of %s)", ErrUnknown, s, strings.Join(names[:], ", "))
}

// feature is one CPU feature a path needs.
type feature struct {
	name string
	has  bool
}

// detected CPU features (what the hardware and OS offer, whatever the build).
var (
	x86VNNI512 = cpuid.CPU.Supports(cpuid.AVX512VNNI)
	armDotProd = cpuid.CPU.Supports(cpuid.ASIMDDP)
)

// needs lists the features path p needs, with whether this CPU has them.
func needs(p Path) []feature {
	switch p {
	case AVX2:
		return []feature{
			{"amd64", runtime.GOARCH == "amd64"}, {"assembly (not the purego build)", asmBuild},
			{"avx2", cpuid.CPU.Supports(cpuid.AVX2)}, {"fma", cpuid.CPU.Supports(cpuid.FMA3)},
			{"f16c", cpuid.CPU.Supports(cpuid.F16C)},
		}
	case AVX512:
		return []feature{
			{"amd64", runtime.GOARCH == "amd64"}, {"assembly (not the purego build)", asmBuild},
			{"avx512f", cpuid.CPU.Supports(cpuid.AVX512F)}, {"avx512bw", cpuid.CPU.Supports(cpuid.AVX512BW)},
			{"avx512dq", cpuid.CPU.Supports(cpuid.AVX512DQ)}, {"avx512vl", cpuid.CPU.Supports(cpuid.AVX512VL)},
			{"avx2", cpuid.CPU.Supports(cpuid.AVX2)}, {"fma", cpuid.CPU.Supports(cpuid.FMA3)},
			{"f16c", cpuid.CPU.Supports(cpuid.F16C)},
		}
	case NEON:
		return []feature{{"arm64", runtime.GOARCH == "arm64"}, {"assembly (not the purego build)", asmBuild}}
	}
	return nil
}

// Missing returns the features path p needs that this CPU or build lacks (none: p runs).
func Missing(p Path) []string {
	var out []string
	for _, f := range needs(p) {
		if !f.has {
			out = append(out, f.name)
		}
	}
	return out
}

// Supports reports whether this CPU and build can run path p.
func Supports(p Path) bool { return int(p) < len(names) && len(Missing(p)) == 0 }

// Available lists the paths this CPU can run, best first (Generic is always last).
func Available() []Path {
	var out []Path
	for _, p := range []Path{AVX512, AVX2, NEON} {
		if Supports(p) {
			out = append(out, p)
		}
	}
	return append(out, Generic)
}

// Best is the fastest path this CPU can run.
func Best() Path { return Available()[0] }

// Features lists the detected CPU features that matter to the kernels.
func Features() []string {
	var out []string
	for _, f := range []struct {
		name string
		id   cpuid.FeatureID
	}{
		{"avx2", cpuid.AVX2}, {"fma", cpuid.FMA3}, {"f16c", cpuid.F16C}, {"avx512f", cpuid.AVX512F},
		{"avx512bw", cpuid.AVX512BW}, {"avx512vl", cpuid.AVX512VL}, {"avx512vnni", cpuid.AVX512VNNI},
		{"avxvnni", cpuid.AVXVNNI}, {"asimd", cpuid.ASIMD}, {"asimddp", cpuid.ASIMDDP},
	} {
		if cpuid.CPU.Supports(f.id) {
			out = append(out, f.name)
		}
	}
	return out
}

// state is what the hot-path queries read; Set rewrites all of it at once.
var state struct {
	path                  Path
	avx512, vnni512, avx2 bool
	neon, dotprod         bool
	dotprodOff, vnniOff   bool // test knobs: run the fallbacks of a path's sub-features
	envErr                error
}

func init() {
	p := Best()
	if s, ok := os.LookupEnv("RAGKV_CPU"); ok && s != "" {
		q, err := Parse(s)
		if err == nil && !Supports(q) {
			err = unsupported(q)
		}
		if err != nil {
			state.envErr = fmt.Errorf("RAGKV_CPU=%s: %w", s, err)
		} else {
			p = q
		}
	}
	apply(p)
}

func unsupported(p Path) error {
	return fmt.Errorf("%w: %s needs %s", ErrUnsupported, p, strings.Join(Missing(p), ", "))
}

// EnvError is the problem with RAGKV_CPU if it named an unknown path or one this CPU
// cannot run (the best path is active then); nil otherwise. Commands report it.
func EnvError() error { return state.envErr }

// Active is the path the kernels run now.
func Active() Path { return state.path }

// Set makes p the active path. It returns ErrUnsupported (wrapped, naming the missing
// features) if this CPU cannot run p, and changes nothing then. Not safe concurrently with
// kernel calls (see the package doc).
func Set(p Path) error {
	if !Supports(p) {
		if int(p) >= len(names) {
			return fmt.Errorf("%w: %v", ErrUnknown, p)
		}
		return unsupported(p)
	}
	apply(p)
	return nil
}

func apply(p Path) {
	state.path = p
	state.avx512 = p == AVX512
	state.vnni512 = p == AVX512 && x86VNNI512 && !state.vnniOff
	state.avx2 = p == AVX2 || p == AVX512
	state.neon = p == NEON
	state.dotprod = p == NEON && armDotProd && !state.dotprodOff
}

// SetSubFeatures switches a path's optional sub-features off (for tests: the AVX-512
// int8 kernels without VNNI, NEON without SDOT) or back on, where the CPU has them, and
// returns the previous setting. Not safe concurrently with kernel calls.
func SetSubFeatures(vnni, dotprod bool) (prevVNNI, prevDotProd bool) {
	prevVNNI, prevDotProd = !state.vnniOff, !state.dotprodOff
	state.vnniOff, state.dotprodOff = !vnni, !dotprod
	apply(state.path)
	return prevVNNI, prevDotProd
}

// HasAVX512 reports whether the AVX-512 float kernels are active.
func HasAVX512() bool { return state.avx512 }

// HasVNNI512 reports whether the AVX-512 VNNI int8 kernels are active.
func HasVNNI512() bool { return state.vnni512 }

// HasAVX2 reports whether the AVX2+FMA+F16C kernels are active (on the avx2 path, and on the
// avx512 path for what it has no AVX-512 kernel of its own for).
func HasAVX2() bool { return state.avx2 }

// HasNEON reports whether the arm64 Advanced SIMD kernels are active.
func HasNEON() bool { return state.neon }

// HasDotProd reports whether the arm64 SDOT kernels are active.
func HasDotProd() bool { return state.dotprod }

// Describe is a one-line description of the active path for benchmark reports, e.g.
// "avx2 (cpu: avx2 fma f16c avx512f ...)".
func Describe() string {
	return fmt.Sprintf("%s (cpu: %s)", state.path, strings.Join(Features(), " "))
}
