package server

import (
	"context"
	"reflect"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ragkv/ragkv/store"
)

// errorCodes maps sentinel errors of the packages behind the server to gRPC codes. This
// table and toStatus are the only place in ragkv where errors become gRPC statuses: each
// service file adds its packages' sentinels with registerErrorCodes from init.
//
// It is a map, not a list, so that no row can shadow another: toStatus does not take
// the first row that matches but the sentinel nearest the top of the error's chain
// (see codeFor), whatever the order in which rows were registered. An error wrapping
// both retrieval.ErrBusy and the context's DeadlineExceeded (`"%w: %w", ErrBusy,
// ctx.Err()`) is therefore Unavailable, as its first wrapped error says.
var errorCodes = map[error]codes.Code{
	context.Canceled:         codes.Canceled,
	context.DeadlineExceeded: codes.DeadlineExceeded,
	store.ErrNotFound:        codes.NotFound,
	store.ErrInvalid:         codes.InvalidArgument,
	store.ErrCorrupt:         codes.DataLoss,
	store.ErrNoSpace:         codes.ResourceExhausted,
	store.ErrClosed:          codes.Unavailable,
}

// errorCodeConflicts lists sentinels registered twice with different codes (a test
// asserts it stays empty; registration runs in init, where nothing can be returned).
var errorCodeConflicts []error

// registerErrorCodes adds sentinel → code rows, e.g.
//
//	func init() { registerErrorCodes(errRow{chunkcache.ErrNotFound, codes.NotFound}) }
//
// It is called only from init functions of this package (the table is read-only once
// the program runs).
func registerErrorCodes(rows ...errRow) {
	for _, r := range rows {
		if c, ok := errorCodes[r.err]; ok && c != r.code {
			errorCodeConflicts = append(errorCodeConflicts, r.err)
		}
		errorCodes[r.err] = r.code
	}
}

// errRow maps one sentinel error to a gRPC code.
type errRow struct {
	err  error
	code codes.Code
}

// codeFor walks err's tree in pre-order (err itself, then what it wraps, left to right
// for errors wrapping several) and returns the code of the first node that is a
// registered sentinel (or says it Is one).
func codeFor(err error) (codes.Code, bool) {
	if err == nil {
		return codes.OK, false
	}
	if t := reflect.TypeOf(err); t.Comparable() {
		if c, ok := errorCodes[err]; ok {
			return c, true
		}
	}
	if is, ok := err.(interface{ Is(error) bool }); ok {
		for sentinel, c := range errorCodes {
			if is.Is(sentinel) {
				return c, true
			}
		}
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return codeFor(u.Unwrap())
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if c, ok := codeFor(e); ok {
				return c, true
			}
		}
	}
	return codes.OK, false
}

// toStatus converts an error returned by a component into a gRPC status error. The
// message keeps the whole wrapped chain for the codes that describe the request
// (NotFound, InvalidArgument, ...). Errors that already carry a status pass through
// unchanged; unknown errors become Internal, whose message the interceptors replace by
// an opaque id before it reaches the client (interceptors.go).
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	if c, ok := codeFor(err); ok {
		return status.Error(c, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

// invalidArg is for request validation done in the server itself.
func invalidArg(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}
