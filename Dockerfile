# trunkgate container image.
#
#   docker build -t trunkgate .
#   docker run -d --name trunkgate --network host --stop-timeout 55 \
#     -v trunkgate-data:/var/lib/trunkgate trunkgate
#
# The build stage runs scripts/build-image (CI runs the same script without Docker), which
# stages the runtime filesystem into /image-root: the binary, /etc/trunkgate (gateway.toml
# and profiles/, read-only) and /var/lib/trunkgate (the volume for CDRs and recordings;
# /etc/trunkgate/var points there, so the shipped relative paths land in it).
# Use your own configuration by mounting gateway.toml and profiles/ over the shipped ones
# (see README.md, "Docker").
#
# Base images are pinned to exact releases; the binary is built on the same Debian release
# it runs on. To pin by digest as well, append the @sha256:… that
# `docker buildx imagetools inspect IMAGE` prints.

FROM rust:1.95.0-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY gateway.toml ./
COPY profiles ./profiles
COPY scripts/build-image ./scripts/build-image
RUN scripts/build-image /image-root

FROM debian:12.11-slim
RUN useradd --system --user-group --uid 10001 --home-dir /var/lib/trunkgate \
        --no-create-home --shell /usr/sbin/nologin trunkgate
COPY --from=build /image-root/ /
# The only place the gateway writes. 0750: CDRs and recordings are personal data.
RUN chown trunkgate:trunkgate /var/lib/trunkgate && chmod 0750 /var/lib/trunkgate
VOLUME ["/var/lib/trunkgate"]
USER trunkgate
WORKDIR /var/lib/trunkgate
# SIP (UDP and TCP), the call-back service, Prometheus /metrics, and the RTP/RTCP range of
# [media] ports. Publishing a thousand UDP ports through Docker's proxy is slow: prefer
# --network host.
EXPOSE 5060/udp 5060/tcp 5080/udp 9464/tcp 20000-20999/udp
# Healthy while /metrics answers 200 (the image has no HTTP client; bash's /dev/tcp is one).
# Assumes [metrics] listen on 127.0.0.1:9464 or 0.0.0.0:9464, as shipped, and 127.0.0.1 in
# [metrics] allow (the probe connects from there).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9464 && printf 'GET /metrics HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
# SIGTERM drains calls for [shutdown] drain_s (30 s), and a stop needs drain_s + 22 s: run
# with `--stop-timeout 55` (an image cannot set it; Docker's default is 10 s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/trunkgate"]
CMD ["run", "--config", "/etc/trunkgate/gateway.toml", "--log-format", "json"]
