package main

import (
	"context"
	"strings"

	"github.com/ragkv/ragkv/internal/cpu"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// executeRoot runs the command line in-process with args, after putting every flag of
// the (global) command tree back to its default, so that no test depends on the flags
// an earlier test set.
func executeRoot(args ...string) error {
	resetFlags(rootCmd)
	saved := cpu.Active() // --cpu changes the process-wide kernel path
	defer cpu.Set(saved)
	rootCmd.SetArgs(args)
	defer rootCmd.SetArgs(nil)
	return rootCmd.ExecuteContext(context.Background())
}

func resetFlags(c *cobra.Command) {
	reset := func(f *pflag.Flag) {
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			def := strings.TrimSuffix(strings.TrimPrefix(f.DefValue, "["), "]")
			var vals []string
			if def != "" {
				vals = strings.Split(def, ",")
			}
			_ = sv.Replace(vals)
		} else {
			_ = f.Value.Set(f.DefValue)
		}
		f.Changed = false
	}
	c.Flags().VisitAll(reset)
	c.PersistentFlags().VisitAll(reset)
	for _, sub := range c.Commands() {
		resetFlags(sub)
	}
}
