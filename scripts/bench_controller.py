#!/usr/bin/env python3
"""Benchmarks of issue 4 (numbers, not pass/fail), against the emulator on loopback:

1. steady state: N services already converged; one `runway apply` pass (list per region and page,
   no writes): CPU seconds, peak RSS, reads and writes the emulator counted.
2. change-to-PATCH latency: `runway run` watching a directory; a manifest is saved (rename into
   place) and the time until the dark-deploy PATCH reaches the emulator is measured (p50, p99).
3. 100 traffic changes through Runway (`runway run`, each change saved to the manifest and
   waited for) and through a `gcloud run services update-traffic` loop on the same emulator.

Usage: bench_controller.py RUNWAY EMULATOR [--services 1000,10000] [--latency 100]
       [--changes 100] [--gcloud-changes 100]
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../tests"))
from gcloud_env import gcloud_env  # noqa: E402

PROJECT = "bench-project"
REGION = "us-central1"
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def digest(n):
    return f"{n:064x}"


STARTED = []  # every process started, stopped on exit whatever happens


class Emulator:
    def __init__(self, binary, work, delay="0s"):
        self.work = work
        port_file = os.path.join(work, "emulator.port")
        self.proc = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--port-file", port_file,
             "--reconcile-delay", delay, "--max-body-bytes", str(256 << 20)],
            stderr=open(os.path.join(work, "emulator.log"), "w"))
        STARTED.append(self.proc)
        deadline = time.time() + 30
        while not os.path.exists(port_file) and time.time() < deadline:
            time.sleep(0.02)
        self.port = int(open(port_file).read())
        self.base = f"http://127.0.0.1:{self.port}"

    def api(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        with OPENER.open(request, timeout=60) as response:
            return json.loads(response.read() or b"{}")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def write_manifest(directory, name, image_n, traffic=None, file_name=None):
    traffic = traffic or [{"revision": "@new", "percent": 100}]
    doc = {"apiVersion": "runway.dev/v1alpha1", "kind": "CloudRunService",
           "metadata": {"name": name, "namespace": "bench"},
           "spec": {"project": PROJECT, "region": REGION, "service": name,
                    "image": f"us-docker.pkg.dev/{PROJECT}/apps/{name}@sha256:{digest(image_n)}",
                    "traffic": traffic}}
    path = os.path.join(directory, file_name or f"{name}.json")
    temporary = path + ".tmp"
    with open(temporary, "w") as f:
        json.dump(doc, f)
    os.rename(temporary, path)  # one atomic save, as editors and git do


def runway_flags(emulator):
    return ["--cloudrun-endpoint", emulator.base + "/", "--writes-per-minute", "1000000",
            "--reads-per-minute", "1000000"]


def steady_state(args, count):
    work = tempfile.mkdtemp(prefix="bench-steady-")
    try:
        emulator = Emulator(args.emulator, work)
        manifests = os.path.join(work, "manifests")
        os.makedirs(manifests)
        # 100 services per multi-document YAML file, like a team directory.
        for start in range(0, count, 100):
            docs = []
            for i in range(start, min(count, start + 100)):
                docs.append(json.dumps({
                    "apiVersion": "runway.dev/v1alpha1", "kind": "CloudRunService",
                    "metadata": {"name": f"svc-{i}", "namespace": "bench"},
                    "spec": {"project": PROJECT, "region": REGION, "service": f"svc-{i}",
                             "image": f"us-docker.pkg.dev/{PROJECT}/a/s@sha256:{digest(i)}",
                             "traffic": [{"revision": "@new", "percent": 100}]}}))
            with open(os.path.join(manifests, f"team-{start // 100}.yaml"), "w") as f:
                f.write("\n---\n".join(docs) + "\n")
        state = os.path.join(work, "state")
        common = [args.runway, "apply", manifests, "--state-dir", state, "--workers", "8",
                  "--poll-interval", "50ms", "--timeout", "20m"] + runway_flags(emulator)
        started = time.time()
        subprocess.run(common, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        converge_seconds = time.time() - started
        emulator.api("DELETE", "/_emulator/requests")
        quiet = [args.runway, "--log-level", "warn"] + common[1:]
        timed = subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M"] + quiet,
                               check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
        wall, user, system, rss_kb = timed.stderr.strip().splitlines()[-1].split()
        counters = emulator.api("GET", "/_emulator/counters")
        # The controller's own steady state: `runway run`, one resync period measured from
        # /proc once the first resync (which also loads and validates every manifest) is done.
        pages = counters["reads"]
        emulator.api("DELETE", "/_emulator/requests")
        port_file = os.path.join(work, "http.port")
        run = subprocess.Popen([args.runway, "--log-level", "warn", "run", manifests,
                                "--state-dir", state, "--workers", "8", "--resync", "3s",
                                "--http-address", "127.0.0.1:0", "--http-port-file", port_file]
                               + runway_flags(emulator), stderr=subprocess.DEVNULL)
        STARTED.append(run)

        def lists():
            return emulator.api("GET", "/_emulator/counters")["reads"]

        def cpu_seconds():
            fields = open(f"/proc/{run.pid}/stat").read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        wait_for(lambda: lists() >= pages, "the first resync", timeout=300)
        time.sleep(0.5)  # let the workers finish the passes the first resync queued
        before_cpu, before_reads = cpu_seconds(), lists()
        before_writes = emulator.api("GET", "/_emulator/counters")["writes"]
        wait_for(lambda: lists() >= before_reads + pages, "the next resync", timeout=60)
        time.sleep(0.5)
        resync_cpu = cpu_seconds() - before_cpu
        after = emulator.api("GET", "/_emulator/counters")
        rss_mb = int([l for l in open(f"/proc/{run.pid}/status") if l.startswith("VmHWM")][0]
                     .split()[1]) / 1024
        scrape = measure_scrapes(int(open(port_file).read()), args.scrapes)
        memory = memory_over_resyncs(run, lists, pages, args.memory_resyncs)
        run.send_signal(signal.SIGTERM)
        run.wait(timeout=60)
        emulator.stop()
        return {"services": count, "first_converge_seconds": round(converge_seconds, 2),
                "apply_pass_wall_seconds": float(wall),
                "apply_pass_cpu_seconds": round(float(user) + float(system), 3),
                "apply_pass_peak_rss_mb": round(int(rss_kb) / 1024, 1),
                "apply_pass_reads": counters["reads"], "apply_pass_writes": counters["writes"],
                "resync_cpu_seconds": round(resync_cpu, 3),
                "resync_reads": after["reads"] - before_reads,
                "resync_writes": after["writes"] - before_writes,
                "run_peak_rss_mb": round(rss_mb, 1),
                **scrape, **memory,
                "by_route": after["byRoute"]}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure_scrapes(port, count):
    """`count` GETs of /metrics: time per scrape, size and series."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    times, body = [], b""
    for _ in range(count):
        started = time.perf_counter()
        with opener.open(f"http://127.0.0.1:{port}/metrics", timeout=60) as response:
            body = response.read()
        times.append(time.perf_counter() - started)
    times.sort()
    series = sum(1 for line in body.decode().splitlines() if line and not line.startswith("#"))
    return {"scrape_p50_ms": round(times[len(times) // 2] * 1000, 1),
            "scrape_max_ms": round(times[-1] * 1000, 1),
            "scrape_bytes": len(body), "scrape_series": series}


def memory_over_resyncs(run, lists, pages, resyncs):
    """RSS after a warm-up resync, then after each of `resyncs` more (each one pass per service):
    reconciles must not grow memory. The growth ratio compares the last sample with the largest
    of the first half: a leak keeps climbing, allocator settling does not."""
    def rss_mb():
        return int([l for l in open(f"/proc/{run.pid}/status") if l.startswith("VmRSS")][0]
                   .split()[1]) / 1024
    reads = lists()
    wait_for(lambda: lists() >= reads + pages, "a resync", timeout=120)
    time.sleep(0.5)
    samples = [rss_mb()]
    for _ in range(resyncs):
        reads = lists()
        wait_for(lambda: lists() >= reads + pages, "a resync", timeout=120)
        time.sleep(0.3)
        samples.append(rss_mb())
    half = max(samples[: len(samples) // 2 + 1])
    return {"rss_samples_mb": [round(x, 1) for x in samples],
            "rss_last_vs_first_half_max": round(samples[-1] / half, 3)}


def parse_time(text):
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=__import__("datetime").timezone.utc).timestamp()


class RunwayRun:
    def __init__(self, args, emulator, manifests, work):
        self.proc = subprocess.Popen(
            [args.runway, "--log-level", "warn", "run", manifests, "--state-dir",
             os.path.join(work, "state"), "--poll-interval", "20ms", "--resync", "10m"]
            + runway_flags(emulator), stderr=open(os.path.join(work, "runway.log"), "w"))
        STARTED.append(self.proc)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


def wait_for(predicate, what, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.001)
    raise SystemExit(f"timed out waiting for {what}")


def real_patches(emulator, since, path_suffix):
    log = emulator.api("GET", f"/_emulator/requests?since={since}")
    return [r for r in log["requests"] if r["method"] == "PATCH" and r["path"].endswith(path_suffix)
            and "validateOnly=true" not in r.get("query", "") and r["status"] == 200], log["last"]


def latency(args):
    work = tempfile.mkdtemp(prefix="bench-latency-")
    try:
        emulator = Emulator(args.emulator, work)
        manifests = os.path.join(work, "manifests")
        os.makedirs(manifests)
        services = 10
        for i in range(services):
            write_manifest(manifests, f"svc-{i}", i)
        runway = RunwayRun(args, emulator, manifests, work)
        wait_for(lambda: emulator.api("GET", "/_emulator/counters")["writes"] >= services,
                 "initial convergence")
        time.sleep(0.5)
        samples = []
        cursor = emulator.api("GET", "/_emulator/requests?since=0")["last"]
        for n in range(args.latency):
            name = f"svc-{n % services}"
            saved = time.time()
            write_manifest(manifests, name, 1000 + n)
            suffix = f"/services/{name}"
            seen = wait_for(lambda: real_patches(emulator, cursor, suffix)[0], "the PATCH")
            samples.append(parse_time(seen[0]["time"]) - saved)
            # Wait for the promotion too, so each change starts from a converged service.
            patches, last = wait_for(
                lambda: (lambda p: p if len(p[0]) >= 2 else None)(
                    real_patches(emulator, cursor, suffix)), "the promotion")
            cursor = last
        runway.stop()
        emulator.stop()
        samples.sort()
        return {"changes": len(samples), "p50_ms": round(statistics.median(samples) * 1000, 1),
                "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1000, 1),
                "max_ms": round(samples[-1] * 1000, 1)}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def emulator_gcloud_env(emulator, work):
    return gcloud_env(emulator.port, PROJECT, REGION, os.path.join(work, "gcloud-config"))


def traffic_changes(args):
    work = tempfile.mkdtemp(prefix="bench-traffic-")
    try:
        emulator = Emulator(args.emulator, work)
        emulator.api("POST", "/_emulator/seed", {"services": [{
            "name": f"projects/{PROJECT}/locations/{REGION}/services/api",
            "template": {"revision": "api-old",
                         "containers": [{"image": f"us-docker.pkg.dev/{PROJECT}/a/api@sha256:{digest(1)}"}]}}]})
        manifests = os.path.join(work, "manifests")
        os.makedirs(manifests)
        write_manifest(manifests, "api", 2)
        runway = RunwayRun(args, emulator, manifests, work)
        service_path = f"/v2/projects/{PROJECT}/locations/{REGION}/services/api"
        new_revision = wait_for(
            lambda: (lambda s: s["latestReadyRevision"].rsplit("/", 1)[1]
                     if s["latestReadyRevision"].endswith(tuple("0123456789abcdef"))
                     and "-r" in s["latestReadyRevision"] else None)(
                emulator.api("GET", service_path)), "the first rollout")

        def serves(percent):
            statuses = emulator.api("GET", service_path).get("trafficStatuses", [])
            got = {t.get("revision"): t.get("percent", 0) for t in statuses}
            return got.get(new_revision, 0) == percent and got.get("api-old", 0) == 100 - percent

        started = time.time()
        for i in range(args.changes):
            percent = 1 + i % 99
            write_manifest(manifests, "api", 2, [{"revision": "@new", "percent": percent},
                                                 {"revision": "api-old", "percent": 100 - percent}])
            wait_for(lambda: serves(percent), f"split {percent}")
        runway_seconds = time.time() - started
        runway.stop()
        result = {"changes": args.changes, "runway_seconds": round(runway_seconds, 2),
                  "runway_per_change_ms": round(runway_seconds / args.changes * 1000, 1)}
        gcloud = shutil.which("gcloud")
        if gcloud and args.gcloud_changes > 0:
            env = emulator_gcloud_env(emulator, work)
            started = time.time()
            for i in range(args.gcloud_changes):
                percent = 1 + i % 99
                subprocess.run([gcloud, "run", "services", "update-traffic", "api", "--quiet",
                                f"--to-revisions={new_revision}={percent},api-old={100 - percent}"],
                               env=env, check=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
            gcloud_seconds = time.time() - started
            result.update({"gcloud_changes": args.gcloud_changes,
                           "gcloud_seconds": round(gcloud_seconds, 2),
                           "gcloud_per_change_ms": round(gcloud_seconds / args.gcloud_changes * 1000, 1),
                           "ratio_gcloud_over_runway": round(
                               (gcloud_seconds / args.gcloud_changes) /
                               (runway_seconds / args.changes), 1)})
        else:
            result["gcloud"] = "not measured (gcloud not installed)"
        emulator.stop()
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("runway")
    parser.add_argument("emulator")
    parser.add_argument("--services", default="1000,10000")
    parser.add_argument("--latency", type=int, default=100)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--gcloud-changes", type=int, default=100)
    parser.add_argument("--scrapes", type=int, default=20, help="GETs of /metrics to time")
    parser.add_argument("--memory-resyncs", type=int, default=10,
                        help="resyncs (each one pass per service) between the two RSS samples")
    args = parser.parse_args()
    results = {}
    for count in [int(c) for c in args.services.split(",") if c]:
        results[f"steady_{count}"] = steady_state(args, count)
        print(json.dumps(results[f"steady_{count}"]), flush=True)
    if args.latency:
        results["latency"] = latency(args)
        print(json.dumps(results["latency"]), flush=True)
    if args.changes:
        results["traffic"] = traffic_changes(args)
        print(json.dumps(results["traffic"]), flush=True)
    print("== summary (targets: steady 10,000 < 1 s CPU and < 100 MB, writes 0; p99 < 50 ms; "
          "Runway >= 100x gcloud)")
    for key, value in results.items():
        print(key, {k: v for k, v in value.items() if k != "by_route"})


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        for proc in STARTED:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
