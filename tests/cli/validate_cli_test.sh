#!/usr/bin/env bash
# End-to-end checks of `runway validate`: exit codes (0 valid, 1 invalid, 2 usage), the
# `file:doc: field: message` lines, and `-o json` output parsed by a real JSON parser.
set -uo pipefail
RUNWAY="$1"
SOURCE_DIR="$2"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

expect_exit() {  # expected_code description command...
  local want="$1" what="$2"; shift 2
  "$@" >/tmp/runway-cli-$$.out 2>/tmp/runway-cli-$$.err
  local got=$?
  [[ $got == "$want" ]] || fail "$what: exit $got, want $want: $(cat /tmp/runway-cli-$$.out /tmp/runway-cli-$$.err)"
}

expect_exit 0 "examples are valid" "$RUNWAY" validate "$SOURCE_DIR/manifests/examples"
grep -q "5 valid, 0 invalid" /tmp/runway-cli-$$.out || fail "examples summary: $(cat /tmp/runway-cli-$$.out)"

expect_exit 1 "invalid corpus fails" "$RUNWAY" validate "$SOURCE_DIR/tests/testdata/invalid"
grep -q "tests/testdata/invalid/traffic-sum.yaml:1: spec.traffic: percents sum to 90" \
  /tmp/runway-cli-$$.out || fail "traffic-sum line missing"

expect_exit 1 "json output" "$RUNWAY" validate -o json "$SOURCE_DIR/tests/testdata/invalid/traffic-sum.yaml"
python3 - /tmp/runway-cli-$$.out <<'PY' || fail "json output shape"
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc["valid"] is False, doc
err = doc["errors"][0]
assert err["field"] == "spec.traffic" and err["document"] == 1 and err["line"] == 10, err
assert "want exactly 100" in err["message"], err
PY

expect_exit 0 "json output, valid" "$RUNWAY" validate -o json "$SOURCE_DIR/manifests/examples"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["valid"] and len(d["manifests"]) == 5, d' \
  /tmp/runway-cli-$$.out || fail "json valid shape"

expect_exit 2 "missing path" "$RUNWAY" validate /nonexistent/manifests
grep -q "no such file or directory" /tmp/runway-cli-$$.err || fail "missing path message"
expect_exit 2 "no path" "$RUNWAY" validate
expect_exit 2 "unknown flag" "$RUNWAY" validate --bogus "$SOURCE_DIR/manifests/examples"
expect_exit 2 "bad output" "$RUNWAY" validate -o yaml "$SOURCE_DIR/manifests/examples"
expect_exit 2 "bad log level" "$RUNWAY" --log-level loud validate "$SOURCE_DIR/manifests/examples"

# JSON logs on stderr stay one valid object per line; debug shows the skipped ConfigMap.
expect_exit 0 "json logs" "$RUNWAY" --log-level debug --log-format json validate "$SOURCE_DIR/manifests/examples"
python3 - /tmp/runway-cli-$$.err <<'PY' || fail "json log lines"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert any("ConfigMap" in l["msg"] and l["level"] == "debug" for l in lines), lines
PY

expect_exit 0 "version" "$RUNWAY" version
rm -f /tmp/runway-cli-$$.out /tmp/runway-cli-$$.err
if ((failures > 0)); then echo "$failures failures" >&2; exit 1; fi
echo "validate CLI: all checks passed"
