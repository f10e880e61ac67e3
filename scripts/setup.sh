#!/usr/bin/env bash
# Installs what rfarm needs from Debian's packages (only what is missing)
# and builds it. Used by demo.sh and test.sh; safe to run again.
#
#   scripts/setup.sh [BUILD_DIR] [extra cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake pkg-config python3
  libzmq3-dev libprotobuf-c-dev protobuf-c-compiler libhiredis-dev
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev
  libjansson-dev libcmocka-dev libopenblas-dev libmicrohttpd-dev libjs-chart.js redis-server redis-tools ffmpeg python3-yaml
  python3-venv chromium chromium-driver
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

BUILD=${1:-build}
shift || true
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
