#!/usr/bin/env bash
# Checks helm/runway/files/{alerts.yaml,alerts_test.yaml,dashboard.json}:
#   promtool check rules, promtool test rules (unit tests), the dashboard is JSON, and every
#   metric name in the rules and the dashboard is in docs/metrics.md (check_metric_names.py);
#   then a negative self-check: a made-up metric in the dashboard must make the checker fail.
# Usage: alerts_dashboard_test.sh REPO_ROOT      Exit 0 pass, 1 fail, 77 skip (no promtool).
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 REPO_ROOT" >&2
  exit 2
fi
root=$(cd "$1" && pwd)
files="$root/helm/runway/files"
checker="$root/tests/observability/check_metric_names.py"

if ! command -v promtool >/dev/null 2>&1; then
  {
    echo "########################################################################"
    echo "## SKIP: promtool not found: alerts and dashboard NOT checked."
    echo "## Install it with scripts/install-deps.sh (the Debian package"
    echo "## 'prometheus' provides promtool), then run this test again."
    echo "########################################################################"
  } >&2
  exit 77
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
step() { echo "== $*"; }

step "promtool check rules"
promtool check rules "$files/alerts.yaml" || fail "promtool check rules"

step "promtool test rules"
promtool test rules "$files/alerts_test.yaml" || fail "promtool test rules"

step "dashboard is JSON"
python3 -m json.tool "$files/dashboard.json" >/dev/null || fail "dashboard.json is not valid JSON"

step "metric names against docs/metrics.md"
python3 "$checker" --rules "$files/alerts.yaml" --dashboard "$files/dashboard.json" \
  --metrics-doc "$root/docs/metrics.md" || fail "unknown metric names (above)"

step "negative self-check: a made-up metric must be caught"
# Rename the metric in one expression of a panel nested in a collapsed row (so the checker's walk
# into rows is covered too).
python3 - "$files/dashboard.json" "$tmp/dashboard.json" <<'EOF'
import json, sys
src, dst = sys.argv[1], sys.argv[2]
dash = json.load(open(src))
for row in dash["panels"]:
    for p in row.get("panels") or []:
        for t in p.get("targets") or []:
            if "runway_api_requests_total" in t.get("expr", ""):
                t["expr"] = t["expr"].replace("runway_api_requests_total",
                                              "runway_does_not_exist_total")
                json.dump(dash, open(dst, "w"), indent=2)
                sys.exit(0)
sys.exit("no nested panel expression with runway_api_requests_total to change")
EOF
set +e
python3 "$checker" --rules "$files/alerts.yaml" --dashboard "$tmp/dashboard.json" \
  --metrics-doc "$root/docs/metrics.md" >"$tmp/out" 2>&1
rc=$?
set -e
cat "$tmp/out"
[[ $rc -eq 1 ]] || fail "checker exited $rc on a made-up metric, want 1"
grep -q "unknown metric runway_does_not_exist_total" "$tmp/out" ||
  fail "checker did not name runway_does_not_exist_total"

echo "PASS: alerts and dashboard"
