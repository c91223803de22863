package main

import (
	"os"
	"testing"
)

// cliEnv makes the test binary run as the ragkv binary: tests that need separate
// `ragkv serve` processes (killed with SIGKILL, restarted) start os.Args[0] with it.
const cliEnv = "RAGKV_TEST_RUN_CLI"

func TestMain(m *testing.M) {
	if os.Getenv(cliEnv) == "1" {
		os.Args = append([]string{"ragkv"}, os.Args[1:]...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}
