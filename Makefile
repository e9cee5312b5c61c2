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

.PHONY: build test demo bench vet lint race fuzz fuzz-short clean release image

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

# staticcheck is pinned and fetched through the Go module proxy on first use
# (v0.8.2 = staticcheck 2026.2.2, the newest release when pinned; it handles Go 1.26).
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint:
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# The race detector over the packages whose tests need no root: -short skips
# the tests that start real dockerd engines or container-backed guests.
RACE_PKGS ?= ./reconcile/... ./config/... ./store/... ./remediate/... ./guest/... ./swarm/... ./preclone/... ./vsphere/... ./internal/... ./collect/... ./audit/... ./daemon/... ./kube/...

race:
	$(GO) test -race -short -count=1 $(RACE_PKGS)

# Each fuzz target for FUZZTIME (go test runs one -fuzz target at a time).
# Inputs that fail are written to the package's testdata/fuzz and then run
# as seeds by every go test. FUZZMINTIME bounds the minimization of each new
# input, which otherwise stalls short runs.
FUZZTIME    ?= 1m
FUZZMINTIME ?= 5s
FUZZ_TARGETS := \
	guest:FuzzParseReport guest:FuzzParseNodeCert guest:FuzzNodeCertSubject guest:FuzzParseGuestLogin \
	remediate:FuzzParseGuestReport remediate:FuzzDecodePlan \
	config:FuzzLoad swarm:FuzzValidateHost internal/textsafe:FuzzTerm

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t#*:}; \
		echo "== $$fn (./$$pkg, $(FUZZTIME))"; \
		$(GO) test ./$$pkg -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME); \
	done

# For CI: every fuzz target briefly.
fuzz-short:
	$(MAKE) fuzz FUZZTIME=10s FUZZMINTIME=2s

clean:
	rm -rf bin dist
