# ragkv — build, test and benchmark targets. `make test` is what CI runs.
GO        ?= go
PKGS      ?= ./...
SHORTFUZZ ?= 5s

.PHONY: all build proto lint test race bench fuzz clean

all: build

build:
	$(GO) build -o bin/ragkv ./cmd/ragkv

# Regenerate the gRPC/protobuf code (committed). Needs protoc (Debian: protobuf-compiler),
# protoc-gen-go and protoc-gen-go-grpc (go install, versions pinned below).
proto:
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
	$(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1
	PATH="$$($(GO) env GOPATH)/bin:$$PATH" protoc -I proto \
		--go_out=proto --go_opt=paths=source_relative \
		--go-grpc_out=proto --go-grpc_opt=paths=source_relative \
		proto/ragkv/v1/*.proto

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^proto/')); \
		if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

test: lint
	$(GO) test -count=1 -timeout 20m $(PKGS)

race:
	$(GO) test -race -count=1 -timeout 30m $(PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

clean:
	rm -rf bin
