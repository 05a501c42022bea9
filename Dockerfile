# Multi-stage build: a small runtime image, non-root, health-checked on /-/healthy.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked && strip target/release/pathwatch

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 pathwatch
COPY --from=build /src/target/release/pathwatch /usr/local/bin/pathwatch
COPY config.yaml /etc/pathwatch/config.yaml
USER pathwatch
EXPOSE 9115
HEALTHCHECK --interval=30s --timeout=3s CMD curl -fsS http://127.0.0.1:9115/-/healthy || exit 1
ENTRYPOINT ["pathwatch"]
CMD ["run", "--config", "/etc/pathwatch/config.yaml"]
