package main

import (
	"context"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ragkv/ragkv/server"
)

// clientTrust holds the client flags of every command that talks to a server:
// --tls-ca, --tls-server-name, --tls-client-cert, --tls-client-key and --token
// (default RAGKV_TOKEN).
var clientTrust struct {
	ca, serverName, cert, key string
	token                     string
}

func init() {
	pf := rootCmd.PersistentFlags()
	pf.StringVar(&clientTrust.ca, "tls-ca", "", "client: PEM CA that signed the server's certificate; connect over TLS")
	pf.StringVar(&clientTrust.serverName, "tls-server-name", "", "client: name to check the server certificate against (default: the --addr host); implies TLS")
	pf.StringVar(&clientTrust.cert, "tls-client-cert", "", "client: PEM client certificate (servers with --tls-client-ca); implies TLS")
	pf.StringVar(&clientTrust.key, "tls-client-key", "", "client: PEM key of --tls-client-cert")
	pf.StringVar(&clientTrust.token, "token", "", "client: bearer token (default: $RAGKV_TOKEN)")
}

// tokenCreds sends the bearer token with every RPC.
type tokenCreds struct {
	token  string
	secure bool
}

func (t tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + t.token}, nil
}

// RequireTransportSecurity is false so that a token can be used against a loopback
// server in plaintext; the server refuses plaintext off loopback (unless --insecure).
func (t tokenCreds) RequireTransportSecurity() bool { return t.secure }

// clientDialOptions are the transport and credential options of the client flags.
func clientDialOptions() ([]grpc.DialOption, error) {
	opts, useTLS, err := clientTransportOptions()
	if err != nil {
		return nil, err
	}
	tok := clientTrust.token
	if tok == "" {
		tok = os.Getenv("RAGKV_TOKEN")
	}
	if tok != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(tokenCreds{token: tok, secure: useTLS}))
	}
	return opts, nil
}

// clientTransportOptions are the TLS options of the client flags (plaintext without
// them), and whether TLS is on. `ragkv serve` dials its Locate peers with them.
func clientTransportOptions() ([]grpc.DialOption, bool, error) {
	var opts []grpc.DialOption
	ct := clientTrust
	useTLS := ct.ca != "" || ct.serverName != "" || ct.cert != "" || ct.key != ""
	if useTLS {
		cfg, err := server.ClientTLSConfig(server.TLSFiles{CA: ct.ca, ServerName: ct.serverName, Cert: ct.cert, Key: ct.key})
		if err != nil {
			flag := "tls-ca"
			if ct.cert != "" || ct.key != "" {
				flag = "tls-client-cert"
			}
			return nil, false, flagErr(flag, "%v", err)
		}
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	} else {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	return opts, useTLS, nil
}

// dialServer opens a client connection to a ragkv server (TLS and a bearer token per
// the client flags, with the server's message size limit). Every client subcommand
// goes through it; a bad address is an error naming --addr.
func dialServer(addr string) (*grpc.ClientConn, error) {
	opts, err := clientDialOptions()
	if err != nil {
		return nil, err
	}
	opts = append(opts, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(server.DefaultMaxRecvMsgBytes), grpc.MaxCallSendMsgSize(server.DefaultMaxRecvMsgBytes)))
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, flagErr("addr", "%v", err)
	}
	return conn, nil
}
