# Multi-stage build: a small runtime image, non-root (uid 10001), read-only root friendly,
# health-checked by pathwatch itself (no curl in the image).
#   docker build -t pathwatch .
#   docker run -p 9115:9115 -v $PWD/my-config.yaml:/etc/pathwatch/config.yaml:ro pathwatch
# With Chromium, for `type: browser` checks:
#   docker build --build-arg BROWSER=1 -t pathwatch:browser .
# Where no registry is reachable from inside a build container (.ci/image), a binary built on
# the host and a base made from Debian's packages replace the first stage and the base:
#   buildah bud --build-arg BINARY=prebuilt --build-arg BASE=localhost/pathwatch-base:bookworm ...
# with the stripped binary in the build context as `pathwatch.bin`.
ARG BASE=debian:bookworm-slim
ARG BINARY=build

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin pathwatch \
    && strip -o /pathwatch target/release/pathwatch

FROM scratch AS prebuilt
COPY pathwatch.bin /pathwatch

FROM ${BINARY} AS binary

FROM ${BASE}
# 1: Debian's Chromium (and the fonts its pages need), for `type: browser`.
ARG BROWSER=0
RUN if [ "$BROWSER" = 1 ]; then \
        apt-get update && apt-get install -y --no-install-recommends chromium fonts-liberation libnss3-tools \
        && apt-get clean && rm -rf /var/lib/apt/lists/*; \
    fi \
    && groupadd --gid 10001 pathwatch \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/pathwatch --shell /usr/sbin/nologin pathwatch \
    && mkdir -p /var/lib/pathwatch && chown pathwatch:pathwatch /var/lib/pathwatch
COPY --from=binary /pathwatch /usr/local/bin/pathwatch
# The default config (the built-in demo), made to listen on every interface of the container
# and to keep its history on the volume.
COPY config.yaml /etc/pathwatch/config.yaml
RUN sed -i -e 's/listen: 127.0.0.1:9115/listen: 0.0.0.0:9115/' \
        -e 's|path: pathwatch.db|path: /var/lib/pathwatch/pathwatch.db|' /etc/pathwatch/config.yaml \
    && grep -q 'listen: 0.0.0.0:9115' /etc/pathwatch/config.yaml \
    && grep -q 'path: /var/lib/pathwatch/pathwatch.db' /etc/pathwatch/config.yaml \
    && pathwatch validate --config /etc/pathwatch/config.yaml
USER 10001:10001
WORKDIR /var/lib/pathwatch
VOLUME /var/lib/pathwatch
EXPOSE 9115
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s CMD ["pathwatch", "healthcheck", "--address", "127.0.0.1:9115"]
ENTRYPOINT ["pathwatch"]
CMD ["run", "--config", "/etc/pathwatch/config.yaml"]
