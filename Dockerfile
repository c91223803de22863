# ragkv service image: a static binary on distroless, running as a non-root user.
#   docker build -t ragkv .
#   docker run -p 7431:7431 -p 7432:7432 -v ragkv-data:/data ragkv
ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ragkv ./cmd/ragkv \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ragkv /usr/local/bin/ragkv
# The data directory belongs to the nonroot user (uid 65532), so a fresh named volume
# mounted there is writable.
COPY --from=build --chown=65532:65532 /out/data /data
COPY --from=build --chown=65532:65532 /out/data /tls
# The example auth file (public example tokens: replace it, see deploy/auth.example.yaml).
COPY deploy/auth.example.yaml /etc/ragkv/auth.yaml
VOLUME ["/data", "/tls"]
# 7431: gRPC (chunk cache, retrieval, ...); 7432: admin HTTP (/metrics, /healthz).
EXPOSE 7431 7432
USER nonroot:nonroot
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/ragkv"]
# Off loopback the server needs TLS and an auth file: mount a /tls holding server.pem
# and server.key (`ragkv tls init --dir DIR`, or the compose file's tls-init service).
CMD ["serve", "--data-dir", "/data", "--listen", "0.0.0.0:7431", "--admin-listen", "0.0.0.0:7432", \
     "--tls-cert", "/tls/server.pem", "--tls-key", "/tls/server.key", "--auth-file", "/etc/ragkv/auth.yaml"]
