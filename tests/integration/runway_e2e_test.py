#!/usr/bin/env python3
"""Runway end to end: the real `runway` binary against the Cloud Run emulator (issue 4).

Each scenario starts a fresh emulator (port 0, port file, --reconcile-delay 100ms), writes its
manifests into a temporary directory, gives runway a temporary --state-dir, runs `runway plan`,
`apply`, `run` or `status` as a user would, and asserts what happened through the emulator's v2
API, its request log (/_emulator/requests) and counters (/_emulator/counters). Scenario 3 also
drives the real gcloud CLI against the emulator (gcp-api.md §3.1); without gcloud it is skipped,
loudly.

Usage: runway_e2e_test.py PATH_TO_RUNWAY PATH_TO_CLOUDRUN_EMULATOR [SCENARIO_NUMBER...]
Standard library only. Prints one "ok: ..." line per check; a failing scenario prints "FAIL: ...",
runway's stderr and the tail of the emulator's request log, and the next scenario still runs.
Exit 0 when every scenario passed, 1 otherwise. Every process a scenario starts is stopped in a
finally block (SIGTERM, then SIGKILL). RUNWAY_E2E_KEEP=1 keeps each scenario's directory (manifests,
state, runway and emulator logs) for a look afterwards.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from gcloud_env import gcloud_env  # noqa: E402

PROJECT = "e2e-proj"  # Cloud Run project ids are 6-30 characters
REGION = "us-central1"
NAMESPACE = "e2e"
REPO = f"us-docker.pkg.dev/{PROJECT}/apps"
OLD_REVISION = "api-00001-old"
REVISION_RE = re.compile(r"^api-r[0-9a-f]{10}$")
LATEST = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"
BY_REVISION = "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION"
COMMAND_TIMEOUT_S = 180  # one runway or gcloud command; far above what any should take
DEADLINE_S = 60          # waiting for a state; generous for a slow machine


def image(service, letter):
    return f"{REPO}/{service}@sha256:{letter * 64}"


class Failure(Exception):
    pass


def ok(what):
    print(f"ok: {what}", flush=True)


def expect(condition, what, detail=None):
    if not condition:
        shown = json.dumps(detail, default=str)[:3000] if detail is not None else ""
        raise Failure(f"{what}: {shown}" if shown else what)
    ok(what)


def short(name):
    return (name or "").rsplit("/", 1)[-1]


def split_of(service, key="trafficStatuses"):
    """{(revision, tag): percent} of a v2 Service's traffic or trafficStatuses (LATEST resolved
    through the status, zero-percent untagged targets dropped)."""
    out = {}
    for t in service.get(key, []):
        revision = short(t.get("revision", "")) or ("LATEST" if t.get("type") == LATEST else "")
        if t.get("percent", 0) == 0 and not t.get("tag"):
            continue
        out[(revision, t.get("tag", ""))] = t.get("percent", 0)
    return out


def manifest(service, digest_letter, *, name=None, drift=None, suspend=False, traffic=None):
    lines = [
        "apiVersion: runway.dev/v1alpha1",
        "kind: CloudRunService",
        "metadata:",
        f"  name: {name or service}",
        f"  namespace: {NAMESPACE}",
        "spec:",
        f"  project: {PROJECT}",
        f"  region: {REGION}",
        f"  service: {service}",
        f"  image: {image(service, digest_letter)}",
        "  traffic:",
    ]
    lines += [f"    - {t}" for t in (traffic or ['{revision: "@new", percent: 100}'])]
    if drift:
        lines.append(f"  driftPolicy: {drift}")
    if suspend:
        lines.append("  suspend: true")
    return "\n".join(lines) + "\n"


def seed_service(service, letter, revision):
    return {
        "name": f"projects/{PROJECT}/locations/{REGION}/services/{service}",
        "template": {"revision": revision, "containers": [{"image": image(service, letter)}]},
        "traffic": [{"type": LATEST, "percent": 100}],
    }


class Emulator:

    def __init__(self, binary, work, seed=None):
        self.binary = binary
        self.work = work
        self.seed = seed
        self.proc = None
        self.port = None
        self.log_file = None
        # urllib must reach the emulator directly, whatever proxy the environment names.
        self.http = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def start(self):
        port_file = os.path.join(self.work, "emulator.port")
        argv = [self.binary, "--listen", "127.0.0.1:0", "--port-file", port_file,
                "--reconcile-delay", "100ms"]
        if self.seed is not None:
            seed_path = os.path.join(self.work, "seed.json")
            with open(seed_path, "w") as f:
                json.dump(self.seed, f)
            argv += ["--seed", seed_path]
        self.log_file = open(os.path.join(self.work, "emulator.log"), "wb")
        self.proc = subprocess.Popen(argv, stdout=self.log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Failure(f"the emulator exited early with status {self.proc.returncode}")
            if os.path.exists(port_file):
                text = open(port_file).read().strip()
                if text.isdigit():
                    self.port = int(text)
                    break
            time.sleep(0.02)
        if not self.port:
            raise Failure(f"the emulator wrote no port file within {DEADLINE_S} s")
        self.base = f"http://127.0.0.1:{self.port}"
        self.endpoint = self.base + "/"

    def stop(self):
        stop_process(self.proc)
        if self.log_file:
            self.log_file.close()
            self.log_file = None

    def call(self, method, path, body=None, expect_status=200, timeout=30):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with self.http.open(request, timeout=timeout) as response:
                status, text = response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read().decode()
        if expect_status is not None and status != expect_status:
            raise Failure(f"{method} {path} answered {status}, expected {expect_status}: "
                          f"{text[:2000]}")
        return json.loads(text) if text else {}

    def call_retrying(self, method, path, body=None, deadline_s=DEADLINE_S, expect_status=200):
        """Like call(), but rides out a refused or stalled connection (an injected fault)."""
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                return self.call(method, path, body, expect_status=expect_status, timeout=5)
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def service_path(self, service="api"):
        return f"/v2/projects/{PROJECT}/locations/{REGION}/services/{service}"

    def service(self, service="api", missing_ok=False):
        """The v2 Service; {} when it does not exist and `missing_ok`."""
        got = self.call_retrying("GET", self.service_path(service),
                                 expect_status=None if missing_ok else 200)
        return {} if missing_ok and "error" in got else got

    def revisions(self, service="api"):
        listed = self.call_retrying("GET", self.service_path(service) + "/revisions")
        return [short(r["name"]) for r in listed.get("revisions", [])]

    def requests(self, since=0):
        return self.call_retrying("GET", f"/_emulator/requests?since={since}")["requests"]

    def mark(self):
        return self.call_retrying("GET", "/_emulator/requests?since=999999999")["last"]

    def counters(self):
        return self.call_retrying("GET", "/_emulator/counters")

    def patches(self, since=0, service="api"):
        return [e for e in self.requests(since)
                if e["method"] == "PATCH" and e["path"] == self.service_path(service)]

    def real_patches(self, since=0, service="api"):
        """PATCHes that changed something: not validateOnly, answered 200."""
        return [e for e in self.patches(since, service)
                if "validateOnly=true" not in e.get("query", "") and e["status"] == 200]

    def log_tail(self, count=25):
        try:
            entries = self.call("GET", "/_emulator/requests", timeout=5)["requests"][-count:]
        except Exception as error:  # the emulator may be the thing that broke
            return f"  (no request log: {error})"
        return "\n".join(
            f"  #{e['seq']} {e['method']} {e['path']}{'?' + e['query'] if e.get('query') else ''}"
            f" -> {e['status']} [{e['route']}]{' fault=' + e['fault'] if e.get('fault') else ''}"
            for e in entries)


def stop_process(proc, sig=signal.SIGTERM, grace_s=10):
    if proc is None or proc.poll() is not None:
        return
    try:
        proc.send_signal(sig)
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Scenario:
    """One scenario's emulator, manifest directory, state directory and runway processes."""

    def __init__(self, test, title, seed=None):
        self.test = test
        self.title = title
        self.work = tempfile.mkdtemp(prefix="runway-e2e-")
        self.manifests = os.path.join(self.work, "manifests")
        self.state_dir = os.path.join(self.work, "state")
        os.makedirs(self.manifests)
        self.emulator = Emulator(test.emulator, self.work, seed)
        self.processes = []  # every `runway run` started: (proc, stderr path)
        self.outputs = []    # (label, stdout, stderr) of finished runway commands
        self.run_count = 0
        self.run_env = None  # the environment of `runway run` (None: this process's)

    def __enter__(self):
        self.emulator.start()
        return self

    def __exit__(self, *exc):
        for proc, _ in self.processes:
            stop_process(proc)
        self.emulator.stop()
        if os.environ.get("RUNWAY_E2E_KEEP"):
            print(f"   (kept {self.work})", flush=True)
        else:
            shutil.rmtree(self.work, ignore_errors=True)
        return False

    # ---- manifests ------------------------------------------------------------------------------

    def write(self, filename, text):
        with open(os.path.join(self.manifests, filename), "w") as f:
            f.write(text)

    # ---- runway ---------------------------------------------------------------------------------

    def runway_argv(self, command, *args, log_level=None):
        argv = [self.test.runway]
        if log_level:
            argv += ["--log-level", log_level]
        argv.append(command)
        if command in ("plan", "apply", "run"):
            argv += [self.manifests, "--cloudrun-endpoint", self.emulator.endpoint]
        if command in ("apply", "run", "status"):
            argv += ["--state-dir", self.state_dir]
        return argv + list(args)

    def runway(self, command, *args, expect_code=0):
        argv = self.runway_argv(command, *args)
        label = "runway " + " ".join([command, *args])
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
        except subprocess.TimeoutExpired as error:
            self.outputs.append((label, error.stdout or "", error.stderr or ""))
            raise Failure(f"{label}: still running after {COMMAND_TIMEOUT_S} s")
        self.outputs.append((label, done.stdout, done.stderr))
        if expect_code is not None and done.returncode != expect_code:
            raise Failure(f"{label} exited {done.returncode}, expected {expect_code}\n"
                          f"--- stdout ---\n{done.stdout[-3000:]}")
        return done

    def start_run(self, *args, log_level="debug"):
        """Starts `runway run` in the background; its stderr goes to a file."""
        self.run_count += 1
        stderr_path = os.path.join(self.work, f"run-{self.run_count}.stderr")
        argv = self.runway_argv("run", *args, log_level=log_level)
        with open(stderr_path, "wb") as stderr:
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=stderr,
                                    env=self.run_env)
        self.processes.append((proc, stderr_path))
        return proc, stderr_path

    def run_stderr(self, stderr_path):
        with open(stderr_path, errors="replace") as f:
            return f.read()

    # ---- waiting --------------------------------------------------------------------------------

    def wait_for(self, what, predicate, deadline_s=DEADLINE_S, interval=0.05, alive=None):
        """Polls `predicate` until it returns something truthy; fails after `deadline_s`, or when
        the process `alive` exits first."""
        deadline = time.monotonic() + deadline_s
        while True:
            value = predicate()
            if value:
                return value
            if alive is not None and alive.poll() is not None:
                raise Failure(f"runway exited ({alive.returncode}) while waiting for {what}")
            if time.monotonic() > deadline:
                raise Failure(f"no {what} within {deadline_s} s")
            time.sleep(interval)

    def converged_on(self, revision_re=REVISION_RE, service="api"):
        """The v2 service when it has settled with 100% on one revision matching `revision_re`."""
        s = self.emulator.service(service, missing_ok=True)
        if not s or s.get("reconciling") or s.get("observedGeneration") != s.get("generation"):
            return None
        if s.get("terminalCondition", {}).get("state") != "CONDITION_SUCCEEDED":
            return None
        split = split_of(s)
        if len(split) != 1:
            return None
        (revision, tag), percent = next(iter(split.items()))
        if percent != 100 or tag or not revision_re.match(revision):
            return None
        return s

    def wait_converged(self, revision, service="api", alive=None):
        pattern = re.compile("^" + re.escape(revision) + "$") if isinstance(revision, str) \
            else revision
        return self.wait_for(f"convergence of {service} on {revision}",
                             lambda: self.converged_on(pattern, service), alive=alive)

    def report_failure(self):
        for label, stdout, stderr in self.outputs[-2:]:
            print(f"--- {label}: stdout (tail) ---\n{stdout[-2000:]}")
            print(f"--- {label}: stderr (tail) ---\n{stderr[-4000:]}")
        for proc, path in self.processes[-2:]:
            state = "running" if proc.poll() is None else f"exited {proc.returncode}"
            print(f"--- runway run ({state}): stderr (tail) ---\n{self.run_stderr(path)[-4000:]}")
        if self.emulator.port:
            print("--- emulator request log (tail) ---\n" + self.emulator.log_tail())


def status_of(scenario):
    """(Ready status, reason) of e2e/api from `runway status -o json`."""
    done = scenario.runway("status", "-o", "json")
    doc = json.loads(done.stdout)
    for item in doc["services"]:
        if item["key"] == f"{NAMESPACE}/api":
            ready = [c for c in item["conditions"] if c["type"] == "Ready"]
            return (ready[0]["status"], ready[0]["reason"]) if ready else (None, None)
    return (None, None)


class E2E:

    def __init__(self, runway, emulator):
        self.runway = runway
        self.emulator = emulator
        self.gcloud = shutil.which("gcloud")

    def scenario(self, title, seed_services=("api",)):
        seed = {"services": [seed_service(s, "a", f"{s}-00001-old") for s in seed_services]}
        return Scenario(self, title, seed)

    # ---- 1 ---------------------------------------------------------------------------------------

    def test_plan_writes_nothing(self, sc):
        sc.write("api.yaml", manifest("api", "b"))
        before = sc.emulator.service()
        done = sc.runway("plan", expect_code=2)
        expect(re.search(r"DeployDark", done.stdout) and OLD_REVISION in done.stdout,
               "plan: exit 2, shows DeployDark from the seeded revision", done.stdout)
        patches = sc.emulator.patches()
        expect(patches and all("validateOnly=true" in p.get("query", "") for p in patches),
               f"plan: every PATCH ({len(patches)}) was validateOnly=true",
               [p.get("query") for p in patches])
        after = sc.emulator.service()
        expect(all(after.get(k) == before.get(k)
                   for k in ("etag", "generation", "template", "traffic")) and
               sc.emulator.revisions() == [OLD_REVISION],
               "plan: the service is unchanged (etag, generation, template, traffic, revisions)")
        done = sc.runway("plan", "-o", "json", expect_code=2)
        doc = json.loads(done.stdout)
        item = doc["services"][0]
        expect(doc["changes"] is True and doc["errors"] is False and
               item["step"] == "DeployDark" and REVISION_RE.match(item["revision"]) and
               item["serverCheck"] == "ok",
               "plan -o json: parses; changes, DeployDark, revision api-r<hash>, server check ok",
               doc)
        counters = sc.emulator.counters()
        expect(counters["writes"] == len(sc.emulator.patches()) and
               not sc.emulator.real_patches(),
               "plan: the emulator counted only the validateOnly writes", counters)

    # ---- 2 ---------------------------------------------------------------------------------------

    def test_dark_deploy_then_promote(self, sc):
        sc.write("api.yaml", manifest("api", "b"))
        # The new revision takes 1 s to become Ready, so the dark state can be watched.
        sc.emulator.call("POST", "/_emulator/readiness", {"image": "*bbbb*", "delay": "1s"})
        argv = sc.runway_argv("apply", "--poll-interval", "100ms", "--timeout", "120s")
        stderr_path = os.path.join(sc.work, "apply.stderr")
        with open(stderr_path, "w") as err, open(os.path.join(sc.work, "apply.stdout"), "w") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=err)
        sc.processes.append((proc, stderr_path))

        def dark_state():
            s = sc.emulator.service()
            revision = s.get("template", {}).get("revision", "")
            return s if revision != OLD_REVISION else None

        dark = sc.wait_for("dark deploy (a new template revision)", dark_state, interval=0.02,
                           alive=proc)
        new = dark["template"]["revision"]
        expect(REVISION_RE.match(new), f"dark deploy: the template names revision {new}")
        expect(split_of(dark, "traffic") == {(OLD_REVISION, ""): 100, (new, "candidate"): 0},
               "dark deploy: traffic keeps 100% on the old revision, the new one tagged "
               "candidate at 0%", dark.get("traffic"))
        expect(split_of(dark) == {(OLD_REVISION, ""): 100},
               "dark deploy: trafficStatuses still serve 100% from the old revision",
               dark.get("trafficStatuses"))
        annotations = dark.get("annotations", {})
        expect(annotations.get("runway.dev/phase") == "deploying" and
               annotations.get("runway.dev/candidate") == new and
               annotations.get("runway.dev/stable") == OLD_REVISION,
               "dark deploy: annotations phase=deploying, candidate and stable recorded",
               annotations)
        try:
            code = proc.wait(timeout=COMMAND_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise Failure("runway apply did not finish")
        expect(code == 0, f"apply: exit {code}, want 0")
        real = sc.emulator.real_patches()
        expect(len(real) == 2, "apply: exactly 2 real PATCHes (dark deploy, promote)",
               [(p["seq"], p["query"]) for p in real])
        counters = sc.emulator.counters()
        expect(counters["writes"] == 2 and
               counters["byRoute"].get("PATCH v2.services.patch") == 2,
               "apply: the emulator's counters show 2 writes, both services.patch",
               counters)
        expect("template" in real[0]["query"] and "template" not in real[1]["query"],
               "apply: the first PATCH wrote the template, the second only traffic and "
               "annotations", [p["query"] for p in real])
        s = sc.emulator.service()
        expect(split_of(s) == {(new, ""): 100} and REVISION_RE.match(new),
               "apply: trafficStatuses are 100% on the new revision (^api-r[0-9a-f]{10}$)",
               s.get("trafficStatuses"))
        expect(s.get("annotations", {}).get("runway.dev/phase") == "converged" and
               "runway.dev/candidate" not in s.get("annotations", {}),
               "apply: phase converged, candidate annotation cleared", s.get("annotations"))
        expect(sorted(sc.emulator.revisions()) == sorted([OLD_REVISION, new]),
               "apply: two revisions, the old and the new")

        mark = sc.emulator.mark()
        sc.runway("apply", "--poll-interval", "100ms", "--timeout", "120s")
        expect(not sc.emulator.real_patches(mark) and not sc.emulator.patches(mark),
               "second apply: exit 0 and no write")
        done = sc.runway("plan", expect_code=0)
        expect("Converged" in done.stdout, "plan after apply: exit 0, Converged", done.stdout)
        done = sc.runway("status")
        row = [line for line in done.stdout.splitlines() if line.startswith(f"{NAMESPACE}/api")]
        expect(row and row[0].split()[1:4] == ["True", "Converged", new],
               "status: Ready True, reason Converged, the new revision", done.stdout)
        expect(status_of(sc) == ("True", "Converged"), "status -o json: parses, Ready True")

    # ---- 3 ---------------------------------------------------------------------------------------

    def gcloud_env(self, sc):
        return gcloud_env(sc.emulator.port, PROJECT, REGION, os.path.join(sc.work, "gcloud-config"))

    def gcloud_split(self, sc, old, new):
        argv = [self.gcloud, "run", "services", "update-traffic", "api",
                f"--to-revisions={old}=50,{new}=50", "--quiet"]
        label = "gcloud run services update-traffic api --to-revisions=OLD=50,NEW=50"
        try:
            done = subprocess.run(argv, env=self.gcloud_env(sc), capture_output=True, text=True,
                                  timeout=COMMAND_TIMEOUT_S, cwd=sc.work)
        except subprocess.TimeoutExpired:
            raise Failure(f"{label}: no answer within {COMMAND_TIMEOUT_S} s")
        sc.outputs.append((label, done.stdout, done.stderr))
        if done.returncode != 0:
            raise Failure(f"{label} exited {done.returncode}")
        s = sc.emulator.service()
        expect(split_of(s) == {(old, ""): 50, (new, ""): 50},
               "gcloud update-traffic: the live split is 50/50", s.get("trafficStatuses"))

    def test_drift_with_gcloud(self, sc):
        sc.write("api.yaml", manifest("api", "b"))
        sc.runway("apply", "--poll-interval", "100ms", "--timeout", "120s")
        new = sc.wait_converged(REVISION_RE)["template"]["revision"]
        ok(f"setup: apply converged on {new}")

        self.gcloud_split(sc, OLD_REVISION, new)
        mark = sc.emulator.mark()
        sc.runway("apply", "--poll-interval", "100ms", "--timeout", "120s")
        real = sc.emulator.real_patches(mark)
        s = sc.emulator.service()
        expect(len(real) == 1 and "template" not in real[0]["query"],
               "driftPolicy enforce: apply corrected the drift with 1 traffic write",
               [p["query"] for p in real])
        expect(split_of(s) == {(new, ""): 100} and s["template"]["revision"] == new,
               "driftPolicy enforce: 100% on the new revision again, same template",
               s.get("trafficStatuses"))
        expect(sorted(sc.emulator.revisions()) == sorted([OLD_REVISION, new]),
               "driftPolicy enforce: no new revision")

        sc.write("api.yaml", manifest("api", "b", drift="warn"))
        self.gcloud_split(sc, OLD_REVISION, new)
        mark = sc.emulator.mark()
        done = sc.runway("apply", "--poll-interval", "100ms", "--timeout", "120s",
                         expect_code=None)
        expect(not sc.emulator.real_patches(mark) and not sc.emulator.patches(mark),
               "driftPolicy warn: apply made no write")
        expect(done.returncode == 1,
               f"driftPolicy warn: apply exits 1 (drift reported, Ready False): {done.returncode}")
        expect("DriftDetected" in done.stdout,
               "driftPolicy warn: apply reports DriftDetected", done.stdout)
        expect(status_of(sc) == ("False", "DriftDetected"),
               "driftPolicy warn: status Ready False, reason DriftDetected")
        s = sc.emulator.service()
        expect(split_of(s) == {(OLD_REVISION, ""): 50, (new, ""): 50},
               "driftPolicy warn: the 50/50 split stays", s.get("trafficStatuses"))

    # ---- 4 ---------------------------------------------------------------------------------------

    def test_faults(self, sc):
        sc.write("api.yaml", manifest("api", "b"))
        services = "/v2/*/services/*"
        sc.emulator.call("POST", "/_emulator/faults", {"faults": [
            {"method": "PATCH", "path": services, "count": 2, "action": "error", "code": 503},
            {"method": "PATCH", "path": services, "count": 1, "action": "error", "code": 429,
             "retryAfter": 1},
            {"method": "GET", "path": services, "count": 1, "action": "stall", "duration": "3s"},
            {"method": "GET", "path": services, "count": 1, "action": "refuse", "duration": "1s"},
        ]})
        sc.runway("apply", "--poll-interval", "100ms", "--api-timeout", "1s", "--timeout", "120s")
        ok("faults: apply exited 0")
        left = sc.emulator.call_retrying("GET", "/_emulator/faults")["faults"]
        expect(left == [], "faults: every injected fault was hit", left)
        log = sc.emulator.requests()
        faulted = sorted((e["method"], e.get("fault", ""), e["status"]) for e in log
                         if e.get("fault"))
        expect(faulted == sorted([("PATCH", "error", 503), ("PATCH", "error", 503),
                                  ("PATCH", "error", 429), ("GET", "stall", 0),
                                  ("GET", "refuse", 0)]),
               "faults: the log shows 2x503 and 1x429 on PATCH, a stall and a refuse on GET",
               faulted)
        real = sc.emulator.real_patches()
        expect(len(real) == 2, "faults: exactly 2 successful real PATCHes",
               [(p["seq"], p["status"], p["query"]) for p in sc.emulator.patches()])
        s = sc.converged_on()
        expect(s is not None, "faults: converged, 100% on api-r<hash>",
               sc.emulator.service().get("trafficStatuses"))
        revisions = sc.emulator.revisions()
        expect(sorted(revisions) == sorted([OLD_REVISION, s["template"]["revision"]]),
               "faults: exactly 2 revisions, no duplicate", revisions)
        counters = sc.emulator.counters()
        expect(counters["byRoute"].get("PATCH v2.services.patch", 0) == 2,
               "faults: counters agree (2 PATCHes routed; faulted ones never reached it)",
               counters["byRoute"])

    # ---- 5 ---------------------------------------------------------------------------------------

    def test_kill_at_each_phase(self, sc):
        sc.write("api.yaml", manifest("api", "b"))
        # Readiness is fixed when a revision is created; 6 s leaves room for phases (a) and (b).
        sc.emulator.call("POST", "/_emulator/readiness", {"image": "*bbbb*", "delay": "6s"})
        args = ("--poll-interval", "200ms", "--resync", "1s")

        # (a) right after the dark-deploy PATCH
        proc, _ = sc.start_run(*args)
        sc.wait_for("dark-deploy PATCH", lambda: sc.emulator.real_patches(), interval=0.01,
                    alive=proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        s = sc.emulator.service()
        new = s["template"]["revision"]
        expect(REVISION_RE.match(new) and
               split_of(s, "traffic") == {(OLD_REVISION, ""): 100, (new, "candidate"): 0},
               "(a) kill -9 right after the dark-deploy PATCH: the candidate is dark",
               s.get("traffic"))

        # (b) while the candidate is still not Ready
        proc, stderr_path = sc.start_run(*args)
        sc.wait_for("a waiting pass of the restarted runway",
                    lambda: re.search(r"step=Wait(CloudRun|Candidate)", sc.run_stderr(stderr_path)),
                    alive=proc)
        s = sc.emulator.service()
        if short(s.get("latestReadyRevision")) == new:
            raise Failure("(b) the candidate became Ready before the kill; the machine is too "
                          "slow for the 6 s readiness delay")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        expect(len(sc.emulator.real_patches()) == 1,
               "(b) kill -9 while the candidate is not Ready: still 1 real PATCH")

        # (c) right after the promote PATCH
        proc, _ = sc.start_run(*args)
        sc.wait_for("promote PATCH", lambda: len(sc.emulator.real_patches()) >= 2,
                    deadline_s=DEADLINE_S, interval=0.01, alive=proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        ok("(c) kill -9 right after the promote PATCH")

        # restart: converges without another write
        proc, stderr_path = sc.start_run(*args)
        sc.wait_converged(new, alive=proc)
        sc.wait_for("a Converged pass of the last runway",
                    lambda: "step=Converged" in sc.run_stderr(stderr_path), alive=proc)
        mark = sc.emulator.mark()
        sc.wait_for("two more resyncs",
                    lambda: len([e for e in sc.emulator.requests(mark)
                                 if e["route"] == "v2.services.list"]) >= 2, alive=proc)
        stop_process(proc)
        expect(proc.returncode == 0, f"restart: runway run exited {proc.returncode} on SIGTERM")
        real = sc.emulator.real_patches()
        expect(len(real) == 2, "across 3 kills and 4 starts: exactly 2 successful real PATCHes",
               [(p["seq"], p["query"]) for p in real])
        expect(split_of(sc.emulator.service()) == {(new, ""): 100},
               "converged: 100% on the new revision")
        revisions = sc.emulator.revisions()
        expect(sorted(revisions) == sorted([OLD_REVISION, new]),
               "exactly 2 revisions, no duplicate", revisions)
        done = sc.runway("status", "-o", "json")
        expect(status_of(sc) == ("True", "Converged") and "skipped" not in done.stderr,
               "status after the kills: Ready True, no torn status file", done.stderr)

    # ---- 6 ---------------------------------------------------------------------------------------

    def test_run_inotify_sigterm(self, sc):
        sc.write("api.yaml", manifest("api", "b"))
        # A long resync: only the directory watcher can bring the edit in quickly.
        proc, stderr_path = sc.start_run("--poll-interval", "200ms", "--resync", "10m")
        first = sc.wait_converged(REVISION_RE, alive=proc)["template"]["revision"]
        ok(f"run: converged on {first}")
        mark = sc.emulator.mark()
        sc.write("api.yaml", manifest("api", "c"))
        sc.wait_for("dark-deploy PATCH after the edit",
                    lambda: sc.emulator.real_patches(mark), alive=proc)
        s = sc.emulator.service()
        second = s["template"]["revision"]
        expect(second != first and REVISION_RE.match(second) and
               (second, "candidate") in split_of(s, "traffic"),
               "edit (inotify): the new digest was deployed dark as the candidate",
               s.get("traffic"))
        sc.wait_converged(second, alive=proc)
        ok(f"edit (inotify): converged on {second}")
        real = sc.emulator.real_patches(mark)
        expect(len(real) == 2, "edit: 2 real PATCHes for the change", len(real))
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            raise Failure(f"runway run still running {DEADLINE_S} s after SIGTERM")
        expect(code == 0, f"SIGTERM: runway run exited {code}, want 0")

        # Removing a manifest stops management. A second service keeps the resync listing the
        # region, so the log shows runway kept looking.
        sc.write("web.yaml", manifest("web", "d"))
        proc, stderr_path = sc.start_run("--poll-interval", "200ms", "--resync", "1s")
        sc.wait_for("creation of web", lambda: sc.converged_on(re.compile(r"^web-r"), "web"),
                    alive=proc)
        os.remove(os.path.join(sc.manifests, "api.yaml"))
        sc.wait_for("the 'no longer managing' log line",
                    lambda: "no longer managing" in sc.run_stderr(stderr_path), alive=proc)
        ok("manifest removed: runway logged 'no longer managing'")
        # Change the live state behind runway's back.
        operation = sc.emulator.call(
            "PATCH", sc.emulator.service_path() + "?updateMask=traffic",
            {"traffic": [{"type": BY_REVISION, "revision": first, "percent": 50},
                         {"type": BY_REVISION, "revision": second, "percent": 50}]})
        sc.emulator.call("POST", f"/v2/{operation['name']}:wait", {"timeout": "10s"})
        mark = sc.emulator.mark()
        sc.wait_for("three resyncs after the change",
                    lambda: len([e for e in sc.emulator.requests(mark)
                                 if e["route"] == "v2.services.list"]) >= 3, alive=proc)
        expect(not sc.emulator.patches(mark),
               "removed manifest: no write to api after a changed live state")
        expect(split_of(sc.emulator.service()) == {(first, ""): 50, (second, ""): 50},
               "removed manifest: the out-of-band 50/50 split stays")
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            raise Failure(f"runway run still running {DEADLINE_S} s after SIGTERM")
        expect(code == 0, f"SIGTERM again: runway run exited {code}, want 0")

    # ---- 7 ---------------------------------------------------------------------------------------

    def test_suspend(self, sc):
        sc.write("api.yaml", manifest("api", "b", suspend=True))
        before = sc.emulator.service()
        done = sc.runway("apply", "--poll-interval", "100ms", "--timeout", "120s")
        expect("Suspended" in done.stdout, "suspend: apply exits 0 and reports Suspended",
               done.stdout)
        doc = json.loads(sc.runway("apply", "-o", "json", "--poll-interval", "100ms",
                                   "--timeout", "120s").stdout)
        expect(doc["suspended"] == 1 and doc["failed"] == 0 and doc["converged"] == 0 and
               doc["services"][0]["step"] == "Suspended" and doc["services"][0]["writes"] == 0,
               "suspend: apply -o json parses: 1 suspended, 0 failed, no write", doc)
        expect(not sc.emulator.patches() and sc.emulator.counters()["writes"] == 0,
               "suspend: no write at all")
        after = sc.emulator.service()
        expect(after["etag"] == before["etag"] and sc.emulator.revisions() == [OLD_REVISION],
               "suspend: the service is untouched (etag, revisions)")
        ready, reason = status_of(sc)
        expect(reason == "Suspended", f"suspend: status reason Suspended (Ready {ready})")
        sc.runway("plan", expect_code=0)
        ok("suspend: plan exits 0 (nothing would be written)")

    # ---- 8 ---------------------------------------------------------------------------------------

    def test_invalid_next_to_valid(self, sc):
        sc.write("api.yaml", manifest("api", "b"))
        sc.write("web.yaml", manifest("web", "d", traffic=[
            '{revision: "@new", percent: 80}', '{revision: web-00001-old, percent: 10}']))
        done = sc.runway("apply", "--poll-interval", "100ms", "--timeout", "120s",
                         expect_code=1)
        ok("invalid manifest: apply exits 1")
        bad = os.path.join(sc.manifests, "web.yaml")
        lines = [line for line in done.stderr.splitlines() if bad in line]
        expect(lines and "spec.traffic" in lines[0] and "90" in lines[0],
               "invalid manifest: its error names the file, the field and the problem",
               done.stderr[-2000:])
        s = sc.converged_on()
        expect(s is not None and len(sc.emulator.real_patches()) == 2,
               "invalid manifest: the valid one still converged with 2 writes",
               sc.emulator.service().get("trafficStatuses"))
        expect(not sc.emulator.patches(service="web"),
               "invalid manifest: no write to the invalid one's service")
        doc = json.loads(sc.runway("status", "-o", "json").stdout)
        reasons = {item["key"]: [c["reason"] for c in item["conditions"] if c["type"] == "Ready"]
                   for item in doc["services"]}
        expect(reasons == {f"{NAMESPACE}/api": ["Converged"], f"{NAMESPACE}/web": ["InvalidSpec"]},
               "invalid manifest: status shows api Converged, web InvalidSpec", reasons)


SCENARIOS = [
    (1, "plan writes nothing", "test_plan_writes_nothing", ("api",)),
    (2, "dark deploy then promote", "test_dark_deploy_then_promote", ("api",)),
    (3, "drift with the real gcloud", "test_drift_with_gcloud", ("api",)),
    (4, "faults", "test_faults", ("api",)),
    (5, "kill -9 at each phase", "test_kill_at_each_phase", ("api",)),
    (6, "run + inotify + SIGTERM", "test_run_inotify_sigterm", ("api",)),
    (7, "suspend", "test_suspend", ("api",)),
    (8, "invalid manifest next to a valid one", "test_invalid_next_to_valid", ("api", "web")),
]


def run_scenarios(test, scenarios, only, label, skip=None):
    """Runs each (number, title, method, *extra) in `scenarios` (only those in `only` when it is
    not empty) on a fresh `test.scenario(title, *extra)`; `skip(number)` may return a banner to
    print instead. Prints one result line per scenario and a summary; returns the exit code."""
    started = time.monotonic()
    failed, skipped = [], []
    for number, title, method, *extra in scenarios:
        if only and number not in only:
            continue
        print(f"=== scenario {number}: {title}", flush=True)
        banner = skip(number) if skip else None
        if banner:
            print(banner, flush=True)
            skipped.append(number)
            continue
        scenario_started = time.monotonic()
        sc = test.scenario(title, *extra)
        try:
            with sc:
                try:
                    getattr(test, method)(sc)
                except Exception as error:
                    if isinstance(error, Failure):
                        print(f"FAIL: scenario {number} ({title}): {error}", flush=True)
                    else:
                        print(f"FAIL: scenario {number} ({title}): unexpected "
                              f"{type(error).__name__}\n{traceback.format_exc()}", flush=True)
                    sc.report_failure()
                    failed.append(number)
        except Failure as error:  # the emulator did not start
            print(f"FAIL: scenario {number} ({title}): {error}", flush=True)
            failed.append(number)
        print(f"   (scenario {number}: {time.monotonic() - scenario_started:.1f} s)", flush=True)
    took = time.monotonic() - started
    if failed:
        print(f"FAIL: scenarios {failed} failed ({took:.1f} s)", flush=True)
        return 1
    note = f", scenario(s) {skipped} SKIPPED" if skipped else ""
    print(f"PASS: {label} in {took:.1f} s{note}", flush=True)
    return 0


def free_port():
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_prometheus(sc, targets, rule_files=()):
    """Debian's `prometheus` on a free loopback port, scraping `targets` ({job: "host:port"})
    every second and evaluating `rule_files` every second; stopped with the scenario. Returns
    (base URL, process). (Its first scrape comes about 5 s after start: poll.)"""
    port = free_port()
    directory = os.path.join(sc.work, "prometheus")
    os.makedirs(directory, exist_ok=True)
    config = os.path.join(directory, "prometheus.yml")
    with open(config, "w") as f:
        f.write("global: {scrape_interval: 1s, evaluation_interval: 1s}\n")
        if rule_files:
            f.write("rule_files:\n" + "".join(f"  - {path}\n" for path in rule_files))
        f.write("scrape_configs:\n" + "".join(
            f"  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n"
            for job, target in targets.items()))
    log_path = os.path.join(directory, "prometheus.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={directory}/data",
             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    sc.processes.append((proc, log_path))
    return f"http://127.0.0.1:{port}", proc


def main(argv):
    if len(argv) < 3:
        print("usage: runway_e2e_test.py PATH_TO_RUNWAY PATH_TO_CLOUDRUN_EMULATOR [N...]",
              file=sys.stderr)
        return 2
    runway, emulator = os.path.abspath(argv[1]), os.path.abspath(argv[2])
    for path in (runway, emulator):
        if not os.access(path, os.X_OK):
            print(f"FAIL: {path} is not an executable", flush=True)
            return 1
    test = E2E(runway, emulator)

    def skip(number):
        if number == 3 and not test.gcloud:
            return ("#" * 94 + "\n##  SKIPPED scenario 3: gcloud is not installed (no `gcloud` on "
                    "PATH), so drift made by\n##  the real gcloud CLI was NOT checked. Install "
                    "google-cloud-cli and run this test again.\n" + "#" * 94)
        return None
    return run_scenarios(test, SCENARIOS, {int(n) for n in argv[3:]}, "runway end to end", skip)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
