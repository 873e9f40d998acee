# Brook broker image. Build:
#   docker build --build-arg BROOK_COMMIT=$(git rev-parse --short=12 HEAD) -t brook .
# Needs Docker Engine 25 or newer (BuildKit's Dockerfile frontend 1.6+, for
# HEALTHCHECK --start-interval).
#
# Stages: chef (Rust + cargo-chef) -> planner (recipe.json: manifests and
# Cargo.lock only) -> build (dependencies cooked in their own layer, then the
# workspace) -> runtime (the binary on Debian slim). While Cargo.toml,
# Cargo.lock and the set of targets stay the same, recipe.json is identical and
# a source change reuses the cached dependency layer: only Brook's own crates
# are compiled again.
#
# Base images are pinned by exact version. To pin by digest as well, append
# the index digest that `docker buildx imagetools inspect IMAGE:TAG` prints
# ("Digest:"), e.g. FROM debian:bookworm-20261005-slim@sha256:<digest>.

# Rust: the toolchain the workspace is built and linted with (rust-version in
# Cargo.toml is the minimum). The slim image already has gcc and libc6-dev,
# which ring and mimalloc need; protoc is not needed (protox compiles the
# .proto files in Rust).
FROM rust:1.95.0-slim-bookworm AS chef
ARG CARGO_CHEF_VERSION=0.1.78
RUN cargo install cargo-chef --version "${CARGO_CHEF_VERSION}" --locked \
    && rm -rf "${CARGO_HOME}/registry"
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS build
COPY --from=planner /src/recipe.json recipe.json
# The dependency layer: the same profile, package and binary as the build
# below, or cargo would compile the dependencies again.
RUN cargo chef cook --profile dist --locked -p brook --bin brook --recipe-path recipe.json
COPY . .
# Declared only here, after the cook step, so that a new commit does not
# invalidate the dependency layer. .git is not in the build context
# (.dockerignore): the broker's build script takes the commit for its
# build_info metric from BROOK_COMMIT.
ARG BROOK_COMMIT=unknown
# `dist` profile: release without debug info (target/dist/brook).
RUN BROOK_COMMIT="${BROOK_COMMIT}" cargo build --profile dist --locked -p brook --bin brook

FROM debian:bookworm-20261005-slim AS runtime
# ca-certificates: the system roots, for https:// connections that do not name
# their own CA. The brook user keeps UID/GID 999 (what `useradd --system` gave
# it in earlier images), so existing volumes stay readable; its home is the
# data directory, created empty (no /etc/skel dotfiles among the topics).
# ca-certificates is not version-pinned: Debian keeps only the current version
# in the archive, so a pin would break the build at its next update.
# hadolint ignore=DL3008
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --system --gid 999 brook; \
    useradd --system --uid 999 --gid brook --home-dir /var/lib/brook --no-create-home \
        --shell /usr/sbin/nologin brook; \
    install -d -o brook -g brook -m 0750 /var/lib/brook
COPY --from=build /src/target/dist/brook /usr/local/bin/brook
# The brook user, by number so that Kubernetes' runAsNonRoot can verify it.
USER 999:999
VOLUME /var/lib/brook
# gRPC, Prometheus metrics and the Kafka protocol.
EXPOSE 9292 9293 9092
# Kafka clients outside the container need BROOK_KAFKA_ADVERTISED_ADDRESS
# (the host:port they reach it at): Metadata tells them where to connect.
ENV BROOK_DATA_DIR=/var/lib/brook \
    BROOK_LISTEN=0.0.0.0:9292 \
    BROOK_METRICS_LISTEN=0.0.0.0:9293 \
    BROOK_KAFKA_LISTEN=0.0.0.0:9092 \
    BROOK_KAFKA_ADVERTISED_ADDRESS=localhost:9092
# Healthy once gRPC health answers SERVING (after the log is recovered).
# Recovery after an unclean stop can take minutes on a large data directory:
# failures within the start period do not count, and during it the check runs
# every 5 s so the container turns healthy soon after the broker serves.
# If you change BROOK_LISTEN's port or turn TLS on, override the check
# (docker run --health-cmd, or compose's healthcheck.test).
HEALTHCHECK --interval=30s --timeout=10s --start-period=10m --start-interval=5s --retries=3 \
    CMD ["/usr/local/bin/brook", "health", "--url", "http://127.0.0.1:9292"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["brook"]
CMD ["serve"]

# Version: keep in step with [workspace.package] version in Cargo.toml.
ARG BROOK_VERSION=0.1.0
ARG BROOK_COMMIT=unknown
LABEL org.opencontainers.image.title="Brook" \
      org.opencontainers.image.description="Brook: a single-binary, Kafka-like event log broker (gRPC API)" \
      org.opencontainers.image.source="https://example.invalid/brook" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${BROOK_VERSION}" \
      org.opencontainers.image.revision="${BROOK_COMMIT}"
