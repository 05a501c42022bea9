# Multi-stage build: a small runtime image, non-root, health-checked on /-/healthy.
#   docker build -t pathwatch .
#   docker run -p 9115:9115 -v $PWD/my-config.yaml:/etc/pathwatch/config.yaml:ro pathwatch
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin pathwatch && strip target/release/pathwatch

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/pathwatch pathwatch \
    && mkdir -p /var/lib/pathwatch && chown pathwatch /var/lib/pathwatch
COPY --from=build /src/target/release/pathwatch /usr/local/bin/pathwatch
# The default config (the built-in demo), made to listen on every interface of the container
# and to keep its history on the volume.
COPY config.yaml /etc/pathwatch/config.yaml
RUN sed -i -e 's/listen: 127.0.0.1:9115/listen: 0.0.0.0:9115/' \
        -e 's|path: pathwatch.db|path: /var/lib/pathwatch/pathwatch.db|' /etc/pathwatch/config.yaml \
    && grep -q 'listen: 0.0.0.0:9115' /etc/pathwatch/config.yaml \
    && grep -q 'path: /var/lib/pathwatch/pathwatch.db' /etc/pathwatch/config.yaml
USER pathwatch
WORKDIR /var/lib/pathwatch
VOLUME /var/lib/pathwatch
EXPOSE 9115
HEALTHCHECK --interval=30s --timeout=3s CMD curl -fsS http://127.0.0.1:9115/-/healthy || exit 1
ENTRYPOINT ["pathwatch"]
CMD ["run", "--config", "/etc/pathwatch/config.yaml"]
