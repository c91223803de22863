package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"runtime/debug"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// guard is the outermost interceptor after the metrics one: it recovers a panic in any
// inner interceptor or handler (the server keeps running; the RPC fails Internal), maps
// errors that are not statuses yet through toStatus, and replaces the message of
// Internal and Unknown statuses by an opaque id, logging the detail (paths, Badger
// messages, stack) with that id only in the server log.
type guard struct {
	log *slog.Logger
}

func (g guard) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if p := recover(); p != nil {
			resp, err = nil, g.panicked(info.FullMethod, p)
		}
		err = g.finish(info.FullMethod, err)
	}()
	return h(ctx, req)
}

func (g guard) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = g.panicked(info.FullMethod, p)
		}
		err = g.finish(info.FullMethod, err)
	}()
	return h(srv, ss)
}

// panicked logs a recovered panic with its stack and returns the opaque Internal error.
func (g guard) panicked(method string, p any) error {
	id := errorID()
	g.log.Error("rpc panicked", "method", method, "error_id", id, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
	return opaqueInternal(id)
}

// finish maps err to a status and hides the detail of Internal and Unknown ones.
func (g guard) finish(method string, err error) error {
	if err == nil {
		return nil
	}
	err = toStatus(err)
	st := status.Convert(err)
	switch st.Code() {
	case codes.Internal, codes.Unknown:
	default:
		return err
	}
	if isOpaque(st) {
		return err // already hidden (a panic recovered here)
	}
	id := errorID()
	g.log.Error("rpc failed", "method", method, "error_id", id, "code", st.Code().String(), "err", st.Message())
	return opaqueInternal(id)
}

const opaquePrefix = "internal error; the server log has the detail under error_id="

func opaqueInternal(id string) error {
	return status.Error(codes.Internal, opaquePrefix+id)
}

func isOpaque(st *status.Status) bool {
	m := st.Message()
	return st.Code() == codes.Internal && len(m) > len(opaquePrefix) && m[:len(opaquePrefix)] == opaquePrefix
}

// errorID is a random 16-hex-digit id that links a client's error to the log line.
func errorID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// WithInterceptors appends interceptors that run inside the metrics and guard ones (so
// their panics are recovered and their errors mapped), in option order: the trust
// boundary (auth, limits) attaches itself this way. Either may be nil.
func WithInterceptors(unary grpc.UnaryServerInterceptor, stream grpc.StreamServerInterceptor) Option {
	return optionFunc(func(o *options) {
		if unary != nil {
			o.unary = append(o.unary, unary)
		}
		if stream != nil {
			o.stream = append(o.stream, stream)
		}
	})
}
