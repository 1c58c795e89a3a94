#!/usr/bin/env bash
# The cloudrun-emulator binary end to end: --port-file, --seed (YAML), --state-dump on SIGTERM,
# re-seeding from a dump, and clear errors for bad flags and seeds.
set -euo pipefail
EMULATOR="$1"
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

start() {  # start ARGS... ; sets PORT and PID
  rm -f "$WORK/port"
  "$EMULATOR" --listen 127.0.0.1:0 --port-file "$WORK/port" "$@" 2>>"$WORK/stderr" &
  PID=$!
  PIDS+=("$PID")
  for _ in $(seq 1 200); do
    [[ -s "$WORK/port" ]] && break
    kill -0 "$PID" 2>/dev/null || fail "emulator exited early: $(cat "$WORK/stderr")"
    sleep 0.05
  done
  [[ -s "$WORK/port" ]] || fail "no port file"
  PORT="$(cat "$WORK/port")"
}

cat >"$WORK/seed.yaml" <<'YAML'
config:
  reconcileDelay: 0s
services:
  - name: projects/demo/locations/us-central1/services/api
    labels: {team: core}
    template:
      containers:
        - image: us-docker.pkg.dev/demo/apps/api@sha256:1111111111111111111111111111111111111111111111111111111111111111
readiness:
  - image: "*:broken"
    outcome: FAIL
    reason: CONTAINER_MISSING
YAML

start --seed "$WORK/seed.yaml" --state-dump "$WORK/dump.json" --random-seed 5
[[ "$PORT" =~ ^[0-9]+$ ]] || fail "port file holds '$PORT'"
body="$(curl -fsS "http://127.0.0.1:$PORT/v2/projects/demo/locations/us-central1/services/api")"
grep -q '"labels":{"team":"core"}' <<<"$body" || fail "seeded service missing: $body"
grep -q '"terminalCondition":{[^}]*"CONDITION_SUCCEEDED"' <<<"$body" || fail "not converged: $body"
rules="$(curl -fsS "http://127.0.0.1:$PORT/_emulator/readiness")"
grep -q '"image":"\*:broken"' <<<"$rules" || fail "seeded readiness rule missing: $rules"
curl -fsS -X PATCH "http://127.0.0.1:$PORT/v2/projects/demo/locations/us-central1/services/api?updateMask=labels" \
  -d '{"labels":{"team":"edge"}}' >/dev/null
kill -TERM "$PID"
wait "$PID" || fail "SIGTERM exit status $?"
grep -q '"team": "edge"' "$WORK/dump.json" || fail "the dump lacks the last write"
echo "ok: seed, serve, SIGTERM dump"

start --seed "$WORK/dump.json"
body="$(curl -fsS "http://127.0.0.1:$PORT/v2/projects/demo/locations/us-central1/services/api")"
grep -q '"team":"edge"' <<<"$body" || fail "re-seeded from the dump: $body"
kill -INT "$PID"; wait "$PID" || fail "SIGINT exit status"
echo "ok: a dump seeds a new emulator"

set +e
out="$("$EMULATOR" --listen nonsense 2>&1)"; code=$?
set -e
[[ $code -eq 2 ]] || fail "bad --listen exit $code"
grep -q -- "--listen must be HOST:PORT" <<<"$out" || fail "bad --listen message: $out"
printf 'services:\n  - name: nope\n' >"$WORK/bad.yaml"
set +e
out="$("$EMULATOR" --seed "$WORK/bad.yaml" 2>&1)"; code=$?
set -e
[[ $code -eq 2 ]] || fail "bad seed exit $code"
grep -q "services\[0\].name" <<<"$out" || fail "bad seed message: $out"
echo "ok: usage errors exit 2 with the field named"
