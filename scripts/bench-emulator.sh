#!/usr/bin/env bash
# Benchmark (not a test): GET and PATCH throughput of cloudrun-emulator over keep-alive loopback
# connections, and the time to seed N services (default 10,000) through POST /_emulator/seed.
# Targets (issue 3): >= 5,000 GET/s, >= 1,000 PATCH/s, seed 10,000 in < 2 s on 2 cores.
# Usage: scripts/bench-emulator.sh [SERVICES] [SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
SERVICES="${1:-10000}"
SECONDS_PER_PHASE="${2:-3}"
CONNECTIONS="${3:-4}"
BUILD_DIR="${BUILD_DIR:-build}"
ninja -C "$BUILD_DIR" cloudrun-emulator emulator_bench >/dev/null

work="$(mktemp -d)"
"$BUILD_DIR/bin/cloudrun-emulator" --listen 127.0.0.1:0 --port-file "$work/port" \
  --max-body-bytes 268435456 2>"$work/stderr" &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 200); do [[ -s "$work/port" ]] && break; sleep 0.05; done
port="$(cat "$work/port")"

result="$("$BUILD_DIR/bin/emulator_bench" --port "$port" --services "$SERVICES" \
  --seconds "$SECONDS_PER_PHASE" --connections "$CONNECTIONS")"
rss_kb="$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")"
echo "$result"
python3 - "$result" "$rss_kb" <<'PY'
import json, sys
r = json.loads(sys.argv[1]); rss_mb = int(sys.argv[2]) / 1024
print(f"GET   {r['get_per_second']:8.0f}/s   target 5000/s  ratio {r['get_per_second']/5000:5.2f}")
print(f"PATCH {r['patch_per_second']:8.0f}/s   target 1000/s  ratio {r['patch_per_second']/1000:5.2f}")
print(f"LIST(pageSize=100) {r['list100_per_second']:5.0f}/s")
print(f"seed {r['services']} services {r['seed_seconds']:.2f} s   target 2 s  "
      f"ratio {2/r['seed_seconds'] if r['seed_seconds'] else 0:5.2f}")
print(f"emulator peak RSS {rss_mb:.0f} MB")
PY
