# Build: docker build -t xumm-gate .        Run: see deploy/compose/ (or README "Running it for real")
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
# Without the "dev" feature: no development provider, platform or whoami (nor their keys) in
# the image; `xumm-gate demo` there says how to get it.
RUN cargo build --release --locked --no-default-features --bin xumm-gate

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 xumm-gate
COPY --from=build /src/target/release/xumm-gate /usr/local/bin/xumm-gate
# The container config listens on 0.0.0.0 and takes everything deployment-specific from the
# environment (PUBLIC_URL, UPSTREAM_URL and the three secrets); mount your own over it if needed.
COPY deploy/compose/config.toml /etc/xumm-gate/config.toml
USER 10001
EXPOSE 4180 9180
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/xumm-gate", "healthcheck", "--url", "http://127.0.0.1:9180/healthz"]
ENTRYPOINT ["/usr/local/bin/xumm-gate"]
CMD ["run", "--config", "/etc/xumm-gate/config.toml"]
