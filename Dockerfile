# trunkgate container image. Build: docker build -t trunkgate .
# The shipped gateway.toml listens on 127.0.0.1 for the loopback demo; mount your own
# configuration folder at /etc/trunkgate (listening on 0.0.0.0 or the host's address).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN useradd --system --home /var/lib/trunkgate trunkgate \
    && mkdir -p /etc/trunkgate /var/lib/trunkgate \
    && chown trunkgate /var/lib/trunkgate
COPY --from=build /src/target/release/trunkgate /usr/local/bin/trunkgate
COPY gateway.toml /etc/trunkgate/gateway.toml
COPY profiles /etc/trunkgate/profiles
USER trunkgate
WORKDIR /var/lib/trunkgate
EXPOSE 5060/udp 5060/tcp
ENTRYPOINT ["/usr/local/bin/trunkgate"]
CMD ["run", "--config", "/etc/trunkgate/gateway.toml"]
