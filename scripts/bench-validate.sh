#!/usr/bin/env bash
# Benchmark (not a test): validates a generated tree of N manifests (default 1000) and reports
# wall time and peak resident memory of `runway validate`. Target: under 2 s and 50 MB for 1,000.
# Usage: scripts/bench-validate.sh [N] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT="${1:-1000}"
RUNS="${2:-5}"
RUNWAY="${RUNWAY:-build/bin/runway}"
[[ -x "$RUNWAY" ]] || { echo "build first: scripts/test.sh or ninja -C build runway" >&2; exit 2; }

tree="$(mktemp -d)"
trap 'rm -rf "$tree"' EXIT
python3 - "$tree" "$COUNT" <<'PY'
import os, sys
root, count = sys.argv[1], int(sys.argv[2])
strategies = ["direct", "canary", "manual"]
for i in range(count):
    team = f"team-{i % 20:02d}"
    os.makedirs(os.path.join(root, team), exist_ok=True)
    strategy = strategies[i % 3]
    rollout = f"    strategy: {strategy}\n"
    if strategy != "direct":
        rollout += "    steps:\n      - {percent: 10, pause: 2m}\n      - {percent: 50, pause: 5m}\n"
    if strategy == "canary":
        rollout += ("    analysis:\n      prometheus:\n        address: http://prometheus:9090\n"
                    f"        query: 'sum(rate(errors{{service=\"svc-{i}\"}}[5m]))'\n"
                    "        maxValue: 0.01\n")
    digest = f"{i:064x}"
    with open(os.path.join(root, team, f"svc-{i}.yaml"), "w") as f:
        f.write(f"""apiVersion: runway.dev/v1alpha1
kind: CloudRunService
metadata:
  name: svc-{i}
  namespace: {team}
spec:
  project: bench-project-{i % 7}
  region: us-central1
  image: us-docker.pkg.dev/bench/app/svc-{i}@sha256:{digest}
  template:
    env:
      - {{name: LOG_LEVEL, value: info}}
      - {{name: SERVICE_INDEX, value: "{i}"}}
    scaling: {{min: 0, max: 10}}
    resources: {{cpu: "1", memory: 512Mi}}
  traffic:
    - {{revision: "@new", percent: 100, tag: current}}
    - {{revision: svc-{i}-00001-abc, percent: 0, tag: previous}}
  rollout:
{rollout}""")
PY

echo "tree: $COUNT manifests, $(du -sh "$tree" | cut -f1)"
for run in $(seq "$RUNS"); do
  /usr/bin/time -f "run $run: %e s wall, %U s user, %M KB peak RSS" \
    "$RUNWAY" validate "$tree" >/tmp/bench-validate.out 2>/tmp/bench-validate.time || {
      cat /tmp/bench-validate.out /tmp/bench-validate.time; exit 1; }
  tail -1 /tmp/bench-validate.time
done
tail -1 /tmp/bench-validate.out
