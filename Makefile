# vmreconcile — see README.md.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
BIN     := bin/vmreconcile

.PHONY: build test demo bench vet clean

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

clean:
	rm -rf bin
