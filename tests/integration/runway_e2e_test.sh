#!/usr/bin/env bash
# Runway end to end against the Cloud Run emulator: plan, dark deploy and promote, drift made by
# the real gcloud, injected API faults, kill -9 at each rollout phase, `runway run` with inotify
# and SIGTERM, suspend, and an invalid manifest next to a valid one. See runway_e2e_test.py.
# Without gcloud on PATH the drift scenario says so loudly and is skipped; the others still run.
set -euo pipefail
RUNWAY="${1:?usage: runway_e2e_test.sh PATH_TO_RUNWAY PATH_TO_CLOUDRUN_EMULATOR [SCENARIO...]}"
EMULATOR="${2:?usage: runway_e2e_test.sh PATH_TO_RUNWAY PATH_TO_CLOUDRUN_EMULATOR [SCENARIO...]}"
shift 2
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if ! command -v python3 >/dev/null 2>&1; then
  echo "FAIL: python3 is not installed; the end-to-end driver needs it" >&2
  exit 1
fi
exec python3 "$HERE/runway_e2e_test.py" "$RUNWAY" "$EMULATOR" "$@"
