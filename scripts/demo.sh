#!/usr/bin/env bash
# Sets up and runs Runway's main job on this machine. For now that is validating the example
# manifests, what a GitOps repository's CI runs on every pull request.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake -S . -B build -G Ninja >/dev/null
ninja -C build runway >/dev/null

echo "\$ build/bin/runway validate manifests/examples"
build/bin/runway validate manifests/examples
echo
echo "\$ build/bin/runway validate tests/testdata/invalid/traffic-sum.yaml  # what a bad one looks like"
build/bin/runway validate tests/testdata/invalid/traffic-sum.yaml || echo "(exit $?: invalid, as expected)"
