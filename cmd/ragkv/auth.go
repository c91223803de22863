package main

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ragkv/ragkv/internal/certs"
	"github.com/ragkv/ragkv/server/auth"
)

// `ragkv auth ...` makes tokens and checks auth files; `ragkv tls init` writes a
// private CA and certificates for one deployment.
func init() {
	authCmd := &cobra.Command{Use: "auth", Short: "Bearer tokens and auth files of `ragkv serve --auth-file`"}
	hash := &cobra.Command{
		Use:   "hash-token [TOKEN]",
		Short: "Print the token_sha256 of a token (read from stdin without an argument)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tok := ""
			if len(args) == 1 {
				tok = args[0]
			} else {
				sc := bufio.NewScanner(cmd.InOrStdin())
				if sc.Scan() {
					tok = strings.TrimSpace(sc.Text())
				}
			}
			if tok == "" {
				return usageError{fmt.Errorf("hash-token: no token given")}
			}
			fmt.Fprintln(cmd.OutOrStdout(), auth.HashToken(tok))
			return nil
		},
	}
	var asJSON bool
	newTok := &cobra.Command{
		Use:   "new-token",
		Short: "Print a new random token (32 bytes, base64url) and its token_sha256",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var b [32]byte
			_, _ = rand.Read(b[:])
			tok := base64.RawURLEncoding.EncodeToString(b[:])
			if asJSON {
				out, _ := json.Marshal(map[string]string{"token": tok, "token_sha256": auth.HashToken(tok)})
				fmt.Fprintln(cmd.OutOrStdout(), string(out))
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "token:        %s\ntoken_sha256: %s\n", tok, auth.HashToken(tok))
			return nil
		},
	}
	newTok.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	check := &cobra.Command{
		Use:   "check FILE",
		Short: "Check an auth file and print how many identities it holds",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := os.ReadFile(args[0])
			if err != nil {
				return usageError{err}
			}
			n, err := auth.Check(b)
			if err != nil {
				return usageError{fmt.Errorf("%s: %w", args[0], err)}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d identities\n", args[0], n)
			return nil
		},
	}
	authCmd.AddCommand(hash, newTok, check)

	tlsCmd := &cobra.Command{Use: "tls", Short: "TLS certificates for `ragkv serve --tls-cert`"}
	var dir string
	var hosts, clients []string
	var validity time.Duration
	var ifMissing bool
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Write a private CA (ca.pem, ca.key), a server certificate (server.pem, server.key) and client certificates (NAME.pem, NAME.key) into --dir",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(hosts) == 0 {
				return flagErr("hosts", "give the names or IPs clients dial")
			}
			if validity <= 0 {
				return flagErr("validity", "must be positive")
			}
			if ifMissing {
				if _, err := os.Stat(filepath.Join(dir, "server.pem")); err == nil {
					fmt.Fprintf(cmd.OutOrStdout(), "%s/server.pem exists; nothing written\n", dir)
					return nil
				}
			}
			f, ca, err := certs.WriteCA(dir, hosts, validity)
			if err != nil {
				return flagErr("dir", "%v", err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "CA %s (key %s: keep it offline)\nserver %s, key %s (hosts %s)\n", f.CA, f.CAKey, f.Cert, f.Key, strings.Join(hosts, ","))
			for _, c := range clients {
				leaf, err := ca.Issue(c, nil, false, validity)
				if err != nil {
					return err
				}
				cp, err := certs.WriteFile(dir, c+".pem", leaf.CertPEM)
				if err != nil {
					return flagErr("dir", "%v", err)
				}
				kp, err := certs.WriteFile(dir, c+".key", leaf.KeyPEM)
				if err != nil {
					return flagErr("dir", "%v", err)
				}
				fmt.Fprintf(out, "client %s: %s, key %s (cert_subject: %s)\n", c, cp, kp, c)
			}
			return nil
		},
	}
	initCmd.Flags().StringVar(&dir, "dir", "tls", "directory to write the files into")
	initCmd.Flags().StringSliceVar(&hosts, "hosts", []string{"localhost", "127.0.0.1"}, "DNS names and IPs of the server certificate")
	initCmd.Flags().StringSliceVar(&clients, "client", nil, "client certificate subject(s) to issue (each becomes an auth file cert_subject)")
	initCmd.Flags().BoolVar(&ifMissing, "if-missing", false, "do nothing if --dir already holds server.pem (for a compose init service)")
	initCmd.Flags().DurationVar(&validity, "validity", 365*24*time.Hour, "how long the certificates are valid")
	tlsCmd.AddCommand(initCmd)
	rootCmd.AddCommand(authCmd, tlsCmd)
}
