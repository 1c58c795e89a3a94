#!/usr/bin/env python3
"""Conformance of the Cloud Run / Cloud Build emulator with the real gcloud CLI.

Drives `gcloud run ...` (Cloud Run v1, Knative) and `gcloud builds ...` (Cloud Build v1) against
a fresh emulator, set up as docs gcp-api.md §3.1 describes (throwaway config, no credentials,
endpoint overrides, the emulator as gcloud's HTTP proxy for the regional host), and after each
command asserts the state that results, read back through the emulator's v2 API (and the Cloud
Build v1 API) with urllib, plus the requests gcloud made where they matter. The v2 surface is then
checked with the SDK's generated v2 client (gcloud_v2_client_check.py, run with the SDK's bundled
Python).

Usage: gcloud_conformance_test.py PATH_TO_CLOUDRUN_EMULATOR
Standard library only. Prints one "ok: ..." line per check; on the first failure prints
"FAIL: ..." with gcloud's stderr and the tail of the emulator's request log, and exits 1.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from gcloud_env import gcloud_env  # noqa: E402

PROJECT = "conformance-proj"
REGION = "us-central1"
SERVICE = "hello"
IMAGE_V1 = f"us-docker.pkg.dev/{PROJECT}/apps/hello:v1"
IMAGE_V2 = f"us-docker.pkg.dev/{PROJECT}/apps/hello:v2"
GCLOUD_TIMEOUT_S = 180
HERE = os.path.dirname(os.path.abspath(__file__))

LATEST = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"
BY_REVISION = "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION"


class Failure(Exception):
    pass


def ok(what):
    print(f"ok: {what}", flush=True)


def short(name):
    return name.rsplit("/", 1)[-1]


def traffic_of(v2_service, key="trafficStatuses"):
    """{(type, revision, tag): percent} of a v2 Service's traffic or trafficStatuses."""
    return {(t.get("type"), t.get("revision", ""), t.get("tag", "")): t.get("percent", 0)
            for t in v2_service.get(key, [])}


class Conformance:

    def __init__(self, emulator, work):
        self.emulator_path = emulator
        self.work = work
        self.proc = None
        self.emulator_log = None
        self.port = None
        self.last_stderr = ""
        self.gcloud = shutil.which("gcloud")
        self.sdk_root = os.path.dirname(os.path.dirname(os.path.realpath(self.gcloud)))
        # urllib must reach the emulator directly, whatever proxy the environment names.
        self.http = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    # ---- emulator ------------------------------------------------------------------------------

    def start(self):
        port_file = os.path.join(self.work, "port")
        self.emulator_log = open(os.path.join(self.work, "emulator.log"), "wb")
        self.proc = subprocess.Popen(
            [self.emulator_path, "--listen", "127.0.0.1:0", "--port-file", port_file,
             "--reconcile-delay", "200ms"],
            stdout=self.emulator_log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Failure(f"the emulator exited early with status {self.proc.returncode}")
            if os.path.exists(port_file) and os.path.getsize(port_file) > 0:
                text = open(port_file).read().strip()
                if text.isdigit():
                    self.port = int(text)
                    break
            time.sleep(0.05)
        if not self.port:
            raise Failure("the emulator wrote no port file within 15 s")
        self.base = f"http://127.0.0.1:{self.port}"
        ok(f"emulator listening on 127.0.0.1:{self.port}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.emulator_log:
            self.emulator_log.close()
            self.emulator_log = None

    def api(self, method, path, body=None, expect=200):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with self.http.open(request, timeout=30) as response:
                status, text = response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read().decode()
        if status != expect:
            raise Failure(f"{method} {path} answered {status}, expected {expect}: {text[:2000]}")
        return json.loads(text) if text else {}

    def v2(self, suffix=""):
        return self.api("GET",
                        f"/v2/projects/{PROJECT}/locations/{REGION}/services/{SERVICE}{suffix}")

    def config(self, **values):
        self.api("POST", "/_emulator/config", values)

    def mark(self):
        return self.api("GET", "/_emulator/requests?since=999999999")["last"]

    def requests_since(self, mark):
        return self.api("GET", f"/_emulator/requests?since={mark}")["requests"]

    def log_tail(self, count=20):
        try:
            entries = self.api("GET", "/_emulator/requests")["requests"][-count:]
        except Exception as error:  # the emulator may be the thing that broke
            return f"  (no request log: {error})"
        return "\n".join(
            f"  #{e['seq']} {e['method']} {e['path']}{'?' + e['query'] if e.get('query') else ''}"
            f" -> {e['status']} [{e['route']}]" for e in entries)

    # ---- gcloud --------------------------------------------------------------------------------

    def env(self):
        return gcloud_env(self.port, PROJECT, REGION, os.path.join(self.work, "gcloud-config"))

    def run(self, argv, what, env=None):
        started = time.monotonic()
        try:
            done = subprocess.run(argv, env=env or self.env(), capture_output=True, text=True,
                                  timeout=GCLOUD_TIMEOUT_S, cwd=self.work)
        except subprocess.TimeoutExpired as error:
            stderr = error.stderr or b""  # bytes even with text=True
            self.last_stderr = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
            raise Failure(f"{what}: no answer within {GCLOUD_TIMEOUT_S} s")
        self.last_stderr = done.stderr
        return done, time.monotonic() - started

    def gcloud_cmd(self, *args, expect_ok=True, json_out=True):
        """Runs `gcloud ARGS --quiet [--format=json]`; returns (parsed stdout, the process)."""
        argv = [self.gcloud, *args, "--quiet"] + (["--format=json"] if json_out else [])
        label = "gcloud " + " ".join(args)
        done, seconds = self.run(argv, label)
        if expect_ok and done.returncode != 0:
            raise Failure(f"{label} exited {done.returncode}")
        if not expect_ok and done.returncode == 0:
            raise Failure(f"{label} succeeded but must fail")
        parsed = None
        if expect_ok and json_out:
            try:
                parsed = json.loads(done.stdout) if done.stdout.strip() else None
            except json.JSONDecodeError as error:
                raise Failure(f"{label} printed no JSON ({error}): {done.stdout[:1000]}")
        print(f"   ({label}: {seconds:.1f} s, exit {done.returncode})", flush=True)
        return parsed, done

    # ---- Cloud Run through gcloud ----------------------------------------------------------------

    def expect(self, condition, what, detail=""):
        if not condition:
            shown = json.dumps(detail, default=str)[:3000] if detail else ""
            raise Failure(f"{what}: {shown}" if shown else what)
        ok(what)

    def routes(self, entries):
        return [(e["method"], e["route"], e["status"]) for e in entries]

    def test_run(self):
        # deploy (new service) --revision-suffix
        mark = self.mark()
        self.gcloud_cmd("run", "deploy", SERVICE, "--image", IMAGE_V1, "--revision-suffix=v1",
                        "--no-allow-unauthenticated")
        log = self.routes(self.requests_since(mark))
        self.expect(("GET", "knative.services.get", 404) in log and
                    ("POST", "knative.services.create", 200) in log,
                    "deploy (new): gcloud looked the service up (404) and created it (v1 POST)",
                    log)
        s = self.v2()
        rev1 = f"{SERVICE}-v1"
        self.expect(s["template"]["containers"][0]["image"] == IMAGE_V1 and
                    s["template"].get("revision") == rev1,
                    "deploy (new): v2 template has the image and revision name <svc>-v1",
                    s["template"])
        self.expect(s["generation"] == "1" and s.get("observedGeneration") == "1" and
                    s["terminalCondition"]["state"] == "CONDITION_SUCCEEDED" and
                    not s.get("reconciling"),
                    "deploy (new): v2 generation 1 observed, terminalCondition CONDITION_SUCCEEDED",
                    {k: s.get(k)
                     for k in ("generation", "observedGeneration", "terminalCondition")})
        self.expect(short(s["latestReadyRevision"]) == rev1 and
                    short(s["latestCreatedRevision"]) == rev1,
                    "deploy (new): latestReadyRevision = latestCreatedRevision = <svc>-v1")
        self.expect(traffic_of(s) == {(LATEST, rev1, ""): 100},
                    "deploy (new): trafficStatuses = 100% LATEST -> <svc>-v1",
                    s.get("trafficStatuses"))

        # deploy --image ... --no-traffic
        mark = self.mark()
        self.gcloud_cmd("run", "deploy", SERVICE, "--image", IMAGE_V2, "--no-traffic")
        log = self.routes(self.requests_since(mark))
        self.expect(("PUT", "knative.services.replace", 200) in log,
                    "deploy --no-traffic: gcloud replaced the service (v1 PUT)", log)
        s = self.v2()
        rev2 = short(s["latestCreatedRevision"])
        self.expect(rev2 not in (rev1, "") and rev2.startswith(f"{SERVICE}-00002-"),
                    "deploy --no-traffic: a new revision <svc>-00002-xxx was created", rev2)
        self.expect(s["template"]["containers"][0]["image"] == IMAGE_V2,
                    "deploy --no-traffic: v2 template has the new image")
        self.expect(short(s["latestReadyRevision"]) == rev2 and s["generation"] == "2" and
                    s.get("observedGeneration") == "2" and
                    s["terminalCondition"]["state"] == "CONDITION_SUCCEEDED",
                    "deploy --no-traffic: generation 2 converged, the new revision is latest ready")
        self.expect(traffic_of(s, "traffic") == {(BY_REVISION, rev1, ""): 100} and
                    traffic_of(s) == {(BY_REVISION, rev1, ""): 100},
                    "deploy --no-traffic: traffic and trafficStatuses stay 100% on <svc>-v1",
                    s.get("trafficStatuses"))
        revisions = self.v2("/revisions")["revisions"]
        self.expect([short(r["name"]) for r in revisions] == [rev2, rev1] and
                    revisions[0]["containers"][0]["image"] == IMAGE_V2 and
                    revisions[1]["containers"][0]["image"] == IMAGE_V1,
                    "deploy --no-traffic: v2 revisions list holds both, newest first, with their "
                    "images", [r["name"] for r in revisions])

        # update-traffic --to-revisions
        mark = self.mark()
        self.gcloud_cmd("run", "services", "update-traffic", SERVICE,
                        f"--to-revisions={rev1}=30,{rev2}=70")
        log = self.routes(self.requests_since(mark))
        self.expect(log[:2] == [("GET", "knative.services.get", 200),
                                ("PUT", "knative.services.replace", 200)],
                    "update-traffic: GET then PUT of the whole service", log)
        s = self.v2()
        self.expect(traffic_of(s) == {(BY_REVISION, rev1, ""): 30, (BY_REVISION, rev2, ""): 70},
                    "update-traffic --to-revisions: trafficStatuses 30/70",
                    s.get("trafficStatuses"))
        self.expect(s["generation"] == "3" and s.get("observedGeneration") == "3" and
                    short(s["latestCreatedRevision"]) == rev2,
                    "update-traffic --to-revisions: generation 3 converged, no new revision")

        # update-traffic to an unknown revision: refused by the server, nothing changes
        before = self.v2()
        mark = self.mark()
        _, done = self.gcloud_cmd("run", "services", "update-traffic", SERVICE,
                                  "--to-revisions=nope=50", expect_ok=False)
        log = self.routes(self.requests_since(mark))
        self.expect(("PUT", "knative.services.replace", 400) in log and
                    not any(m == "PUT" and st == 200 for m, _, st in log),
                    "update-traffic to an unknown revision: the emulator answered the PUT with 400",
                    log)
        self.expect("nope" in done.stderr and "spec.traffic" in done.stderr,
                    "update-traffic to an unknown revision: gcloud reports the v1 field "
                    "spec.traffic[...] and the revision", done.stderr[-800:])
        after = self.v2()
        kept = ("generation", "etag", "traffic", "trafficStatuses", "latestCreatedRevision")
        self.expect(all(after.get(k) == before.get(k) for k in kept),
                    "update-traffic to an unknown revision: generation, etag and traffic unchanged")

        # update-traffic --update-tags
        self.gcloud_cmd("run", "services", "update-traffic", SERVICE, f"--update-tags=blue={rev1}")
        s = self.v2()
        self.expect(traffic_of(s) == {(BY_REVISION, rev1, ""): 30, (BY_REVISION, rev2, ""): 70,
                                      (BY_REVISION, rev1, "blue"): 0},
                    "update-traffic --update-tags: tag blue on <svc>-v1, percents unchanged",
                    s.get("trafficStatuses"))
        blue = [t for t in s["trafficStatuses"] if t.get("tag") == "blue"][0]
        self.expect(blue.get("uri", "").endswith("/blue"), "update-traffic --update-tags: the tag "
                    "has a uri in trafficStatuses", blue)

        # update-traffic --to-latest
        self.gcloud_cmd("run", "services", "update-traffic", SERVICE, "--to-latest")
        s = self.v2()
        self.expect(traffic_of(s, "traffic") ==
                    {(LATEST, "", ""): 100, (BY_REVISION, rev1, "blue"): 0},
                    "update-traffic --to-latest: traffic = 100% LATEST, tag blue kept",
                    s.get("traffic"))
        self.expect(traffic_of(s) == {(LATEST, rev2, ""): 100, (BY_REVISION, rev1, "blue"): 0},
                    "update-traffic --to-latest: trafficStatuses resolve LATEST to the newest "
                    "revision", s.get("trafficStatuses"))
        self.expect(s["generation"] == "5" and s.get("observedGeneration") == "5" and
                    s["terminalCondition"]["state"] == "CONDITION_SUCCEEDED",
                    "update-traffic --to-latest: generation 5 converged")

        # services describe: the v1 view agrees with v2
        d, _ = self.gcloud_cmd("run", "services", "describe", SERVICE)
        self.expect(d["metadata"]["name"] == SERVICE and
                    d["metadata"]["generation"] == int(s["generation"]) and
                    d["status"]["observedGeneration"] == int(s["observedGeneration"]),
                    "services describe: name and generation match v2")
        self.expect(d["status"]["latestReadyRevisionName"] == rev2 and
                    d["status"]["latestCreatedRevisionName"] == rev2 and
                    d["status"]["url"] == s["uri"],
                    "services describe: latest revisions and url match v2")
        ready = [c for c in d["status"]["conditions"] if c["type"] == "Ready"]
        self.expect(ready and ready[0]["status"] == "True", "services describe: Ready is True")
        self.expect(d["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE_V2,
                    "services describe: template image matches v2")
        v1_traffic = {(t.get("revisionName"), t.get("tag", ""), t.get("latestRevision", False)):
                      t.get("percent", 0) for t in d["status"]["traffic"]}
        self.expect(v1_traffic == {(rev2, "", True): 100, (rev1, "blue", False): 0},
                    "services describe: status.traffic matches v2 trafficStatuses",
                    d["status"]["traffic"])
        self.expect(d["metadata"]["labels"].get("cloud.googleapis.com/location") == REGION,
                    "services describe: the location label names the region")

        _, done = self.gcloud_cmd("run", "services", "describe", "nope", expect_ok=False)
        self.expect("Cannot find service [nope]" in done.stderr,
                    "services describe of a missing service: 'Cannot find service [nope]'",
                    done.stderr[-500:])

        # two more services through v2, for services list and the v2 client's pages
        for other in ("other-a", "other-b"):
            operation = self.api("POST", f"/v2/projects/{PROJECT}/locations/{REGION}/services"
                                 f"?serviceId={other}",
                                 {"template": {"containers": [{"image": IMAGE_V1}]}})
            self.api("POST", f"/v2/{operation['name']}:wait", {"timeout": "10s"})

        listed, _ = self.gcloud_cmd("run", "services", "list")
        names = sorted(item["metadata"]["name"] for item in listed)
        self.expect(names == sorted([SERVICE, "other-a", "other-b"]),
                    "services list: every service, including those created through v2", names)
        self.expect(all(item["metadata"]["labels"].get("cloud.googleapis.com/location") == REGION
                        for item in listed), "services list: each item names its region")

        revisions, _ = self.gcloud_cmd("run", "revisions", "list", "--service", SERVICE)
        self.expect([r["metadata"]["name"] for r in revisions] == [rev2, rev1],
                    "revisions list --service: both revisions of the service, newest first",
                    [r["metadata"]["name"] for r in revisions])
        active = {r["metadata"]["name"]: [c["status"] for c in r["status"]["conditions"]
                                          if c["type"] == "Active"] for r in revisions}
        self.expect(active[rev2] == ["True"], "revisions list: the serving revision is Active",
                    active)
        self.expect(all(r["metadata"]["labels"]["serving.knative.dev/service"] == SERVICE and
                        r["metadata"]["annotations"].get("serving.knative.dev/creator")
                        for r in revisions),
                    "revisions list: each names its service and creator (DEPLOYED BY)")

        r, _ = self.gcloud_cmd("run", "revisions", "describe", rev1)
        v2_rev = self.v2(f"/revisions/{rev1}")
        self.expect(r["metadata"]["name"] == rev1 and
                    r["spec"]["containers"][0]["image"] == IMAGE_V1 ==
                    v2_rev["containers"][0]["image"],
                    "revisions describe: the image matches v2 revisions.get")
        self.expect(r["metadata"]["uid"] == v2_rev["uid"] and
                    r["metadata"]["annotations"].get("serving.knative.dev/creator") ==
                    v2_rev.get("creator"),
                    "revisions describe: uid and creator match v2")
        digest = r["status"].get("imageDigest", "")
        self.expect(digest.startswith(IMAGE_V1.rsplit(":", 1)[0] + "@sha256:"),
                    "revisions describe: imageDigest is the repository by digest", digest)
        return rev1, rev2

    # ---- the v2 surface through the SDK's generated client ---------------------------------------

    def test_v2_client(self, rev1, rev2):
        python = os.path.join(self.sdk_root, "platform", "bundledpythonunix", "bin", "python3")
        if not os.access(python, os.X_OK):
            print(f"note: no bundled Python at {python}; using {sys.executable} for the v2 client",
                  flush=True)
            python = sys.executable
        env = self.env()
        env["PYTHONPATH"] = os.pathsep.join(
            [os.path.join(self.sdk_root, "lib"), os.path.join(self.sdk_root, "lib", "third_party")])
        # The patch's operation must still be running when the client asks for it.
        self.config(reconcileDelay="1s")
        mark = self.mark()
        done, seconds = self.run([python, os.path.join(HERE, "gcloud_v2_client_check.py"), PROJECT,
                                  REGION, SERVICE, rev1, rev2, "other-a", "other-b"],
                                 "the v2 client check", env=env)
        self.config(reconcileDelay="0.2s")
        sys.stdout.write(done.stdout)
        if done.returncode != 0:
            raise Failure(f"the v2 client check exited {done.returncode}")
        print(f"   (the v2 client check: {seconds:.1f} s)", flush=True)
        routes = {e["route"] for e in self.requests_since(mark)}
        wanted = {"v2.services.get", "v2.services.list", "v2.services.patch", "v2.revisions.list",
                  "v2.revisions.get", "v2.operations.get", "v2.operations.wait"}
        self.expect(wanted <= routes, "the v2 client called services get/list/patch, revisions "
                    "list/get and operations get/wait", sorted(routes))
        s = self.v2()
        self.expect(traffic_of(s) == {(BY_REVISION, rev1, "green"): 40, (LATEST, rev2, ""): 60},
                    "after the v2 patch: trafficStatuses 40% <svc>-v1 (tag green) / 60% LATEST",
                    s.get("trafficStatuses"))
        d, _ = self.gcloud_cmd("run", "services", "describe", SERVICE)
        v1_traffic = {(t.get("revisionName"), t.get("tag", "")): t.get("percent", 0)
                      for t in d["status"]["traffic"]}
        self.expect(v1_traffic == {(rev1, "green"): 40, (rev2, ""): 60} and
                    d["metadata"]["generation"] == int(s["generation"]),
                    "services describe after the v2 patch: gcloud sees the split and generation",
                    d["status"]["traffic"])

    # ---- Cloud Build ---------------------------------------------------------------------------

    def test_builds(self):
        def write_config(name, tag):
            path = os.path.join(self.work, name)
            with open(path, "w") as f:
                # CLOUD_LOGGING_ONLY: without it gcloud tails logs from storage.googleapis.com.
                f.write("steps:\n"
                        "- name: gcr.io/cloud-builders/docker\n"
                        "  args: [build, -t, 'us-docker.pkg.dev/$PROJECT_ID/apps/hello:$_TAG', .]\n"
                        "images: ['us-docker.pkg.dev/$PROJECT_ID/apps/hello:$_TAG']\n"
                        "substitutions:\n"
                        "  _TAG: v3\n"
                        f"tags: [conformance, {tag}]\n"
                        "options:\n"
                        "  logging: CLOUD_LOGGING_ONLY\n")
            return path

        config = write_config("cloudbuild.yaml", "svc-hello")
        other_config = write_config("cloudbuild-other.yaml", "svc-other")
        builds = f"/v1/projects/{PROJECT}/locations/global/builds"

        # A build that finishes while gcloud waits for it (no --async: gcloud polls builds.get).
        self.config(buildQueue="0.2s", buildWork="0.5s")
        mark = self.mark()
        b, _ = self.gcloud_cmd("builds", "submit", "--no-source", "--config", other_config,
                               "--substitutions=_TAG=v4")
        log = self.routes(self.requests_since(mark))
        self.expect(log[0] == ("POST", "cloudbuild.builds.create", 200) and
                    log.count(("GET", "cloudbuild.builds.get", 200)) >= 1 and
                    not any(route == "connect" for _, route, _ in log),
                    "builds submit: one create, then builds.get polls, no call to Google hosts",
                    log)
        done_id = b["id"]
        got = self.api("GET", f"{builds}/{done_id}")
        self.expect(b["status"] == got["status"] == "SUCCESS",
                    "builds submit: gcloud waited for SUCCESS, read back through v1")
        images = got.get("results", {}).get("images", [])
        self.expect(len(images) == 1 and
                    images[0]["name"] == f"us-docker.pkg.dev/{PROJECT}/apps/hello:v4" and
                    images[0]["digest"].startswith("sha256:"),
                    "builds submit: results.images has the substituted image and a digest", images)

        # builds submit --async: stays QUEUED long enough to cancel.
        self.config(buildQueue="30s", buildWork="1s")
        b, _ = self.gcloud_cmd("builds", "submit", "--no-source", "--config", config, "--async")
        self.config(buildQueue="0.2s", buildWork="0.5s")
        build_id = b["id"]
        got = self.api("GET", f"{builds}/{build_id}")
        self.expect(b["status"] == got["status"] == "QUEUED",
                    "builds submit --async: returns at once, build QUEUED (read back through v1)")
        self.expect(got["projectId"] == PROJECT and got["tags"] == ["conformance", "svc-hello"] and
                    got["images"] == [f"us-docker.pkg.dev/{PROJECT}/apps/hello:v3"] and
                    got["steps"][0]["args"][2] == f"us-docker.pkg.dev/{PROJECT}/apps/hello:v3" and
                    got["options"]["logging"] == "CLOUD_LOGGING_ONLY",
                    "builds submit --async: tags, options and substituted images/steps stored", got)

        d, _ = self.gcloud_cmd("builds", "describe", build_id)
        self.expect(d["id"] == build_id and d["status"] == "QUEUED" and
                    d["createTime"] == got["createTime"] and d["name"] == got["name"],
                    "builds describe: the same build as the v1 read")

        mark = self.mark()
        listed, _ = self.gcloud_cmd("builds", "list", "--filter=tags=svc-hello")
        sent = [e.get("query", "") for e in self.requests_since(mark)
                if e["route"] == "cloudbuild.builds.list"]
        self.expect(any("filter=tags%3D%22svc-hello%22" in q for q in sent),
                    "builds list --filter: gcloud sent the filter to the server", sent)
        ids = [x["id"] for x in listed]
        self.expect(ids == [build_id],
                    "builds list --filter=tags=svc-hello: only the build tagged svc-hello", ids)
        listed, _ = self.gcloud_cmd("builds", "list", "--ongoing")
        ids = [x["id"] for x in listed]
        self.expect(ids == [build_id], "builds list --ongoing: only the QUEUED build", ids)

        c, _ = self.gcloud_cmd("builds", "cancel", build_id)
        got = self.api("GET", f"{builds}/{build_id}")
        self.expect(got["status"] == "CANCELLED" and "finishTime" in got and
                    "startTime" not in got,
                    "builds cancel: CANCELLED read back through v1, finished, never started",
                    {k: got.get(k) for k in ("status", "startTime", "finishTime")})
        printed = c if isinstance(c, list) else [c]
        self.expect([(x.get("id"), x.get("status")) for x in printed] == [(build_id, "CANCELLED")],
                    "builds cancel: gcloud printed the build as CANCELLED", c)

        mark = self.mark()
        _, done = self.gcloud_cmd("builds", "cancel", build_id, expect_ok=False)
        log = self.routes(self.requests_since(mark))
        self.expect(("POST", "cloudbuild.builds.cancel", 400) in log,
                    "builds cancel of a finished build: refused with 400", log)
        self.expect(self.api("GET", f"{builds}/{build_id}")["status"] == "CANCELLED",
                    "builds cancel of a finished build: the status stays CANCELLED")


def main(argv):
    if len(argv) != 2:
        print("usage: gcloud_conformance_test.py PATH_TO_CLOUDRUN_EMULATOR", file=sys.stderr)
        return 2
    emulator = os.path.abspath(argv[1])
    if not os.access(emulator, os.X_OK):
        print(f"FAIL: {emulator} is not an executable", flush=True)
        return 1
    started = time.monotonic()
    work = tempfile.mkdtemp(prefix="gcloud-conformance-")
    test = Conformance(emulator, work)
    try:
        test.start()
        rev1, rev2 = test.test_run()
        test.test_v2_client(rev1, rev2)
        test.test_builds()
    except Exception as error:  # a Failure, or a response without a field the test reads
        if isinstance(error, Failure):
            print(f"FAIL: {error}", flush=True)
        else:
            print(f"FAIL: unexpected {type(error).__name__}\n{traceback.format_exc()}", flush=True)
        if test.last_stderr:
            print("--- stderr of the last command ---\n" + test.last_stderr[-4000:])
        if test.port:
            print("--- emulator request log (tail) ---\n" + test.log_tail())
        test.stop()
        try:
            with open(os.path.join(work, "emulator.log"), errors="replace") as f:
                print("--- emulator output (tail) ---\n" + f.read()[-2000:])
        except OSError:
            pass
        return 1
    finally:
        test.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"PASS: gcloud conformance in {time.monotonic() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
