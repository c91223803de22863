package main

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ragkv/ragkv/server"
)

// dialServer opens a client connection to a ragkv server (plaintext, with the server's
// message size limit). Every client subcommand goes through it; a bad address is an
// error naming --addr.
func dialServer(addr string) (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(server.DefaultMaxRecvMsgBytes), grpc.MaxCallSendMsgSize(server.DefaultMaxRecvMsgBytes)))
	if err != nil {
		return nil, flagErr("addr", "%v", err)
	}
	return conn, nil
}
