#!/bin/sh
# Installs every Debian package that building, testing and running eltd locally need.
# The README, .ci/run and the Dockerfile all call this one script.
#   deps/install.sh           build + test + local servers (default)
#   deps/install.sh --build   only what compiling eltd needs (Dockerfile build stage)
#   deps/install.sh --runtime only the shared libraries eltd links (Dockerfile runtime stage)
set -eu

BUILD="build-essential cmake pkg-config clang libclang-rt-14-dev \
  libuv1-dev libpq-dev libcurl4-openssl-dev libyaml-dev libjansson-dev node-llhttp"
RUNTIME="libuv1 libpq5 libcurl4 libyaml-0-2 libjansson4 ca-certificates tzdata"
TEST="libcmocka-dev postgresql-15 postgresql-client-15 clickhouse-server clickhouse-client \
  prometheus python3 python3-croniter python3-jinja2 python3-psycopg2 \
  python3-clickhouse-driver python3-yaml curl procps iproute2 faketime wrk docker-compose"

case "${1:-all}" in
  --build) PKGS="$BUILD" ;;
  --runtime) PKGS="$RUNTIME" ;;
  all|--all) PKGS="$BUILD $RUNTIME $TEST" ;;
  *) echo "usage: $0 [--build|--runtime|--all]" >&2; exit 64 ;;
esac

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $PKGS
