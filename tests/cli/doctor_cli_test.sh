#!/usr/bin/env bash
# `runway doctor` end to end: a reachable emulator and valid manifests pass; a stopped engine is
# explained with its fix; an unreachable Cloud Run endpoint and an invalid manifest fail (exit 1).
set -euo pipefail
RUNWAY="$1"
EMULATOR="$2"
WORK="$(mktemp -d)"
PID=""
PODMAN_PID=""
cleanup() {
  for pid in "$PID" "$PODMAN_PID"; do
    [[ -n "$pid" ]] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  done
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
rm "$WORK/m/bad.yaml"

# Cloud Build: checked for a manifest that builds there; an unreachable endpoint fails.
cat >"$WORK/m/worker.yaml" <<'YAML'
apiVersion: runway.dev/v1alpha1
kind: CloudRunService
metadata: {name: worker, namespace: demo}
spec:
  project: demo-project
  region: us-central1
  build:
    source: {git: {url: "https://github.com/demo/worker", revision: "3f2c1ab9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3"}}
    repository: us-docker.pkg.dev/demo-project/apps/worker
    builder: cloudBuild
  traffic: [{revision: "@new", percent: 100}]
YAML
out="$("$RUNWAY" doctor "$WORK/m" --cloudrun-endpoint "$endpoint" --cloudbuild-endpoint "$endpoint")" \
  || fail "doctor with a Cloud Build manifest failed: $out"
grep -q "\[ok\]   cloud build demo-project: .*builds.list answers" <<<"$out" \
  || fail "cloud build line: $out"
set +e
out="$("$RUNWAY" doctor "$WORK/m" --cloudrun-endpoint "$endpoint" --api-timeout 1s \
  --cloudbuild-endpoint "http://127.0.0.1:1/")"
code=$?
set -e
[[ $code -eq 1 ]] || fail "unreachable Cloud Build: exit $code"
grep -q "\[FAIL\] cloud build demo-project: builds.list.*refused" <<<"$out" \
  || fail "unreachable cloud build line: $out"
echo "ok: Cloud Build is checked for a manifest that builds there; unreachable fails"

# The other state of the engine: the real Podman API service up.
if ! command -v podman >/dev/null 2>&1; then
  echo "SKIP: podman is not installed (scripts/install-deps.sh installs it): engine-up not checked"
  exit 0
fi
mkdir -p "$WORK/podman-tmp"
printf '[storage]\ndriver = "vfs"\ngraphroot = "%s"\nrunroot = "%s"\n' "$WORK/podman-root" \
  "$WORK/podman-run" >"$WORK/storage.conf"
printf '[engine]\ntmp_dir = "%s"\nevents_logger = "none"\n' "$WORK/podman-tmp" >"$WORK/containers.conf"
CONTAINERS_STORAGE_CONF="$WORK/storage.conf" CONTAINERS_CONF="$WORK/containers.conf" \
  TMPDIR="$WORK/podman-tmp" podman --log-level=error system service --time=0 \
  "unix://$WORK/live.sock" 2>"$WORK/podman.log" &
PODMAN_PID=$!
for _ in $(seq 1 600); do
  curl -fsS --unix-socket "$WORK/live.sock" http://d/_ping >/dev/null 2>&1 && break
  sleep 0.1
done
out="$(CONTAINER_HOST="unix://$WORK/live.sock" "$RUNWAY" doctor "$WORK/m" --runtime podman \
  --cloudrun-endpoint "$endpoint" --cloudbuild-endpoint "$endpoint")" \
  || fail "doctor failed with podman up: $out"
grep -q "\[ok\]   engine podman unix://$WORK/live.sock: ok" <<<"$out" || fail "engine up line: $out"
grep -q "\[ok\]   container engine: local builds use podman at unix://$WORK/live.sock" <<<"$out" \
  || fail "chosen engine line: $out"
echo "ok: with the real Podman service up, doctor reports it ok and chooses it"

