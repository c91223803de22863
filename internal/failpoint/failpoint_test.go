package failpoint

import (
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestUnarmedPointDoesNothing(t *testing.T) {
	p := New("test/unarmed", "")
	for range 3 {
		if err := p.Inject(); err != nil {
			t.Fatal(err)
		}
	}
	if p.Hits() != 0 {
		t.Fatalf("unarmed point counted %d hits", p.Hits())
	}
}

func TestErrorActionAndHitCounts(t *testing.T) {
	defer Reset()
	p := New("test/error", "")
	cases := []struct {
		spec string
		want []bool // fires on hit 1..5
	}{
		{"error", []bool{true, true, true, true, true}},
		{"error@3", []bool{false, false, true, false, false}},
		{"error@2+", []bool{false, true, true, true, true}},
		{"off", []bool{false, false, false, false, false}},
	}
	for _, c := range cases {
		if err := Enable("test/error", c.spec); err != nil {
			t.Fatal(err)
		}
		for i, want := range c.want {
			err := p.Inject()
			if got := errors.Is(err, ErrInjected); got != want {
				t.Fatalf("%s: hit %d fired %v, want %v (%v)", c.spec, i+1, got, want, err)
			}
		}
	}
}

func TestEnableBeforeDeclareAndFunc(t *testing.T) {
	defer Reset()
	if err := Enable("test/later", "error"); err != nil {
		t.Fatal(err)
	}
	if err := New("test/later", "declared after Enable").Inject(); !errors.Is(err, ErrInjected) {
		t.Fatalf("point declared after Enable: %v", err)
	}
	mine := errors.New("mine")
	EnableFunc("test/later", func() error { return mine })
	if err := New("test/later", "").Inject(); err != mine {
		t.Fatalf("func action: %v", err)
	}
	Disable("test/later")
	if err := New("test/later", "").Inject(); err != nil {
		t.Fatalf("disabled: %v", err)
	}
	if got := Names("test/later"); len(got) != 1 || Doc("test/later") != "declared after Enable" {
		t.Fatalf("names %v doc %q", got, Doc("test/later"))
	}
}

func TestSleepAction(t *testing.T) {
	defer Reset()
	p := New("test/sleep", "")
	if err := Enable("test/sleep", "sleep(30ms)"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if err := p.Inject(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d < 30*time.Millisecond {
		t.Fatalf("slept %v", d)
	}
}

func TestBadSpecs(t *testing.T) {
	for _, s := range []string{"", "boom", "exit(x)", "exit(300)", "sleep(abc)", "error@0", "error@x", "error(1)", "exit(1"} {
		if err := Enable("test/bad", s); err == nil {
			t.Errorf("%q: no error", s)
		}
	}
	if err := parseEnv("a=error;b"); err == nil {
		t.Error("env item without '=': no error")
	}
	Reset()
}

// TestExitActionFromEnv re-runs this test binary with RAGKV_FAILPOINTS: the child exits
// with the requested status at the second hit, after printing the first.
func TestExitActionFromEnv(t *testing.T) {
	if os.Getenv("FAILPOINT_CHILD") == "1" {
		p := New("test/exit", "")
		for i := 1; i <= 3; i++ {
			p.Hit()
			os.Stdout.WriteString("after hit\n")
		}
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestExitActionFromEnv$")
	cmd.Env = append(os.Environ(), "FAILPOINT_CHILD=1", EnvVar+"=test/exit=exit(42)@2")
	out, err := cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 42 {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if string(out) != "after hit\n" {
		t.Fatalf("child printed %q, want one line before the exit", out)
	}
}

func BenchmarkUnarmed(b *testing.B) {
	p := New("bench/unarmed", "")
	for b.Loop() {
		_ = p.Inject()
	}
}
