# Build stage: the whole workspace, release profile.
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p brook --bin brook

# Run stage: just the binary on a slim base.
FROM debian:bookworm-slim
RUN useradd --system --home /var/lib/brook --create-home brook
COPY --from=build /src/target/release/brook /usr/local/bin/brook
USER brook
VOLUME /var/lib/brook
# gRPC and Prometheus metrics.
EXPOSE 9292 9293
ENV BROOK_DATA_DIR=/var/lib/brook \
    BROOK_LISTEN=0.0.0.0:9292 \
    BROOK_METRICS_LISTEN=0.0.0.0:9293
STOPSIGNAL SIGTERM
ENTRYPOINT ["brook"]
CMD ["serve"]
