# eltd container image. The build stage runs the same install script and CMake build that
# CI proves; the runtime stage carries only the shared libraries, the binary, conf/ and
# models/, and runs as a fixed non-root user.
FROM debian:bookworm AS build
WORKDIR /src
COPY deps/ deps/
RUN bash deps/install.sh --build && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DELTD_TESTS=OFF \
 && cmake --build build -j"$(nproc)"

FROM debian:bookworm-slim
COPY deps/install.sh /tmp/install.sh
RUN bash /tmp/install.sh --runtime && apt-get install -y -q --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/* /tmp/install.sh \
 && groupadd --system --gid 10001 eltd \
 && useradd --system --uid 10001 --gid eltd --home-dir /var/lib/eltd --create-home eltd
COPY --from=build /src/build/eltd /usr/local/bin/eltd
COPY conf/ /etc/eltd/
COPY models/ /usr/share/eltd/models/
ENV ELTD_MODELS=/usr/share/eltd/models ELTD_STATE_DIR=/var/lib/eltd ELTD_LISTEN=0.0.0.0:5001
USER eltd
WORKDIR /var/lib/eltd
EXPOSE 5001
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/eltd"]
CMD ["run", "-c", "/etc/eltd/pipeline.yaml"]
