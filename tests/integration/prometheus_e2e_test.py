#!/usr/bin/env python3
"""The real Prometheus server watching the real Runway (issue 6).

One scenario: the emulator fails every Cloud Build of one service, a second service builds with
builder auto while `podman` is on PATH and its socket is stale (the incident), and a third is a
plain image. `runway run` serves /metrics on a free port; Debian's `prometheus` scrapes it every
second with the project's alert rules (helm/runway/files/alerts.yaml) evaluated every second.
The test then asks Prometheus' HTTP API for the failure counters and for the alerts, which must be
pending or firing: RunwayBuildFailures, RunwayConnectFailures (target podman) and
RunwayServiceStalled (pending: its `for` is 10m). It also checks /healthz, /readyz and
/api/v1/services, runs `promtool check metrics` on a real scrape, and checks the rules' and the
dashboard's metric names against that scrape.

Usage: prometheus_e2e_test.py PATH_TO_RUNWAY PATH_TO_CLOUDRUN_EMULATOR REPO_ROOT
Exit 0 pass, 1 fail, 77 skip (prometheus or promtool not installed).
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from builds_e2e_test import build_manifest, condition, scrape  # noqa: E402
from runway_e2e_test import (  # noqa: E402
    NAMESPACE, Scenario, expect, manifest, ok, run_scenarios, seed_service, start_prometheus,
    stop_process)

DEADLINE_S = 90  # Prometheus' first scrape comes ~5 s after start; rules need a few evaluations


class Test:

    def __init__(self, runway, emulator, root):
        self.runway = runway
        self.emulator = emulator
        self.root = root
        self.http = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def get(self, url, expect_status=200):
        try:
            with self.http.open(url, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            if expect_status is not None and error.code != expect_status:
                raise
            return error.code, error.read().decode()

    def prom_query(self, base, query):
        """The result vector; [] while Prometheus does not answer yet."""
        url = f"{base}/api/v1/query?query={urllib.parse.quote(query)}"
        try:
            _, text = self.get(url)
        except (urllib.error.URLError, OSError):
            return []
        doc = json.loads(text)
        return doc["data"]["result"] if doc.get("status") == "success" else []

    def prom_alerts(self, base):
        _, text = self.get(f"{base}/api/v1/alerts")
        return json.loads(text)["data"]["alerts"]

    def scenario(self, title):
        return Scenario(self, title, {"services": [seed_service("api", "a", "api-00001-old")]})

    def test_failures_and_alerts(self, sc):
        work = sc.work
        # The incident's engine: podman on PATH, its socket stale.
        bin_dir = os.path.join(work, "bin")
        os.makedirs(bin_dir)
        with open(os.path.join(bin_dir, "podman"), "w") as f:
            f.write("#!/bin/sh\nexit 1\n")
        os.chmod(os.path.join(bin_dir, "podman"), 0o755)
        stale = os.path.join(work, "podman.sock")
        s = socket.socket(socket.AF_UNIX)
        s.bind(stale)
        s.close()
        env = dict(os.environ)
        env.update({"PATH": bin_dir + os.pathsep + env.get("PATH", ""),
                    "CONTAINER_HOST": f"unix://{stale}",
                    "DOCKER_HOST": f"unix://{os.path.join(work, 'no-docker.sock')}",
                    "XDG_RUNTIME_DIR": os.path.join(work, "xdg")})
        sc.run_env = env

        sc.emulator.call("POST", "/_emulator/config", {"buildQueue": "0.1s", "buildWork": "0.3s"})
        sc.emulator.call("POST", "/_emulator/build-rules", {"rules": [
            {"source": "https://github.com/e2e/api#1*", "outcome": "FAILURE",
             "failureType": "USER_BUILD_STEP", "failureDetail": "step 0: exit 1"}]})
        sc.write("api.yaml", build_manifest("1", builder="cloudBuild"))
        worker = build_manifest("2", builder="auto").replace("name: api", "name: worker")
        sc.write("worker.yaml", worker)
        sc.write("web.yaml", manifest("web", "d"))

        port_file = os.path.join(work, "http.port")
        proc, stderr_path = sc.start_run("--cloudbuild-endpoint", sc.emulator.endpoint,
                                         "--poll-interval", "100ms", "--resync", "2s",
                                         "--http-address", "127.0.0.1:0",
                                         "--http-port-file", port_file, log_level="info")
        port = int(sc.wait_for("the metrics port", lambda: os.path.exists(port_file) and
                               open(port_file).read().strip(), alive=proc))
        base = f"http://127.0.0.1:{port}"
        sc.wait_for("readiness", lambda: self.get(base + "/readyz", None)[0] == 200, alive=proc)
        ok("/readyz answers 200 once the manifests are read and the first resync is done")
        status, body = self.get(base + "/healthz")
        expect(status == 200 and body.strip() == "ok", "/healthz answers 200 ok", body)
        sc.wait_for("BuildFailed for e2e/api in /api/v1/services",
                    lambda: any(item["key"] == f"{NAMESPACE}/api" and
                                condition(item, "BuildSucceeded").get("reason") == "BuildFailed"
                                for item in json.loads(self.get(base + "/api/v1/services")[1])
                                ["services"]), alive=proc)
        ok("/api/v1/services shows e2e/api BuildFailed (the data `runway status` shows)")
        sc.wait_for("web converged", lambda: sc.converged_on(re.compile(r"^web-r"), "web"),
                    alive=proc)

        # A real scrape: promtool lint, and the rules' and dashboard's names are all exported.
        text = scrape(port)
        scrape_file = os.path.join(work, "scrape.txt")
        with open(scrape_file, "w") as f:
            f.write(text)
        lint = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                              capture_output=True)
        expect(lint.returncode == 0, "promtool check metrics passes on a real scrape",
               lint.stdout + lint.stderr)
        names = subprocess.run(
            [sys.executable, os.path.join(self.root, "tests/observability/check_metric_names.py"),
             "--rules", os.path.join(self.root, "helm/runway/files/alerts.yaml"),
             "--dashboard", os.path.join(self.root, "helm/runway/files/dashboard.json"),
             "--exposition", scrape_file], capture_output=True, text=True)
        expect(names.returncode == 0,
               "every metric name in the alert rules and the dashboard is in the real scrape",
               names.stdout + names.stderr)

        # The real Prometheus, scraping every second, rules evaluated every second.
        prom, prometheus = start_prometheus(
            sc, {"runway": f"127.0.0.1:{port}"},
            [os.path.join(self.root, "helm/runway/files/alerts.yaml")])
        sc.wait_for("Prometheus' first scrape of runway",
                    lambda: self.prom_query(prom, 'up{job="runway"} == 1'),
                    deadline_s=DEADLINE_S, interval=0.5, alive=prometheus)
        ok("Prometheus scrapes runway (up == 1)")
        failures = sc.wait_for(
            "runway_build_failures_total in Prometheus",
            lambda: self.prom_query(
                prom, 'runway_build_failures_total{builder="cloudBuild",reason="BuildFailed"}'),
            deadline_s=DEADLINE_S, interval=0.5, alive=prometheus)
        expect(float(failures[0]["value"][1]) == 1,
               "Prometheus has runway_build_failures_total{reason=BuildFailed} 1", failures)
        refused = sc.wait_for(
            "runway_connect_failures_total{target=podman} in Prometheus",
            lambda: self.prom_query(
                prom, 'runway_connect_failures_total{target="podman",reason="refused"} > 0'),
            deadline_s=DEADLINE_S, interval=0.5, alive=prometheus)
        ok(f"Prometheus has runway_connect_failures_total{{target=podman,reason=refused}} "
           f"{refused[0]['value'][1]}")

        def alerts_by_name():
            return {(a["labels"]["alertname"], a["labels"].get("target", "")): a["state"]
                    for a in self.prom_alerts(prom)}
        wanted = [("RunwayBuildFailures", ""), ("RunwayConnectFailures", "podman"),
                  ("RunwayServiceStalled", "")]
        states = sc.wait_for(
            "the three alerts pending or firing",
            lambda: (lambda a: a if all(a.get(w) in ("pending", "firing") for w in wanted)
                     else None)(alerts_by_name()),
            deadline_s=DEADLINE_S, interval=0.5, alive=prometheus)
        expect(all(states[w] in ("pending", "firing") for w in wanted),
               "alerts: RunwayBuildFailures, RunwayConnectFailures{target=podman}, "
               "RunwayServiceStalled are pending or firing", states)
        expect(states[("RunwayBuildFailures", "")] == "firing",
               "alerts: RunwayBuildFailures (no `for`) is firing", states)
        quiet = [name for (name, _), state in states.items()
                 if name in ("RunwayDown", "RunwayNotSyncing", "RunwayNeverSynced")]
        expect(not quiet, "alerts: RunwayDown and the sync alerts stay quiet", states)
        since = self.prom_query(prom, "runway_seconds_since_last_sync")
        expect(since and 0 <= float(since[0]["value"][1]) < 30,
               "runway_seconds_since_last_sync is small while resyncs succeed", since)
        stop_process(prometheus)
        stop_process(proc)


def main(argv):
    if len(argv) < 4:
        print("usage: prometheus_e2e_test.py RUNWAY EMULATOR REPO_ROOT", file=sys.stderr)
        return 2
    for tool in ("prometheus", "promtool"):
        if not shutil.which(tool):
            print("#" * 80 + f"\n##  SKIPPED: `{tool}` is not installed; scripts/install-deps.sh "
                  "installs Debian's prometheus.\n" + "#" * 80, flush=True)
            return 77
    test = Test(os.path.abspath(argv[1]), os.path.abspath(argv[2]), os.path.abspath(argv[3]))
    scenarios = [(1, "failures and alerts through the real Prometheus",
                  "test_failures_and_alerts")]
    return run_scenarios(test, scenarios, set(), "Prometheus end to end")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
