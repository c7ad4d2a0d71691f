# eltd container image.
#   build stage:   debian:bookworm, `deps/install.sh --build` and the CMake build CI runs
#                  (Release, warnings as errors, no unit tests).
#   runtime stage: debian:bookworm-slim with only the shared libraries eltd links
#                  (`deps/install.sh --runtime`) + tini, the binary, conf/ and models/;
#                  runs as the fixed non-root user eltd (uid/gid 10001).
# No secret is baked in: passwords and the API token come from the environment
# (docker-compose.yml reads them from .env). test/integration/container_files.sh checks
# this file against CI's build commands and the runtime library list.
FROM debian:bookworm AS build
WORKDIR /src
# The package list first, so source edits reuse the cached toolchain layer.
COPY deps/ deps/
RUN sh deps/install.sh --build && rm -rf /var/lib/apt/lists/*
COPY CMakeLists.txt ./
COPY src/ src/
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DELTD_WERROR=ON -DELTD_TESTS=OFF \
 && cmake --build build -j"$(nproc)" \
 && build/eltd version

FROM debian:bookworm-slim AS runtime
COPY deps/install.sh /tmp/install.sh
RUN sh /tmp/install.sh --runtime \
 && apt-get install -y -q --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/* /tmp/install.sh \
 && groupadd --system --gid 10001 eltd \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/eltd --no-create-home \
      --shell /usr/sbin/nologin eltd \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/eltd
COPY --from=build /src/build/eltd /usr/local/bin/eltd
COPY conf/ /etc/eltd/
COPY models/ /usr/share/eltd/models/
# Defaults for conf/pipeline.yaml's ${VAR} references; connection settings and secrets are
# given at `docker run -e` / compose time. A config mounted over /etc/eltd/pipeline.yaml wins.
ENV ELTD_MODELS=/usr/share/eltd/models \
    ELTD_STATE_DIR=/var/lib/eltd \
    ELTD_LISTEN=0.0.0.0:5001
# The run journal lives here: mount a volume to keep run history across containers.
VOLUME ["/var/lib/eltd"]
WORKDIR /var/lib/eltd
USER 10001:10001
EXPOSE 5001
# tini is PID 1: it forwards SIGTERM to eltd (which cancels a running run and exits) and
# reaps zombies.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=6s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/eltd", "health", "-c", "/etc/eltd/pipeline.yaml"]
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/eltd"]
CMD ["serve", "-c", "/etc/eltd/pipeline.yaml"]
