package server

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// errorCodes maps sentinel errors of the packages behind the server to gRPC codes. This
// table and toStatus are the only place in ragkv where errors become gRPC statuses: each
// service file adds its packages' sentinels here.
var errorCodes = []errRow{
	{context.Canceled, codes.Canceled},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
	// Per-package sentinels are appended by the service files' init functions through
	// registerErrorCodes, so that this file needs no import of every package.
}

// registerErrorCodes adds sentinel → code rows, e.g.
//
//	func init() { registerErrorCodes(errRow{chunkcache.ErrNotFound, codes.NotFound}) }
//
// It is called only from init functions of this
// package (the table is read-only once the program runs).
func registerErrorCodes(rows ...errRow) {
	errorCodes = append(errorCodes, rows...)
}

// errRow maps one sentinel error (matched with errors.Is) to a gRPC code.
type errRow struct {
	err  error
	code codes.Code
}

// toStatus converts an error returned by a component into a gRPC status error. The
// message keeps the whole wrapped chain, so the client sees exactly what was wrong.
// Errors that already carry a status pass through unchanged; unknown errors become
// Internal.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	for _, row := range errorCodes {
		if errors.Is(err, row.err) {
			return status.Error(row.code, err.Error())
		}
	}
	return status.Error(codes.Internal, err.Error())
}

// invalidArg is for request validation done in the server itself.
func invalidArg(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}
