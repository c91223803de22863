// Command ragkv is the single ragkv binary: `ragkv serve` runs the service; the other
// subcommands are its gRPC clients (cache, prefill, generate, ingest, query, tools), batch
// jobs (precompute), model tools (generate, model inspect|synth) and the eval and bench
// harnesses. Every eval and bench subcommand accepts --json and then prints exactly one
// JSON object as its last stdout line.
//
// Each feature lives in its own file and attaches its commands to the parent commands
// declared here from an init function.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ragkv/ragkv/internal/cpu"
)

var (
	rootCmd = &cobra.Command{
		Use:           "ragkv",
		Short:         "ragkv: chunk KV caches, fused prefill and retrieval for RAG",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	benchCmd = &cobra.Command{Use: "bench", Short: "Benchmarks (each accepts --json)"}
	evalCmd  = &cobra.Command{Use: "eval", Short: "Quality evaluations (each accepts --json)"}
	cacheCmd = &cobra.Command{Use: "cache", Short: "Chunk-cache client commands (talk to a running server)"}
	modelCmd = &cobra.Command{Use: "model", Short: "Model files: inspect, synthesize"}
)

// cpuFlag is the global --cpu flag: the kernel path (see internal/cpu) every command runs.
var cpuFlag string

func init() {
	rootCmd.AddCommand(benchCmd, evalCmd, cacheCmd, modelCmd)
	rootCmd.PersistentFlags().StringVar(&cpuFlag, "cpu", "",
		"kernel path: avx512, avx2, neon or generic (default: RAGKV_CPU, else the best this CPU runs)")
	rootCmd.PersistentPreRunE = func(*cobra.Command, []string) error { return applyCPUPath() }
}

// applyCPUPath selects the kernel path from --cpu, or reports a RAGKV_CPU that named a path
// this CPU cannot run.
func applyCPUPath() error {
	if cpuFlag == "" {
		if err := cpu.EnvError(); err != nil {
			return usageError{err}
		}
		return nil
	}
	p, err := cpu.Parse(cpuFlag)
	if err != nil {
		return flagErr("cpu", "%v", err)
	}
	if err := cpu.Set(p); err != nil {
		return flagErr("cpu", "%v", err)
	}
	return nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := rootCmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "ragkv:", err)
		code := 1
		var ue usageError
		if errors.As(err, &ue) {
			code = 2
		}
		stop()
		os.Exit(code)
	}
}

// usageError marks an error in the command line (a bad flag value, a missing file) so
// that main exits with status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// flagErr reports a bad value for a named flag.
func flagErr(flag string, format string, args ...any) error {
	return usageError{fmt.Errorf("--%s: %s", flag, fmt.Sprintf(format, args...))}
}
