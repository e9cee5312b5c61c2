# vmreconcile in a container: FROM scratch, so there is no base image to
# pull; the build context holds everything (docs/install.md):
#   make image            # or, by hand:
#   CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath -o dist/vmreconcile-linux-amd64 ./cmd/vmreconcile
#   mkdir -p dist/image/state && cp /etc/ssl/certs/ca-certificates.crt dist/image/
#   docker build --build-arg TARGETARCH=amd64 -t vmreconcile .
# Run the daemon (config and credentials mounted read-only, the store in a volume):
#   docker run -d --name vmreconcile -v /etc/vmreconcile:/etc/vmreconcile:ro \
#     -v vmreconcile-state:/var/lib/vmreconcile -p 127.0.0.1:9477:9477 vmreconcile
FROM scratch
ARG TARGETARCH=amd64
COPY dist/image/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
# The store's directory, owned by the unprivileged user the daemon runs as.
COPY --chown=65532:65532 dist/image/state/ /var/lib/vmreconcile/
COPY dist/vmreconcile-linux-${TARGETARCH} /usr/local/bin/vmreconcile
ENV HOME=/var/lib/vmreconcile \
    VMRECONCILE_STORE_PATH=/var/lib/vmreconcile/state.db \
    VMRECONCILE_LISTEN=0.0.0.0:9477
USER 65532:65532
VOLUME /var/lib/vmreconcile
EXPOSE 9477
ENTRYPOINT ["/usr/local/bin/vmreconcile"]
CMD ["daemon", "-config", "/etc/vmreconcile/config.yaml"]
