#!/usr/bin/env bash
# `runway doctor` end to end: a reachable emulator and valid manifests pass; a stopped engine is
# explained with its fix; an unreachable Cloud Run endpoint and an invalid manifest fail (exit 1).
set -euo pipefail
RUNWAY="$1"
EMULATOR="$2"
WORK="$(mktemp -d)"
PID=""
cleanup() {
  [[ -n "$PID" ]] && { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$EMULATOR" --listen 127.0.0.1:0 --port-file "$WORK/port" 2>/dev/null &
PID=$!
for _ in $(seq 1 200); do [[ -s "$WORK/port" ]] && break; sleep 0.05; done
endpoint="http://127.0.0.1:$(cat "$WORK/port")/"
mkdir "$WORK/m"
cat >"$WORK/m/api.yaml" <<'YAML'
apiVersion: runway.dev/v1alpha1
kind: CloudRunService
metadata: {name: api, namespace: demo}
spec:
  project: demo-project
  region: us-central1
  image: us-docker.pkg.dev/demo-project/apps/api@sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb
  traffic: [{revision: "@new", percent: 100}]
YAML

# A socket file nobody listens on: the incident's "podman on PATH, service stopped".
python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.close()" \
  "$WORK/podman.sock"
out="$(CONTAINER_HOST="unix://$WORK/podman.sock" "$RUNWAY" doctor "$WORK/m" --runtime podman \
  --cloudrun-endpoint "$endpoint")" || fail "doctor failed on a healthy setup: $out"
grep -q "\[ok\]   manifests: 1 valid, 0 invalid" <<<"$out" || fail "manifests line: $out"
grep -q "\[ok\]   cloud run demo-project/us-central1" <<<"$out" || fail "cloud run line: $out"
grep -q "refused: podman is installed but its service is not running" <<<"$out" \
  || fail "stopped engine not explained: $out"
grep -q "podman machine start" <<<"$out" || fail "no fix named: $out"
echo "ok: healthy setup passes; the stopped engine is explained with its fix"

set +e
json="$("$RUNWAY" doctor "$WORK/m" -o json --cloudrun-endpoint "http://127.0.0.1:1/" \
  --api-timeout 1s)"
code=$?
set -e
[[ $code -eq 1 ]] || fail "unreachable Cloud Run: exit $code"
python3 -c '
import json, sys
report = json.loads(sys.argv[1])
assert report["ok"] is False, report
states = {c["check"]: c["state"] for c in report["checks"]}
assert states["cloud run demo-project/us-central1"] == "fail", states
' "$json" || fail "json report: $json"
echo "ok: an unreachable endpoint fails, -o json parses"

printf 'apiVersion: runway.dev/v1alpha1\nkind: CloudRunService\nmetadata: {name: bad}\nspec: {}\n' \
  >"$WORK/m/bad.yaml"
set +e
out="$("$RUNWAY" doctor "$WORK/m" --cloudrun-endpoint "$endpoint")"
code=$?
set -e
[[ $code -eq 1 ]] || fail "invalid manifest: exit $code"
grep -q "\[FAIL\] manifests: 1 valid, 1 invalid" <<<"$out" || fail "invalid manifest line: $out"
echo "ok: an invalid manifest fails the checklist"
