#!/usr/bin/env python3
"""Runway builds end to end (issue 5): the real `runway` binary, the emulator's Cloud Build v1, and
container engines that do not answer.

Scenarios (each with a fresh emulator and directories, like runway_e2e_test.py):
  1. Cloud Build success: the digest Cloud Build reported is the one deployed; one build, tagged;
     a second apply builds nothing; status has BuildSucceeded and image.digest; /metrics counts it.
  2. Cloud Build failure: apply exits 1, status BuildFailed with the failure and the log URL; the
     same spec is not rebuilt; a new revision of the source builds again.
  3. Cloud Build timeout: reason Timeout; the running service is left alone.
  4. kill -9 of `runway run` mid-build, then a restart: the build is adopted, not repeated.
  5. 503s while polling the build: retried; converged with one build.
  6. The incident: podman on PATH with a stale socket (refused), docker on PATH with no socket,
     and a socket that accepts and never answers (timeout). builder auto falls back to Cloud
     Build, the log says what to do, runway_connect_failures_total counts each with its reason;
     builder local stalls with the fix in status and starts no build.

Usage: builds_e2e_test.py PATH_TO_RUNWAY PATH_TO_CLOUDRUN_EMULATOR [SCENARIO_NUMBER...]
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runway_e2e_test import (  # noqa: E402
    NAMESPACE, PROJECT, REGION, REVISION_RE, Failure, Scenario, expect, free_port, ok,
    run_scenarios, seed_service, stop_process)

GIT_URL = "https://github.com/e2e/api"
REPOSITORY = f"us-docker.pkg.dev/{PROJECT}/apps/api"


def build_manifest(revision, builder="cloudBuild", runtime=None, timeout="20m", git_url=GIT_URL,
                   repository=REPOSITORY):
    """A manifest building e2e/api; `revision` is a full SHA or one character repeated 40 times."""
    revision = revision if len(revision) >= 40 else revision * 40
    lines = [
        "apiVersion: runway.dev/v1alpha1",
        "kind: CloudRunService",
        "metadata:",
        "  name: api",
        f"  namespace: {NAMESPACE}",
        "spec:",
        f"  project: {PROJECT}",
        f"  region: {REGION}",
        "  build:",
        f"    source: {{git: {{url: {git_url}, revision: \"{revision}\"}}}}",
        f"    repository: {repository}",
        f"    builder: {builder}",
        f"    timeout: {timeout}",
    ]
    if runtime:
        lines.append(f"    runtime: {runtime}")
    lines += ["  traffic:", '    - {revision: "@new", percent: 100}']
    return "\n".join(lines) + "\n"


def builds_of(sc):
    listed = sc.emulator.call_retrying("GET", f"/v1/projects/{PROJECT}/builds?pageSize=100")
    return listed.get("builds", [])


def creates(sc):
    return [e for e in sc.emulator.requests() if e["route"] == "cloudbuild.builds.create"]


def status_item(sc):
    doc = json.loads(sc.runway("status", "-o", "json").stdout)
    for item in doc["services"]:
        if item["key"] == f"{NAMESPACE}/api":
            return item
    raise Failure("no status for e2e/api", doc)


def condition(item, kind):
    for c in item["conditions"]:
        if c["type"] == kind:
            return c
    return {}


def scrape(port):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return response.read().decode()


def sample(text, name, **labels):
    """The value of the series `name{labels...}` in a Prometheus text exposition, else 0."""
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        series, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in series for k, v in labels.items()):
            return float(value)
    return 0.0


class Builds:

    def __init__(self, runway, emulator):
        self.runway = runway
        self.emulator = emulator

    def scenario(self, title):
        sc = Scenario(self, title, {"services": [seed_service("api", "a", "api-00001-old")]})
        return sc

    def prepare(self, sc, work="0.5s", rules=None):
        sc.emulator.call("POST", "/_emulator/config", {"buildQueue": "0.1s", "buildWork": work})
        if rules:
            sc.emulator.call("POST", "/_emulator/build-rules", {"rules": rules})

    def args(self, sc, *extra):
        return ("--cloudbuild-endpoint", sc.emulator.endpoint, "--poll-interval", "100ms",
                *extra)

    def start_run_with_metrics(self, sc, *extra, env=None):
        port_file = os.path.join(sc.work, f"http-{sc.run_count + 1}.port")
        if env is not None:
            sc.run_env = env
        proc, stderr_path = sc.start_run(*self.args(sc, "--http-address", "127.0.0.1:0",
                                                    "--http-port-file", port_file, *extra))
        port = sc.wait_for("the metrics port file",
                           lambda: os.path.exists(port_file) and open(port_file).read().strip(),
                           alive=proc)
        return proc, stderr_path, int(port)

    # ---- 1 ---------------------------------------------------------------------------------------

    def test_cloud_build_success(self, sc):
        self.prepare(sc)
        sc.write("api.yaml", build_manifest("1"))
        done = sc.runway("apply", *self.args(sc, "--timeout", "120s"))
        builds = builds_of(sc)
        expect(len(builds) == 1 and builds[0]["status"] == "SUCCESS",
               "success: exactly one Cloud Build, SUCCESS", builds)
        build = builds[0]
        digest = build["results"]["images"][0]["digest"]
        tags = build.get("tags", [])
        expect("runway" in tags and "svc-api" in tags and
               any(t.startswith("src-") for t in tags),
               "success: the build is tagged runway, svc-api and src-<hash>", tags)
        expect(build["source"]["gitSource"]["url"] == GIT_URL and
               build["images"][0].startswith(REPOSITORY + ":src-"),
               "success: the build names the Git source and pushes to the repository", build)
        s = sc.wait_converged(REVISION_RE)
        deployed = s["template"]["containers"][0]["image"]
        expect(deployed == f"{REPOSITORY}@{digest}",
               "success: the deployed image is the repository at the digest Cloud Build reported",
               deployed)
        expect("Building" in done.stderr, "success: apply showed the build in progress",
               done.stderr[-1500:])
        item = status_item(sc)
        built = condition(item, "BuildSucceeded")
        expect(built.get("status") == "True" and item.get("image", {}).get("digest") == digest
               and item["image"]["build"]["id"] == build["id"]
               and item["image"]["build"]["builder"] == "cloudBuild"
               and item["image"]["build"]["logUrl"],
               "success: status has BuildSucceeded=True and image {digest, build id, logUrl}",
               item)
        sc.runway("apply", *self.args(sc, "--timeout", "120s"))
        expect(len(creates(sc)) == 1 and len(builds_of(sc)) == 1,
               "success: a second apply (a new process) finds the build by tag: no second build")
        proc, _, port = self.start_run_with_metrics(sc)
        sc.wait_for("a converged pass of run", lambda: "Converged" in json.dumps(status_item(sc)),
                    alive=proc)
        text = scrape(port)
        expect(sample(text, "runway_builds_total", builder="cloudBuild", result="success") == 0,
               "success: a build found finished after a restart is not counted as a new one")
        expect("runway_api_requests_total" in text and
               sample(text, "runway_api_requests_total", api="cloudbuild",
                      method="builds.list", code="200") >= 1,
               "success: /metrics counts the Cloud Build list call", text[-1500:])
        stop_process(proc)

    # ---- 2 ---------------------------------------------------------------------------------------

    def test_cloud_build_failure(self, sc):
        self.prepare(sc, rules=[{"source": f"{GIT_URL}#2*", "outcome": "FAILURE",
                                 "failureType": "USER_BUILD_STEP",
                                 "failureDetail": "step 0: docker build exited 1"}])
        sc.write("api.yaml", build_manifest("2"))
        before = sc.emulator.service()
        proc, stderr_path, port = self.start_run_with_metrics(sc)
        sc.wait_for("BuildFailed in status",
                    lambda: condition(status_item(sc), "BuildSucceeded").get("status") == "False",
                    alive=proc)
        item = status_item(sc)
        built, stalled = condition(item, "BuildSucceeded"), condition(item, "Stalled")
        expect(built["reason"] == "BuildFailed" and "USER_BUILD_STEP" in built["message"] and
               "step 0: docker build exited 1" in built["message"] and
               "logs: http" in built["message"] and item["image"]["build"]["logUrl"],
               "failure: BuildSucceeded=False names the failure, its detail and the log URL",
               item)
        expect(stalled.get("status") == "True", "failure: the service is Stalled", stalled)
        text = sc.wait_for(
            "the failure counters",
            lambda: (lambda t: t if sample(t, "runway_build_failures_total",
                                           builder="cloudBuild", reason="BuildFailed") == 1
                     else None)(scrape(port)), alive=proc)
        expect(sample(text, "runway_builds_total", builder="cloudBuild", result="failure") == 1,
               "failure: runway_builds_total{result=failure} 1 and "
               "runway_build_failures_total{reason=BuildFailed} 1")
        expect(sc.emulator.service()["etag"] == before["etag"],
               "failure: the running service was not touched")
        # A resync later: still one build.
        time.sleep(1.0)
        expect(len(creates(sc)) == 1, "failure: the same spec is not built again",
               len(creates(sc)))
        stop_process(proc)
        done = sc.runway("apply", *self.args(sc, "--timeout", "60s"), expect_code=1)
        expect(len(creates(sc)) == 1 and "BuildFailed" in done.stdout,
               "failure: apply after a restart exits 1, reports BuildFailed, builds nothing",
               done.stdout)
        sc.write("api.yaml", build_manifest("3"))
        sc.runway("apply", *self.args(sc, "--timeout", "120s"))
        expect(len(creates(sc)) == 2, "failure: a new source revision builds and converges")

    # ---- 3 ---------------------------------------------------------------------------------------

    def test_cloud_build_timeout(self, sc):
        self.prepare(sc, rules=[{"source": f"{GIT_URL}#*", "outcome": "TIMEOUT"}])
        # The emulator ends a TIMEOUT build when its own timeout passes, as Cloud Build does.
        sc.write("api.yaml", build_manifest("4", timeout="2s"))
        done = sc.runway("apply", *self.args(sc, "--timeout", "60s"), expect_code=1)
        item = status_item(sc)
        built = condition(item, "BuildSucceeded")
        expect(built.get("reason") == "Timeout" and "TIMEOUT" in built.get("message", ""),
               "timeout: BuildSucceeded=False, reason Timeout", item)
        expect("Timeout" in done.stdout or "TIMEOUT" in done.stdout,
               "timeout: apply's summary says so", done.stdout)
        expect(sc.emulator.revisions() == ["api-00001-old"],
               "timeout: no revision was made")

    # ---- 4 ---------------------------------------------------------------------------------------

    def test_restart_mid_build(self, sc):
        self.prepare(sc, work="4s")
        sc.write("api.yaml", build_manifest("5"))
        proc, _ = sc.start_run(*self.args(sc))
        sc.wait_for("a WORKING build",
                    lambda: any(b["status"] == "WORKING" for b in builds_of(sc)), alive=proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        ok("restart: runway killed -9 while the build works")
        proc, _ = sc.start_run(*self.args(sc))
        sc.wait_converged(REVISION_RE, alive=proc)
        expect(len(creates(sc)) == 1, "restart: the running build was adopted; one build in all",
               len(creates(sc)))
        digest = builds_of(sc)[0]["results"]["images"][0]["digest"]
        expect(sc.emulator.service()["template"]["containers"][0]["image"] ==
               f"{REPOSITORY}@{digest}", "restart: its digest was deployed")
        stop_process(proc)

    # ---- 5 ---------------------------------------------------------------------------------------

    def test_5xx_while_polling(self, sc):
        self.prepare(sc, work="1s")
        sc.emulator.call("POST", "/_emulator/faults",
                         {"method": "GET", "path": f"/v1/projects/{PROJECT}/locations/global/"
                          "builds/*", "count": 6, "action": "error", "code": 503})
        sc.write("api.yaml", build_manifest("6"))
        sc.runway("apply", *self.args(sc, "--timeout", "120s"))
        faulted = [e for e in sc.emulator.requests() if e.get("fault")]
        expect(len(faulted) == 6, "5xx: six builds.get answered 503", len(faulted))
        expect(len(creates(sc)) == 1, "5xx: one build; the service converged on its digest")

    # ---- 6 ---------------------------------------------------------------------------------------

    def test_incident_engines_down(self, sc):
        engines = os.path.join(sc.work, "engines")
        bin_dir = os.path.join(engines, "bin")
        runtime_dir = os.path.join(engines, "xdg")
        os.makedirs(bin_dir)
        os.makedirs(os.path.join(runtime_dir, "podman"))
        for command in ("podman", "docker"):
            path = os.path.join(bin_dir, command)
            with open(path, "w") as f:
                f.write("#!/bin/sh\nexit 1\n")
            os.chmod(path, 0o755)
        # A stale socket: bound, then the listener is gone (what SIGKILL of a service leaves).
        stale = os.path.join(engines, "podman.sock")
        s = socket.socket(socket.AF_UNIX)
        s.bind(stale)
        s.close()
        # A socket that accepts and never answers (DOCKER_HOST).
        hung_path = os.path.join(engines, "docker.sock")
        hung = socket.socket(socket.AF_UNIX)
        hung.bind(hung_path)
        hung.listen(16)
        held = []
        stop = threading.Event()

        def accept_forever():
            hung.settimeout(0.2)
            while not stop.is_set():
                try:
                    held.append(hung.accept()[0])
                except OSError:
                    continue
        acceptor = threading.Thread(target=accept_forever, daemon=True)
        acceptor.start()
        # podman's rootful default socket (/run/podman/podman.sock) does not exist here: that
        # candidate is the "socket missing" case.
        env = dict(os.environ)
        env.update({"PATH": bin_dir + os.pathsep + env.get("PATH", ""),
                    "CONTAINER_HOST": f"unix://{stale}",
                    "DOCKER_HOST": f"unix://{hung_path}",
                    "XDG_RUNTIME_DIR": runtime_dir})
        try:
            self.prepare(sc)
            sc.write("api.yaml", build_manifest("7", builder="auto"))
            proc, stderr_path, port = self.start_run_with_metrics(sc, env=env)
            sc.wait_converged(REVISION_RE, alive=proc)
            expect(len(creates(sc)) == 1, "incident: auto fell back to Cloud Build (one build)")
            log = sc.run_stderr(stderr_path)
            expect("building with Cloud Build" in log and
                   "podman is installed but its service is not running" in log and
                   "podman machine start" in log,
                   "incident: one WARN line says podman is down, how to fix it, and the fallback",
                   log[-3000:])
            text = scrape(port)
            got = {f"{target}/{reason}": sample(text, "runway_connect_failures_total", target=target,
                                  reason=reason)
                   for target, reason in (("podman", "refused"), ("docker", "timeout"),
                                          ("podman", "socket-missing"))}
            expect(all(v >= 1 for v in got.values()),
                   "incident: connect failures counted: podman refused, docker timeout (a socket "
                   "that never answers), podman socket-missing", got)
            if not os.path.exists("/var/run/docker.sock"):
                expect(sample(text, "runway_connect_failures_total", target="docker",
                              reason="socket-missing") >= 1,
                       "incident: the Docker CLI with no daemon (no /var/run/docker.sock) counts "
                       "as docker/socket-missing")
            item = status_item(sc)
            expect(item["image"]["build"]["builder"] == "cloudBuild",
                   "incident: status says the image came from Cloud Build", item.get("image"))
            stop_process(proc)

            # builder local insists: stalled with the fix, nothing built.
            sc.write("api.yaml", build_manifest("8", builder="local"))
            before = len(creates(sc))
            proc, stderr_path, port = self.start_run_with_metrics(sc, env=env)
            sc.wait_for("EngineUnavailable in status",
                        lambda: condition(status_item(sc), "BuildSucceeded").get("reason") ==
                        "EngineUnavailable", alive=proc)
            message = condition(status_item(sc), "BuildSucceeded")["message"]
            expect("podman machine start" in message and "builder: cloudBuild" in message,
                   "incident: builder local stalls with the probe's fix in status", message)
            expect(len(creates(sc)) == before, "incident: builder local started no Cloud Build")
            stop_process(proc)
        finally:
            stop.set()
            acceptor.join(timeout=5)
            for conn in held:
                conn.close()
            hung.close()


    # ---- 7 ---------------------------------------------------------------------------------------

    def test_local_build_with_real_podman(self, sc):
        for tool in ("podman", "docker-registry", "git"):
            if not shutil.which(tool):
                raise Failure(f"{tool} is not installed; scripts/install-deps.sh installs it")
        engines = RealEngines(sc.work)
        try:
            registry = engines.start_registry()
            socket_path = engines.start_podman()
            url, first = engines.start_git_daemon()
            repository = f"{registry}/e2e/api"
            env = dict(os.environ)
            env.update({"CONTAINER_HOST": f"unix://{socket_path}",
                        "XDG_RUNTIME_DIR": os.path.join(sc.work, "xdg")})
            self.prepare(sc)
            sc.write("api.yaml", build_manifest(first, builder="local", git_url=url,
                                                repository=repository))
            proc, stderr_path, port = self.start_run_with_metrics(
                sc, "--runtime", "podman", "--insecure-registry", env=env)
            s = sc.wait_converged(REVISION_RE, alive=proc)
            deployed = s["template"]["containers"][0]["image"]
            item = status_item(sc)
            digest = item["image"]["digest"]
            served = engines.registry_digest(repository)
            expect(served and deployed == f"{repository}@{served}" and digest == served,
                   "local: podman built and pushed; the deployed digest is the one the registry "
                   "serves", {"deployed": deployed, "registry": served, "status": digest})
            expect(item["image"]["build"]["builder"] == "local" and not creates(sc),
                   "local: status says builder local; no Cloud Build was started")
            text = scrape(port)
            expect(sample(text, "runway_builds_total", builder="local", result="success") == 1,
                   "local: runway_builds_total{builder=local,result=success} 1", text[-800:])
            stop_process(proc)

            # The incident: the service dies (SIGKILL leaves the socket), a new commit arrives,
            # builder auto falls back to Cloud Build and counts the refused connection.
            engines.kill_podman()
            second = engines.commit("v2")
            sc.write("api.yaml", build_manifest(second, builder="auto", git_url=url,
                                                repository=repository))
            proc, stderr_path, port = self.start_run_with_metrics(
                sc, "--runtime", "podman", "--insecure-registry", env=env)
            sc.wait_for("the Cloud Build fallback", lambda: creates(sc), alive=proc)
            text = sc.wait_for(
                "the refused connection in /metrics",
                lambda: (lambda t: t if sample(t, "runway_connect_failures_total",
                                               target="podman", reason="refused") >= 1
                         else None)(scrape(port)), alive=proc)
            ok("local: podman stopped -> connect failure podman/refused counted")
            log = sc.run_stderr(stderr_path)
            expect("building with Cloud Build" in log and "connection refused" in log,
                   "local: the log says the engine refused and that Cloud Build builds instead",
                   log[-2000:])
            stop_process(proc)
        finally:
            engines.stop()


class RealEngines:
    """docker-registry, `podman system service` and `git daemon` on loopback, in `work`."""

    def __init__(self, work):
        self.work = os.path.join(work, "engines")
        os.makedirs(self.work, exist_ok=True)
        self.procs = []
        self.podman = None
        self.registry = None
        self.repo = os.path.join(self.work, "git", "api")
        self.http = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def path(self, name):
        return os.path.join(self.work, name)

    def spawn(self, argv, log, env=None):
        full = dict(os.environ)
        full.update(env or {})
        with open(self.path(log), "wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=full)
        self.procs.append(proc)
        return proc

    def wait(self, what, check, deadline_s=60):
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise Failure(f"{what} did not come up within {deadline_s} s (logs in {self.work})")

    def start_registry(self):
        port = free_port()
        config = self.path("registry.yml")
        with open(config, "w") as f:
            f.write(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
                    f"    rootdirectory: {self.path('registry-data')}\n"
                    f"http:\n  addr: 127.0.0.1:{port}\n")
        self.spawn(["docker-registry", "serve", config], "registry.log")
        self.registry = f"127.0.0.1:{port}"
        self.wait("docker-registry",
                  lambda: self.http.open(f"http://{self.registry}/v2/", timeout=2).status == 200)
        return self.registry

    def start_podman(self):
        sock = self.path("podman.sock")
        for d in ("podman-tmp",):
            os.makedirs(self.path(d), exist_ok=True)
        with open(self.path("storage.conf"), "w") as f:
            f.write(f'[storage]\ndriver = "vfs"\ngraphroot = "{self.path("podman-root")}"\n'
                    f'runroot = "{self.path("podman-run")}"\n')
        with open(self.path("registries.conf"), "w") as f:
            f.write("unqualified-search-registries = []\n")
        with open(self.path("containers.conf"), "w") as f:
            f.write(f'[engine]\ntmp_dir = "{self.path("podman-tmp")}"\n'
                    'events_logger = "none"\n')
        self.podman = self.spawn(
            ["podman", "--log-level=error", "system", "service", "--time=0", f"unix://{sock}"],
            "podman.log",
            {"CONTAINERS_STORAGE_CONF": self.path("storage.conf"),
             "CONTAINERS_REGISTRIES_CONF": self.path("registries.conf"),
             "CONTAINERS_CONF": self.path("containers.conf"),
             "TMPDIR": self.path("podman-tmp")})

        def answers():
            c = socket.socket(socket.AF_UNIX)
            c.settimeout(2)
            try:
                c.connect(sock)
                c.sendall(b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n")
                return b" 200 " in c.recv(256)
            finally:
                c.close()
        self.wait("podman system service", answers)
        return sock

    def kill_podman(self):
        stop_process(self.podman, signal.SIGKILL)

    def git(self, *args):
        subprocess.run(["git", "-C", self.repo, "-c", "user.name=e2e", "-c",
                        "user.email=e2e@example.com", *args], check=True, capture_output=True)

    def commit(self, text):
        with open(os.path.join(self.repo, "hello.txt"), "w") as f:
            f.write(text + "\n")
        self.git("add", "-A")
        self.git("commit", "-q", "-m", text)
        return subprocess.run(["git", "-C", self.repo, "rev-parse", "HEAD"], check=True,
                              capture_output=True, text=True).stdout.strip()

    def start_git_daemon(self):
        os.makedirs(self.repo)
        subprocess.run(["git", "init", "-q", self.repo], check=True)
        with open(os.path.join(self.repo, "Dockerfile"), "w") as f:
            f.write("FROM scratch\nCOPY hello.txt /hello.txt\n")
        first = self.commit("v1")
        port = free_port()
        self.spawn(["git", "daemon", "--reuseaddr", f"--base-path={self.path('git')}",
                    "--export-all", "--listen=127.0.0.1", f"--port={port}",
                    "--enable=upload-pack", "--informative-errors"], "git-daemon.log")
        self.wait("git daemon", lambda: socket.create_connection(("127.0.0.1", port), 1).close()
                  is None)
        return f"git://127.0.0.1:{port}/api", first

    def registry_digest(self, repository):
        """The Docker-Content-Digest of the newest src- tag of `repository` in the registry."""
        name = repository.split("/", 1)[1]
        tags = json.loads(self.http.open(f"http://{self.registry}/v2/{name}/tags/list",
                                         timeout=10).read()).get("tags") or []
        if len(tags) != 1:
            return None
        request = urllib.request.Request(
            f"http://{self.registry}/v2/{name}/manifests/{tags[0]}", method="HEAD",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json, "
                               "application/vnd.docker.distribution.manifest.v2+json"})
        return self.http.open(request, timeout=10).headers.get("Docker-Content-Digest")

    def stop(self):
        for proc in self.procs:
            stop_process(proc)


SCENARIOS = [
    (1, "Cloud Build success", "test_cloud_build_success"),
    (2, "Cloud Build failure", "test_cloud_build_failure"),
    (3, "Cloud Build timeout", "test_cloud_build_timeout"),
    (4, "kill -9 mid-build, restart", "test_restart_mid_build"),
    (5, "5xx while polling", "test_5xx_while_polling"),
    (6, "the incident: engines that do not answer", "test_incident_engines_down"),
    (7, "local build with the real Podman service and registry", "test_local_build_with_real_podman"),
]


def main(argv):
    if len(argv) < 3:
        print("usage: builds_e2e_test.py PATH_TO_RUNWAY PATH_TO_CLOUDRUN_EMULATOR [N...]",
              file=sys.stderr)
        return 2
    test = Builds(os.path.abspath(argv[1]), os.path.abspath(argv[2]))
    return run_scenarios(test, SCENARIOS, {int(n) for n in argv[3:]}, "builds end to end")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
