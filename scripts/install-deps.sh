#!/usr/bin/env bash
# Installs every Debian 12 package Runway needs to build and test. Idempotent: when everything is
# already present it prints nothing and touches nothing (no apt-get update).
#
# valijson is header-only, but Debian's libvalijson-dev Depends on every adapter's library (Qt5,
# Poco, MariaDB, ... about 170 MB). We download the .deb and unpack only its headers and CMake
# config into RUNWAY_DEPS_DIR instead (toolchain.md, pitfall 5).
set -euo pipefail

RUNWAY_DEPS_DIR="${RUNWAY_DEPS_DIR:-/opt/runway-deps}"

packages=(
  build-essential cmake ninja-build ccache pkg-config git ca-certificates
  libcpprest-dev nlohmann-json3-dev prometheus-cpp-dev libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev libyaml-cpp-dev libcli11-dev libssl-dev libboost-dev
  libabsl-dev libcurl4-openssl-dev clang-format python3 python3-yaml time podman docker-registry prometheus
)

missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

apt_updated=0
if ((${#missing[@]} > 0)); then
  echo "install-deps: installing ${missing[*]}" >&2
  as_root apt-get update -qq
  apt_updated=1
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

if [[ ! -f "$RUNWAY_DEPS_DIR/valijson/usr/include/valijson/validator.hpp" ]]; then
  echo "install-deps: unpacking valijson headers into $RUNWAY_DEPS_DIR/valijson" >&2
  if ((apt_updated == 0)); then as_root apt-get update -qq; fi
  tmp="$(mktemp -d)"
  chmod 755 "$tmp"  # apt-get download drops privileges to _apt
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && apt-get download -qq libvalijson-dev >/dev/null)
  as_root mkdir -p "$RUNWAY_DEPS_DIR/valijson"
  as_root dpkg-deb -x "$tmp"/libvalijson-dev_*.deb "$RUNWAY_DEPS_DIR/valijson"
fi
