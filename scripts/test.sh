#!/usr/bin/env bash
# Everything CI checks: installs what is missing, builds, and runs the whole
# test suite twice: a normal build, then a build with AddressSanitizer and
# UndefinedBehaviorSanitizer (C path only: the sanitizers do not see into
# CUDA). Unit tests are cmocka; multi-process tests start their own Redis,
# coordinator and workers on loopback and stop them.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh build
# Test tooling from PyPI (selenium, prometheus_client), in a venv of its own.
if [ ! -x .test-venv/bin/python3 ] || ! .test-venv/bin/python3 -c 'import selenium, prometheus_client' 2>/dev/null; then
  /usr/bin/python3 -m venv .test-venv
  .test-venv/bin/pip install -q -r tests/requirements.txt
fi
(cd build && ctest --output-on-failure -j2)

scripts/setup.sh build-asan -DRFARM_SANITIZE=ON -DRFARM_CUDA=OFF
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-asan && ctest --output-on-failure -j2)
