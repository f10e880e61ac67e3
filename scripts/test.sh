#!/usr/bin/env bash
# Everything CI checks: installs what is missing, builds, and runs the whole
# test suite twice: a normal build, then a build with AddressSanitizer and
# UndefinedBehaviorSanitizer (C path only: the sanitizers do not see into
# CUDA). Unit tests are cmocka; multi-process tests start their own Redis,
# coordinator and workers on loopback and stop them.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh build
(cd build && ctest --output-on-failure -j2)

scripts/setup.sh build-asan -DRFARM_SANITIZE=ON -DRFARM_CUDA=OFF
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-asan && ctest --output-on-failure -j2)
