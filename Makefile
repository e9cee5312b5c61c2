# vmreconcile — see README.md.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
BIN     := bin/vmreconcile

.PHONY: build test demo bench vet lint clean

build:
	$(GO) build -trimpath -ldflags "-X main.buildVersion=$(VERSION)" -o $(BIN) ./cmd/vmreconcile

# The real-dockerd tests run as root with docker.io installed; elsewhere they
# skip with a message (with CI=true they must run).
test: build
	$(GO) vet ./...
	scripts/test

demo: build
	./$(BIN) demo

bench:
	scripts/bench

# staticcheck is pinned and fetched through the Go module proxy on first use
# (v0.8.2 = staticcheck 2026.2.2, the newest release when pinned; it handles Go 1.26).
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint:
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

clean:
	rm -rf bin
