# cmdgate in a container: built and run on Debian 12 slim with Debian's own
# libraries (the same packages scripts/deps.sh installs), as a non-root user.
#   docker build -t cmdgate .
#   docker run -d --name cmdgate --network host \
#     -v /etc/cmdgate:/etc/cmdgate:ro -v cmdgate-state:/var/lib/cmdgate \
#     -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY cmdgate
FROM debian:12-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake pkg-config \
      libpaho-mqtt-dev libcurl4-openssl-dev libssl-dev libjansson-dev libconfig-dev \
      libsystemd-dev ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt LICENSE ./
COPY src src
COPY config config
COPY systemd systemd
COPY docs docs
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF -DBUILD_BENCH=OFF \
      -DCMAKE_INSTALL_PREFIX=/usr \
 && cmake --build /build -j"$(nproc)" \
 && DESTDIR=/out cmake --install /build --strip

FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpaho-mqtt1.3 libcurl4 libssl3 libjansson4 \
      libconfig9 libsystemd0 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/cmdgate --shell /usr/sbin/nologin cmdgate \
 && mkdir -p /var/lib/cmdgate && chown cmdgate:cmdgate /var/lib/cmdgate
COPY --from=build /out/usr/bin/cmdgate /usr/bin/cmdgate
COPY --from=build /out/usr/share/man /usr/share/man
COPY deploy/cmdgate.conf /etc/cmdgate/cmdgate.conf
USER cmdgate
VOLUME ["/etc/cmdgate", "/var/lib/cmdgate"]
# Healthy while the stats textfile is fresh and says the broker is connected
# (deploy/cmdgate.conf writes it every 15 s).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
  CMD ["sh", "-c", "test -n \"$(find /var/lib/cmdgate/cmdgate.prom -mmin -1)\" && grep -qx 'cmdgate_mqtt_connected 1' /var/lib/cmdgate/cmdgate.prom"]
ENTRYPOINT ["/usr/bin/cmdgate"]
CMD ["-c", "/etc/cmdgate/cmdgate.conf"]
