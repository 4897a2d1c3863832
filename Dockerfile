# Build: docker build -t cdcd .
# Run:   docker run -v /etc/cdcd:/etc/cdcd -v cdcd-state:/var/lib/cdcd cdcd run --config /etc/cdcd/connectors
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake libcurl4-openssl-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
RUN cargo build --release --bin cdcd

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libcurl4 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/cdcd cdcd && mkdir -p /var/lib/cdcd && chown cdcd /var/lib/cdcd
COPY --from=build /src/target/release/cdcd /usr/local/bin/cdcd
USER cdcd
ENV STATE_DIRECTORY=/var/lib/cdcd
VOLUME /var/lib/cdcd
ENTRYPOINT ["/usr/local/bin/cdcd"]
CMD ["run", "--config", "/etc/cdcd/connectors"]
