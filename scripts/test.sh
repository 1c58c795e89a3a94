#!/usr/bin/env bash
# Sets up and runs every test: installs Debian packages (once), configures and builds with
# warnings as errors, runs ctest, and checks formatting. The README's test command; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

BUILD_DIR="${BUILD_DIR:-build}"
cmake -S . -B "$BUILD_DIR" -G Ninja -DRUNWAY_WERROR=ON >/dev/null
ninja -C "$BUILD_DIR"

echo "== clang-format"
mapfile -t sources < <(find controller tests -name '*.h' -o -name '*.cc' | sort)
clang-format --dry-run --Werror "${sources[@]}"
echo "formatted: ${#sources[@]} files"

echo "== ctest"
ctest --test-dir "$BUILD_DIR" --output-on-failure --timeout 600
