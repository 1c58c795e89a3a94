#!/usr/bin/env python3
"""Progressive rollout and automatic rollback end to end (issue 7): the real `runway run` against
the emulator, and for analysis Debian's real Prometheus scraping the emulator's synthetic
per-revision metric.

Scenarios:
  1. canary 10% -> 50% -> 100% with passing analysis: the traffic history the emulator served is
     exactly the steps; 4 writes (dark, 10, 50, promote).
  2. rollbacks, one write each, and never a second attempt on the blocked revision over several
     resyncs: the revision fails; verify answers 500; analysis over its threshold; the revision
     is never Ready past progressDeadline. Then a new digest starts a new rollout.
  3. kill -9 during each canary step, restart: the rollout resumes at that step.
  4. manual: `runway promote` and `runway abort` (recorded on the service, surviving resyncs).

Usage: rollout_e2e_test.py PATH_TO_RUNWAY PATH_TO_CLOUDRUN_EMULATOR [SCENARIO...]
"""

import json
import os
import re
import shutil
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runway_e2e_test import (  # noqa: E402
    NAMESPACE, PROJECT, REGION, Failure, Scenario, expect, image, ok, run_scenarios,
    seed_service, short, start_prometheus, stop_process)

OLD = "api-00001-old"
REVISION_RE = re.compile(r"^api-r[0-9a-f]{10}$")


def rollout_manifest(letter, rollout):
    return "\n".join([
        "apiVersion: runway.dev/v1alpha1",
        "kind: CloudRunService",
        "metadata:",
        "  name: api",
        f"  namespace: {NAMESPACE}",
        "spec:",
        f"  project: {PROJECT}",
        f"  region: {REGION}",
        f"  image: {image('api', letter)}",
        "  traffic:",
        '    - {revision: "@new", percent: 100}',
        "  rollout:",
    ] + ["    " + line for line in rollout.strip().splitlines()]) + "\n"


class History:
    """Polls the service every 30 ms and records each distinct served split."""

    def __init__(self, sc):
        self.sc = sc
        self.splits = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def sample(self):
        try:
            s = self.sc.emulator.service()
            split = tuple(sorted((short(t.get("revision", "")), t.get("percent", 0))
                                 for t in s.get("trafficStatuses", []) if t.get("percent")))
            if not self.splits or self.splits[-1] != split:
                self.splits.append(split)
        except Exception:
            pass

    def loop(self):
        while not self.stop.is_set():
            self.sample()
            time.sleep(0.03)

    def candidate_percents(self, revision):
        out = []
        for split in self.splits:
            percent = dict(split).get(revision, 0)
            if not out or out[-1] != percent:
                out.append(percent)
        return out

    def close(self):
        self.stop.set()
        self.thread.join(timeout=5)
        self.sample()  # the state the test waited for, even if the poller had not seen it yet


class Rollouts:

    def __init__(self, runway, emulator):
        self.runway = runway
        self.emulator = emulator

    def scenario(self, title):
        return Scenario(self, title, {"services": [seed_service("api", "a", OLD)]})

    def run(self, sc, *extra):
        return sc.start_run("--poll-interval", "100ms", "--resync", "2s", *extra,
                            log_level="info")

    def writes(self, sc, since=0):
        return sc.emulator.real_patches(since)

    def candidate(self, sc):
        return sc.emulator.service()["template"]["revision"]

    def wait_rolled_back(self, sc, proc, reason):
        def rolled_back():
            s = sc.emulator.service()
            ann = s.get("annotations", {})
            return s if ann.get("runway.dev/phase") == "rolled-back" and \
                ann.get("runway.dev/rollback-reason", "").startswith(reason) else None
        return sc.wait_for(f"a rollback ({reason})", rolled_back, alive=proc)

    def assert_blocked(self, sc, proc, mark, what):
        """No write for three resyncs after the rollback; the old revision serves 100%."""
        lists = lambda: len([e for e in sc.emulator.requests(mark)  # noqa: E731
                             if e["route"] == "v2.services.list"])
        start = lists()
        sc.wait_for("three more resyncs", lambda: lists() >= start + 3, alive=proc)
        s = sc.emulator.service()
        served = {short(t.get("revision", "")): t.get("percent", 0)
                  for t in s.get("trafficStatuses", []) if t.get("percent")}
        expect(served == {OLD: 100}, f"{what}: the stable split is served again", served)
        return s

    # ---- 1 ---------------------------------------------------------------------------------------

    def test_canary_with_analysis(self, sc):
        if not shutil.which("prometheus"):
            raise Failure("prometheus is not installed; scripts/install-deps.sh installs it")
        prometheus, _ = start_prometheus(sc, {"cloudrun": f"127.0.0.1:{sc.emulator.port}"})
        rollout = f"""
strategy: canary
steps:
  - {{percent: 10, pause: 1s}}
  - {{percent: 50, pause: 1s}}
verify: {{path: /healthz, expectStatus: 200}}
analysis:
  prometheus:
    address: {prometheus}
    query: max(app_error_ratio{{revision="$REVISION"}})
    maxValue: 0.05
  interval: 1s
  inconclusive: pause
progressDeadline: 2m
"""
        sc.write("api.yaml", rollout_manifest("b", rollout))
        history = History(sc)
        try:
            proc, stderr_path = self.run(sc)
            sc.wait_for("the dark deploy", lambda: REVISION_RE.match(self.candidate(sc)),
                        alive=proc)
            revision = self.candidate(sc)
            sc.emulator.call("POST", "/_emulator/metrics", {
                "name": "app_error_ratio", "project": PROJECT, "location": REGION,
                "service": "api", "revision": revision, "value": 0.01})
            sc.wait_converged(revision, alive=proc)
        finally:
            history.close()
        percents = history.candidate_percents(revision)
        expect(percents == [0, 10, 50, 100],
               "canary: the traffic the emulator served went 0 -> 10 -> 50 -> 100", history.splits)
        writes = self.writes(sc)
        expect(len(writes) == 4, "canary: 4 writes (dark, 10%, 50%, promote)", len(writes))
        log = sc.run_stderr(stderr_path)
        expect("analysis passed" in log and "app_error_ratio" in log,
               "canary: the log shows the analysis query and its value", log[-2000:])
        stop_process(proc)

    # ---- 2 ---------------------------------------------------------------------------------------

    def rollback_case(self, sc, letter, rollout, reason, what, readiness=None, before=1):
        """`before`: writes before the rollback (the dark deploy, plus canary steps)."""
        if readiness:
            sc.emulator.call("POST", "/_emulator/readiness", readiness)
        mark = sc.emulator.mark()
        sc.write("api.yaml", rollout_manifest(letter, rollout))
        proc, stderr_path = self.run(sc, "--http-address", "127.0.0.1:0")
        started = time.monotonic()
        s = self.wait_rolled_back(sc, proc, reason)
        blocked = s["annotations"]["runway.dev/blocked"]
        writes = self.writes(sc, mark)
        expect(len(writes) == before + 1,
               f"{what}: rolled back with one write ({before} before it)", len(writes))
        self.assert_blocked(sc, proc, mark, what)
        expect(len(self.writes(sc, mark)) == before + 1,
               f"{what}: no second attempt on blocked revision {blocked} over 3 resyncs")
        log = sc.run_stderr(stderr_path)
        expect(f"Rolling back revision {blocked} ({reason}" in log,
               f"{what}: one log line says why", log[-1500:])
        # The pass that ran the failing gate (or saw the failure) also wrote the rollback:
        # its duration is the time from the gate to the rollback PATCH done.
        took = re.search(r"step=Rollback result=progressing writes=1 took=(\d+)ms", log)
        expect(took is not None, f"{what}: the rollback pass is logged with its duration")
        ok(f"{what}: gate to rollback PATCH (one pass) took {took.group(1)} ms")
        stop_process(proc)
        status = json.loads(sc.runway("status", "-o", "json").stdout)
        conditions = {c["type"]: c for c in status["services"][0]["conditions"]}
        expect(conditions.get("RolledBack", {}).get("reason") == reason or
               conditions.get("Ready", {}).get("reason") == "RolledBack",
               f"{what}: status shows the rollback", conditions)
        return time.monotonic() - started

    def test_rollbacks(self, sc):
        base = "strategy: direct\nverify: {path: /healthz, expectStatus: 200, retries: 1}\n"
        self.rollback_case(sc, "c", base, "RevisionFailed", "revision fails",
                           {"image": "*@sha256:cccc*", "outcome": "FAIL",
                            "reason": "HEALTH_CHECK_CONTAINER_ERROR", "delay": "0.2s"})
        self.rollback_case(sc, "d", base, "VerifyFailed", "verify answers 500",
                           {"image": "*@sha256:dddd*", "outcome": "READY", "serveStatus": 500})
        self.rollback_case(sc, "e", "strategy: direct\nprogressDeadline: 2s\n",
                           "ProgressDeadlineExceeded", "never Ready",
                           {"image": "*@sha256:eeee*", "outcome": "NEVER"})
        # A new digest (no rule: Ready, healthy) starts a new rollout and converges.
        mark = sc.emulator.mark()
        sc.write("api.yaml", rollout_manifest("f", base))
        proc, _ = self.run(sc)
        sc.wait_converged(REVISION_RE, alive=proc)
        expect(len(self.writes(sc, mark)) == 2, "a new digest: a new rollout (dark + promote)")
        stop_process(proc)

    def test_analysis_rollback(self, sc):
        # Analysis over threshold, against a real Prometheus scraping the emulator.
        if not shutil.which("prometheus"):
            raise Failure("prometheus is not installed; scripts/install-deps.sh installs it")
        prometheus, _ = start_prometheus(sc, {"cloudrun": f"127.0.0.1:{sc.emulator.port}"})
        # Every revision reports a 30% error ratio.
        sc.emulator.call("POST", "/_emulator/metrics", {
            "name": "app_error_ratio", "project": PROJECT, "location": REGION,
            "service": "api", "revision": "*", "value": 0.3})
        rollout = f"""
strategy: canary
steps: [{{percent: 20, pause: 1s}}]
analysis:
  prometheus:
    address: {prometheus}
    query: max(app_error_ratio{{service="$SERVICE"}})
    maxValue: 0.05
  interval: 1s
"""
        took = self.rollback_case(sc, "7", rollout, "AnalysisFailed", "analysis over threshold",
                                  before=2)
        ok(f"analysis: from start to rollback {took:.1f} s")
        s = sc.emulator.service()
        expect("0.3" in s["annotations"]["runway.dev/rollback-reason"] and
               "0.05" in s["annotations"]["runway.dev/rollback-reason"],
               "analysis: the reason names the value and the threshold",
               s["annotations"]["runway.dev/rollback-reason"])

    # ---- 3 ---------------------------------------------------------------------------------------

    def test_kill_at_each_step(self, sc):
        rollout = """
strategy: canary
steps:
  - {percent: 10, pause: 3s}
  - {percent: 50, pause: 3s}
"""
        sc.write("api.yaml", rollout_manifest("b", rollout))
        history = History(sc)
        try:
            for percent in (10, 50):
                proc, _ = self.run(sc)

                def at_step(p=percent):
                    s = sc.emulator.service()
                    served = {short(t.get("revision", "")): t.get("percent", 0)
                              for t in s.get("trafficStatuses", [])}
                    return REVISION_RE.match(s["template"]["revision"]) and \
                        served.get(s["template"]["revision"]) == p
                sc.wait_for(f"canary step {percent}%", at_step, alive=proc)
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                ok(f"kill -9 during the {percent}% step")
            proc, _ = self.run(sc)
            revision = self.candidate(sc)
            sc.wait_converged(revision, alive=proc)
        finally:
            history.close()
        percents = history.candidate_percents(revision)
        expect(percents == [0, 10, 50, 100],
               "kill: each restart resumed at its step (0 -> 10 -> 50 -> 100, no repeat)",
               history.splits)
        expect(len(self.writes(sc)) == 4, "kill: 4 writes in all", len(self.writes(sc)))
        stop_process(proc)

    # ---- 4 ---------------------------------------------------------------------------------------

    def decide(self, sc, decision):
        return sc.runway(decision, f"{NAMESPACE}/api", sc.manifests,
                         "--cloudrun-endpoint", sc.emulator.endpoint)

    def test_manual_promote_and_abort(self, sc):
        sc.write("api.yaml", rollout_manifest("b", "strategy: manual\n"))
        proc, _ = self.run(sc)
        sc.wait_for("awaiting promotion", lambda: sc.emulator.service().get("annotations", {})
                    .get("runway.dev/phase") == "awaiting", alive=proc)
        revision = self.candidate(sc)
        mark = sc.emulator.mark()
        lists = lambda: len([e for e in sc.emulator.requests(mark)  # noqa: E731
                             if e["route"] == "v2.services.list"])
        sc.wait_for("two resyncs", lambda: lists() >= 2, alive=proc)
        expect(not self.writes(sc, mark), "manual: no write while waiting, across resyncs")
        done = self.decide(sc, "promote")
        expect("Promoting (runway promote)" in done.stdout,
               "manual: runway promote moves traffic at once (one write)", done.stdout)
        sc.wait_converged(revision, alive=proc)
        ok("manual: promoted to 100% after `runway promote`")
        stop_process(proc)

        sc.write("api.yaml", rollout_manifest("c", "strategy: manual\n"))
        proc, _ = self.run(sc)
        sc.wait_for("awaiting promotion", lambda: sc.emulator.service().get("annotations", {})
                    .get("runway.dev/phase") == "awaiting" and self.candidate(sc) != revision,
                    alive=proc)
        aborted = self.candidate(sc)
        mark = sc.emulator.mark()
        done = self.decide(sc, "abort")
        expect("Rolling back revision" in done.stdout and len(self.writes(sc, mark)) == 1,
               "manual: runway abort rolls back at once, in one write", done.stdout)
        s = self.wait_rolled_back(sc, proc, "Aborted")
        served = {short(t.get("revision", "")): t.get("percent", 0)
                  for t in s.get("trafficStatuses", []) if t.get("percent")}
        expect(served == {revision: 100} and s["annotations"]["runway.dev/blocked"] == aborted,
               "manual: runway abort rolled back to the previous split and blocked the candidate",
               served)
        mark = sc.emulator.mark()
        sc.wait_for("two resyncs", lambda: len([e for e in sc.emulator.requests(mark)
                                                 if e["route"] == "v2.services.list"]) >= 2,
                    alive=proc)
        expect(not self.writes(sc, mark), "manual: the abort survives resyncs (no write)")
        failed = sc.runway("abort", f"{NAMESPACE}/api", sc.manifests, "--cloudrun-endpoint",
                           sc.emulator.endpoint, expect_code=1)
        expect("no rollout in progress" in failed.stderr,
               "manual: abort with nothing in progress explains itself", failed.stderr)
        stop_process(proc)


SCENARIOS = [
    (1, "canary with analysis from the real Prometheus", "test_canary_with_analysis"),
    (2, "rollbacks: failed, verify 500, never Ready; then a new digest", "test_rollbacks"),
    (3, "rollback: analysis over threshold", "test_analysis_rollback"),
    (4, "kill -9 at each canary step", "test_kill_at_each_step"),
    (5, "manual promote and abort", "test_manual_promote_and_abort"),
]


def main(argv):
    if len(argv) < 3:
        print("usage: rollout_e2e_test.py RUNWAY EMULATOR [N...]", file=sys.stderr)
        return 2
    test = Rollouts(os.path.abspath(argv[1]), os.path.abspath(argv[2]))
    return run_scenarios(test, SCENARIOS, {int(n) for n in argv[3:]}, "rollouts end to end")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
