package main

import (
	"bytes"
	"io"

	"github.com/spf13/pflag"
)

type pflagFlag = pflag.Flag

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
