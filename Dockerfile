# Build: docker build -t xumm-gate .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin xumm-gate

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 xumm-gate
COPY --from=build /src/target/release/xumm-gate /usr/local/bin/xumm-gate
COPY config.toml /etc/xumm-gate/config.toml
USER 10001
EXPOSE 4180 9180
ENTRYPOINT ["/usr/local/bin/xumm-gate"]
CMD ["run", "--config", "/etc/xumm-gate/config.toml"]
