#!/usr/bin/env bash
# Installs what the load harness needs, then builds it and the binaries it
# measures (run by `make loadtest`; safe to run again):
#   - Debian's nginx, haproxy, caddy and nghttp2-client, when missing (apt-get, as root);
#   - fortio, pinned, into bin/tools (go install);
#   - waypoint, hbone and loadtest into bin/ (go build).
set -euo pipefail
cd "$(dirname "$0")/../.."

FORTIO_VERSION=1.66.5

# Binary -> Debian package.
declare -A packages=([nginx]=nginx [haproxy]=haproxy [caddy]=caddy [nghttp]=nghttp2-client)
missing=()
for bin in "${!packages[@]}"; do
  if ! PATH="$PATH:/usr/sbin:/sbin" command -v "$bin" >/dev/null 2>&1; then
    missing+=("${packages[$bin]}")
  fi
done
if ((${#missing[@]} > 0)); then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "loadtest setup: missing ${missing[*]}, and apt-get is not available to install them." >&2
    echo "Install these Debian packages (or your system's equivalents) by hand, then run make loadtest again." >&2
    exit 1
  fi
  if [ "$(id -u)" != 0 ]; then
    echo "loadtest setup: missing ${missing[*]}, and installing them needs root." >&2
    echo "Run: sudo apt-get install -y ${missing[*]}   then make loadtest again." >&2
    exit 1
  fi
  echo "loadtest setup: installing ${missing[*]} ..."
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

mkdir -p bin/tools
if ! bin/tools/fortio version 2>/dev/null | grep -q "^${FORTIO_VERSION}"; then
  echo "loadtest setup: installing fortio ${FORTIO_VERSION} into bin/tools ..."
  GOBIN="$PWD/bin/tools" GOFLAGS= go install "fortio.org/fortio@v${FORTIO_VERSION}"
fi

go build -o bin/ ./cmd/...
go build -o bin/loadtest ./bench/cmd/loadtest
