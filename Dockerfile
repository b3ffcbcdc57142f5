# The gateway's container image: built in a Rust image, run from a distroless one as a
# non-root user. Configuration and clusters are volumes:
#
#   docker build -t throome .
#   docker run -e THROOME_ADMIN_TOKEN=... -v $PWD/clusters:/etc/throome/clusters \
#     -p 9000:9000 -p 16500:16500 -p 16532:16532 throome
#
# The image's gateway file (deploy/throome.yaml) listens on all interfaces, so it needs
# THROOME_ADMIN_TOKEN (the gateway refuses a non-loopback admin API without a token).

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin throome --bin throome-cli

# glibc and libgcc only; no shell, no package manager. Runs as uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/throome /usr/local/bin/throome
COPY --from=build /src/target/release/throome-cli /usr/local/bin/throome-cli
COPY deploy/throome.yaml /etc/throome/throome.yaml
COPY clusters/example/config.yaml /etc/throome/clusters/example/config.yaml
USER nonroot
VOLUME ["/etc/throome/clusters"]
# Admin API (metrics, health, data API), shared Redis and PostgreSQL listeners.
EXPOSE 9000 16500 16532
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/throome-cli", "ready", "--gateway", "http://127.0.0.1:9000"]
ENTRYPOINT ["/usr/local/bin/throome", "--config", "/etc/throome/throome.yaml"]
