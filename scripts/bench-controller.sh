#!/usr/bin/env bash
# Benchmarks of the controller against the emulator (not tests): steady-state resync of 1,000 and
# 10,000 services, change-to-PATCH latency, and 100 traffic changes through Runway and through a
# gcloud loop. Numbers, as ratios to the targets, in the output. Arguments go to the driver.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build}"
ninja -C "$BUILD_DIR" runway cloudrun-emulator >/dev/null
exec python3 scripts/bench_controller.py "$BUILD_DIR/bin/runway" "$BUILD_DIR/bin/cloudrun-emulator" "$@"
