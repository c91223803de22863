package cpu

import (
	"errors"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, p := range []Path{Generic, AVX2, AVX512, NEON} {
		q, err := Parse(p.String())
		if err != nil || q != p {
			t.Fatalf("Parse(%q) = %v, %v", p.String(), q, err)
		}
	}
	if q, err := Parse(" AVX2 "); err != nil || q != AVX2 {
		t.Fatalf("Parse is not case-insensitive: %v %v", q, err)
	}
	if _, err := Parse("sse2"); !errors.Is(err, ErrUnknown) {
		t.Fatalf("Parse(sse2) = %v, want ErrUnknown", err)
	}
}

func TestSetAndRestore(t *testing.T) {
	t.Logf("best %v, available %v, features %v", Best(), Available(), Features())
	saved := Active()
	defer func() {
		if err := Set(saved); err != nil {
			t.Fatal(err)
		}
	}()
	av := Available()
	if av[len(av)-1] != Generic {
		t.Fatalf("Available() = %v: generic must be last", av)
	}
	for _, p := range []Path{Generic, AVX2, AVX512, NEON} {
		err := Set(p)
		if !slices.Contains(av, p) {
			if !errors.Is(err, ErrUnsupported) {
				t.Fatalf("Set(%v) on a CPU without it = %v, want ErrUnsupported", p, err)
			}
			if len(Missing(p)) == 0 || !strings.Contains(err.Error(), Missing(p)[0]) {
				t.Fatalf("Set(%v) error %q does not name the missing features %v", p, err, Missing(p))
			}
			continue
		}
		if err != nil {
			t.Fatalf("Set(%v): %v", p, err)
		}
		if Active() != p {
			t.Fatalf("Active() = %v after Set(%v)", Active(), p)
		}
		if HasAVX2() != (p == AVX2 || p == AVX512) || HasAVX512() != (p == AVX512) || HasNEON() != (p == NEON) {
			t.Fatalf("%v: flags avx2=%v avx512=%v neon=%v", p, HasAVX2(), HasAVX512(), HasNEON())
		}
		if HasVNNI512() && p != AVX512 || HasDotProd() && p != NEON {
			t.Fatalf("%v: sub-features of another path on", p)
		}
	}
	if err := Set(Path(200)); !errors.Is(err, ErrUnknown) {
		t.Fatalf("Set(200) = %v", err)
	}
}

func TestSubFeatures(t *testing.T) {
	saved := Active()
	defer Set(saved)
	if !Supports(AVX512) {
		t.Skipf("no AVX-512 here (missing: %s)", strings.Join(Missing(AVX512), ", "))
	}
	Set(AVX512)
	had := HasVNNI512()
	v, d := SetSubFeatures(false, true)
	if HasVNNI512() {
		t.Fatal("VNNI512 still on after switching it off")
	}
	SetSubFeatures(v, d)
	if HasVNNI512() != had {
		t.Fatal("VNNI512 not restored")
	}
}

// TestDetectedFeatures checks feature detection against what the test's runner says the
// CPU has: RAGKV_TEST_CPU_HAS and RAGKV_TEST_CPU_LACKS list feature names (comma-separated)
// that Features must and must not contain (make test-arm64 sets them for the CPUs it asks
// qemu to emulate). It also checks that an arm64 CPU runs the neon path by default and that
// the dotprod kernels are on exactly where the CPU has asimddp.
func TestDetectedFeatures(t *testing.T) {
	feats := Features()
	t.Logf("features %v, best %v", feats, Best())
	for _, env := range []struct {
		name string
		want bool
	}{{"RAGKV_TEST_CPU_HAS", true}, {"RAGKV_TEST_CPU_LACKS", false}} {
		for _, f := range strings.Split(os.Getenv(env.name), ",") {
			if f = strings.TrimSpace(f); f != "" && slices.Contains(feats, f) != env.want {
				t.Errorf("%s=%s: Features() = %v", env.name, f, feats)
			}
		}
	}
	if runtime.GOARCH != "arm64" || !Supports(NEON) {
		return
	}
	if Best() != NEON || !slices.Contains(feats, "asimd") {
		t.Fatalf("arm64: best path %v, features %v; want neon with asimd", Best(), feats)
	}
	saved := Active()
	defer Set(saved)
	if err := Set(NEON); err != nil {
		t.Fatal(err)
	}
	if !HasNEON() || HasDotProd() != slices.Contains(feats, "asimddp") {
		t.Fatalf("neon path: HasNEON %v, HasDotProd %v with features %v", HasNEON(), HasDotProd(), feats)
	}
	v, d := SetSubFeatures(true, false)
	if HasDotProd() {
		t.Fatal("dotprod still on after switching it off")
	}
	SetSubFeatures(v, d)
}
