#!/usr/bin/env bash
# The emulator against the real gcloud CLI (Cloud Run v1 and Cloud Build v1 commands) and the SDK's
# generated Cloud Run v2 client: see gcloud_conformance_test.py. google-cloud-cli is installed on
# the CI machines, though not from Debian's archive; where it is absent this test says so loudly
# and exits 77, which CTest reports as skipped (SKIP_RETURN_CODE 77), never as passed.
set -euo pipefail
EMULATOR="${1:?usage: gcloud_conformance_test.sh PATH_TO_CLOUDRUN_EMULATOR}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if ! command -v gcloud >/dev/null 2>&1; then
  cat <<'MSG'
##############################################################################################
##                                                                                          ##
##  SKIPPED: gcloud not installed (no `gcloud` on PATH), so the emulator's conformance with ##
##  the real gcloud CLI and the SDK's generated Cloud Run v2 client was NOT checked.        ##
##  Install google-cloud-cli (https://cloud.google.com/sdk/docs/install) and run this test  ##
##  again: ctest -R emulator.gcloud_conformance                                             ##
##                                                                                          ##
##############################################################################################
MSG
  exit 77
fi
if ! command -v python3 >/dev/null 2>&1; then
  echo "FAIL: gcloud is installed but python3 is not; the conformance driver needs it" >&2
  exit 1
fi
exec python3 "$HERE/gcloud_conformance_test.py" "$EMULATOR"
