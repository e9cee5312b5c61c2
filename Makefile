# vmreconcile — see README.md.
GO      ?= go
# The version printed by vmreconcile --version: git describe here; without
# git, the binary reports its build info (module version or vcs revision).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
BIN     := bin/vmreconcile
LDFLAGS := $(if $(VERSION),-X main.buildVersion=$(VERSION))
# make release: static binaries for these into dist/, with dist/SHA256SUMS.
PLATFORMS ?= linux/amd64 linux/arm64 darwin/arm64 windows/amd64
IMAGE   ?= vmreconcile:$(or $(VERSION),latest)

.PHONY: build test demo bench vet clean release image

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/vmreconcile

release:
	GO=$(GO) VERSION=$(VERSION) scripts/release $(PLATFORMS)

# The container image (docs/install.md): FROM scratch, nothing to pull; the
# static linux binary and this machine's CA certificates are copied in.
GOARCH   ?= $(shell $(GO) env GOARCH)
CA_CERTS ?= /etc/ssl/certs/ca-certificates.crt
image:
	CGO_ENABLED=0 GOOS=linux GOARCH=$(GOARCH) $(GO) build -trimpath -ldflags "-s -w $(LDFLAGS)" -o dist/vmreconcile-linux-$(GOARCH) ./cmd/vmreconcile
	mkdir -p dist/image/state
	cp $(CA_CERTS) dist/image/ca-certificates.crt
	docker build --build-arg TARGETARCH=$(GOARCH) -t $(IMAGE) .

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
	rm -rf bin dist
