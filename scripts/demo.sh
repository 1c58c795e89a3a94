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
echo "== Runway against the local Cloud Run emulator (docs/emulator.md)"
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
build/bin/cloudrun-emulator --listen 127.0.0.1:0 --port-file "$work/port" \
  --seed scripts/demo/seed.yaml 2>"$work/emulator.log" &
pids+=($!)
for _ in $(seq 1 200); do [[ -s "$work/port" ]] && break; sleep 0.05; done
api="http://127.0.0.1:$(cat "$work/port")"
cp -r manifests/examples "$work/manifests"
# The canary example pauses minutes and asks a cluster's Prometheus; for the demo its steps pause
# one second and the analysis gate is left out (tests/integration/rollout_e2e_test.py runs it
# against a real Prometheus).
python3 - "$work/manifests/frontend-canary.yaml" <<'PY'
import re, sys
path = sys.argv[1]
text = open(path).read()
text = re.sub(r"pause: \d+m", "pause: 1s", text)
text = re.sub(r"\n    analysis:\n(?:      .*\n|        .*\n|          .*\n)*", "\n", text)
open(path, "w").write(text)
PY
endpoints=(--cloudrun-endpoint "$api/" --cloudbuild-endpoint "$api/")
flags=("${endpoints[@]}" --state-dir "$work/status" --poll-interval 100ms)
backend="$api/v2/projects/netra-staging/locations/us-central1/services/netra-backend-staging"
cat >"$work/show.py" <<'PY'
import json, sys
s = json.load(sys.stdin)
split = ", ".join(f"{t.get('revision')} {t.get('percent', 0)}%" + (f" (tag {t['tag']})" if "tag" in t else "")
                  for t in s.get("trafficStatuses", []))
print(f"  Cloud Run: generation {s['generation']}, {s['terminalCondition']['state']}, serving: {split}")
PY
show() { curl -fsS "$backend" | python3 "$work/show.py"; }

echo "Before: the emulator serves what was deployed by hand."
show
echo
echo "\$ runway plan manifests/   # what would change; writes nothing"
build/bin/runway plan "$work/manifests" "${endpoints[@]}" || echo "(exit $?: 2 = changes pending)"
echo
echo "\$ runway apply manifests/  # build what needs building, dark deploy, wait, promote"
echo "  (the worker builds with podman if its service answers; podman is installed here but its"
echo "   service is not running: the incident. Runway says so, and builds in Cloud Build instead)"
build/bin/runway --log-level warn apply "$work/manifests" "${flags[@]}" \
  || echo "(exit $?: something did not converge)"
show
echo
echo "\$ runway status"
build/bin/runway status --state-dir "$work/status"
echo
echo "Now the controller runs, and the backend manifest gets a new image digest:"
build/bin/runway --log-level warn run "$work/manifests" "${flags[@]}" --resync 1m \
  --http-address 127.0.0.1:0 --http-port-file "$work/http.port" &
pids+=($!)
sleep 1
new="gcr.io/netra-staging/netra-backend-staging@sha256:$(printf 'b%.0s' {1..64})"
sed -i "s|image: gcr.io/netra-staging/netra-backend-staging@sha256:[0-9a-f]*|image: $new|" \
  "$work/manifests/backend-direct.yaml"
echo "  saved backend-direct.yaml with image ...@sha256:bbbb..."
seen_dark=""
for _ in $(seq 1 100); do
  state="$(curl -fsS "$backend")"
  if [[ -z "$seen_dark" ]] && grep -q '"tag":"candidate"' <<<"$state" && grep -q '"reconciling":true' <<<"$state"; then
    echo "  dark deploy: new revision created and tagged, traffic not moved yet"
    python3 "$work/show.py" <<<"$state"
    seen_dark=1
  fi
  if [[ -n "$seen_dark" ]] && ! grep -q '"tag":"candidate"' <<<"$state"; then
    echo "  promoted: one traffic write once the candidate was Ready"
    python3 "$work/show.py" <<<"$state"
    break
  fi
  sleep 0.1
done
echo "requests the emulator saw: $(curl -fsS "$api/_emulator/counters" | python3 -c \
  'import json,sys; c=json.load(sys.stdin); print(c["reads"], "reads,", c["writes"], "writes")')"
for _ in $(seq 1 100); do [[ -s "$work/http.port" ]] && break; sleep 0.05; done
echo
echo "\$ curl /metrics | grep -E 'runway_(builds|connect_failures)_total'   # what an SRE alerts on"
curl -fsS "http://127.0.0.1:$(cat "$work/http.port")/metrics" |
  grep -E '^runway_(builds|connect_failures)_total' || echo "  (no build or connect failure yet)"
