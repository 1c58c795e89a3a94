#!/usr/bin/env bash
# Sets up and runs Runway's main job on this machine. For now that is validating the example
# manifests (what a GitOps repository's CI runs on every pull request), then the runbook Runway
# automates, done by hand against the local Cloud Run emulator: deploy dark, verify, promote.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake -S . -B build -G Ninja >/dev/null
ninja -C build runway cloudrun-emulator >/dev/null

echo "\$ build/bin/runway validate manifests/examples"
build/bin/runway validate manifests/examples
echo
echo "\$ build/bin/runway validate tests/testdata/invalid/traffic-sum.yaml  # what a bad one looks like"
build/bin/runway validate tests/testdata/invalid/traffic-sum.yaml || echo "(exit $?: invalid, as expected)"

echo
echo "== the local Cloud Run emulator (docs/emulator.md)"
work="$(mktemp -d)"
build/bin/cloudrun-emulator --listen 127.0.0.1:0 --port-file "$work/port" --reconcile-delay 0s \
  2>"$work/emulator.log" &
emulator=$!
trap 'kill "$emulator" 2>/dev/null; wait "$emulator" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 200); do [[ -s "$work/port" ]] && break; sleep 0.05; done
api="http://127.0.0.1:$(cat "$work/port")"
svc="$api/v2/projects/demo/locations/us-central1/services"
cat >"$work/show.py" <<'PY'
import json, sys
s = json.load(sys.stdin)
s = s.get("response", s)
split = ", ".join(f"{t.get('revision')} {t.get('percent', 0)}%" + (f" tag={t['tag']}" if "tag" in t else "")
                  for t in s.get("trafficStatuses", []))
print("  generation", s["generation"], "|", s["terminalCondition"]["state"], "| traffic:", split)
PY
show() { python3 "$work/show.py"; }
stable_image="us-docker.pkg.dev/demo/apps/backend@sha256:$(printf 'a%.0s' {1..64})"
new_image="us-docker.pkg.dev/demo/apps/backend@sha256:$(printf 'b%.0s' {1..64})"
echo "create backend with the stable image"
curl -fsS -X POST "$svc?serviceId=backend" -d "{\"template\":{\"revision\":\"backend-stable\",
  \"containers\":[{\"image\":\"$stable_image\"}]}}" | show
echo "deploy the new image dark: a new revision, tagged, no traffic"
curl -fsS -X PATCH "$svc/backend" -d "{\"template\":{\"revision\":\"backend-new\",
  \"containers\":[{\"image\":\"$new_image\"}]},\"traffic\":[
  {\"revision\":\"backend-stable\",\"percent\":100},{\"revision\":\"backend-new\",\"tag\":\"candidate\"}]}" | show
echo "verify the candidate on its tag URL"
curl -fsS -o /dev/null -w "  GET $api/_tag/demo/us-central1/backend/candidate/healthz -> %{http_code}\n" \
  "$api/_tag/demo/us-central1/backend/candidate/healthz"
echo "promote: all traffic to the new revision"
curl -fsS -X PATCH "$svc/backend?updateMask=traffic" \
  -d '{"traffic":[{"revision":"backend-new","percent":100}]}' | show
echo "requests the emulator saw: $(curl -fsS "$api/_emulator/counters" | python3 -c \
  'import json,sys; c=json.load(sys.stdin); print(c["reads"], "reads,", c["writes"], "writes")')"
