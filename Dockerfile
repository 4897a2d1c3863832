# cdcd container image. Base images are build arguments so the same file builds on a machine
# with a registry (the defaults) and on one without (scripts/container_test.sh passes images it
# made with debootstrap and `podman import`).
#
#   podman build --format docker -t cdcd .        # or: docker build -t cdcd .
#   podman run -d --stop-timeout 60 -v cdcd-state:/var/lib/cdcd \
#     -v /etc/cdcd/connectors:/etc/cdcd/connectors:ro -p 9187:9187 cdcd
#
# Stop timeout: SIGTERM makes cdcd drain in-flight events to the broker (up to 30 s) and write
# its checkpoints; give it at least 60 s (`--stop-timeout 60`, Kubernetes
# `terminationGracePeriodSeconds: 60`). Docker's default of 10 s would SIGKILL it mid-drain:
# nothing is lost (the checkpoint never passes undelivered events) but the undrained tail is
# sent again after the restart.
ARG BUILD_IMAGE=docker.io/library/rust:1-bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim

FROM ${BUILD_IMAGE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates cmake g++ make pkg-config libssl-dev zlib1g-dev libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, against empty sources: this layer is reused until Cargo.toml, Cargo.lock
# or vendor/ change, so a source edit rebuilds only cdcd itself.
COPY Cargo.toml Cargo.lock ./
COPY vendor vendor
RUN mkdir -p src/bin \
 && echo 'fn main() {}' > src/main.rs \
 && echo 'fn main() {}' > src/bin/mock_broker.rs \
 && touch src/lib.rs \
 && cargo build --release --locked --bin cdcd \
 && rm -rf src target/release/deps/cdcd-* target/release/deps/libcdcd-* target/release/.fingerprint/cdcd-*
COPY src src
RUN cargo build --release --locked --bin cdcd \
 && strip --strip-debug target/release/cdcd

FROM ${RUNTIME_IMAGE}
# Only what the binary loads: OpenSSL, libcurl (librdkafka fetches OAUTHBEARER/OIDC tokens
# with it), zlib (in the base), and CA certificates for TLS.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates libssl3 libcurl4 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/cdcd --shell /usr/sbin/nologin cdcd \
 && mkdir -p /var/lib/cdcd /etc/cdcd/connectors \
 && chown cdcd /var/lib/cdcd && chmod 0700 /var/lib/cdcd
COPY --from=build /src/target/release/cdcd /usr/local/bin/cdcd
USER cdcd
ENV STATE_DIRECTORY=/var/lib/cdcd \
    CDCD_HTTP=0.0.0.0:9187 \
    CDCD_LOG_FORMAT=json
VOLUME /var/lib/cdcd
EXPOSE 9187
STOPSIGNAL SIGTERM
# Liveness of the process; readiness (every connector snapshotting or streaming) is
# `cdcd health --ready`, for orchestrators that probe it separately.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["/usr/local/bin/cdcd", "health"]
ENTRYPOINT ["/usr/local/bin/cdcd"]
CMD ["run", "--config", "/etc/cdcd/connectors"]
