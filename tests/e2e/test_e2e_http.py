#!/usr/bin/env python3
"""test_e2e_http — the coordinator's JSON API, /metrics and Grafana board.

A real farm (Redis, coordinator with --http, two workers) on loopback:

- the JSON API lists jobs (also filtered by batch and state), shows a job
  with its segments (which worker, when, attempts) and log, serves the
  finished video, submits and cancels;
- bad input is a 400 whose message names the parameter, an unknown job or
  batch a 404, and with a bearer token configured, submit and cancel
  without it (or with a wrong one) are a 401 while reading stays open;
- /metrics parses with Prometheus' own parser and every counter equals the
  value the coordinator keeps in Redis (<prefix>metrics);
- the time series streams stay within their retention;
- deploy/grafana/rfarm.json is valid JSON and every metric it queries is
  exported by /metrics.
"""

import json
import os
import re
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import farm  # noqa: E402

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

suite = farm.Suite("test_e2e_http")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOKEN = "s3cret-token-for-the-test"


def call(port, method, path, body=None, token=None):
    """(status, parsed JSON body or text) of one request."""
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            status, raw, ctype = r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        status, raw, ctype = e.code, e.read(), e.headers.get("Content-Type", "")
    if ctype.startswith("application/json"):
        return status, json.loads(raw)
    return status, raw


def expect_error(port, method, path, status, words, body=None, token=None):
    got, reply = call(port, method, path, body, token)
    suite.equal(got, status, f"{method} {path} -> {status}")
    msg = reply.get("error", "") if isinstance(reply, dict) else ""
    for w in words:
        suite.check(w in msg, f"{method} {path}: message names '{w}'", repr(msg))
    return reply


def metric_samples(text):
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = s.name + ("{" + ",".join(f"{k}={v}" for k, v in sorted(s.labels.items())) + "}"
                            if s.labels else "")
            out[key] = s.value
    return out


def test_api_and_metrics():
    port = farm.free_ports(1)[0]
    args = ["--http", f"127.0.0.1:{port}", "--metrics-interval-ms", "300",
            "--metrics-retention-s", "3"]
    with suite.farm(workers=2, capacity=1, name="http", coordinator_args=args) as f:
        spec = farm.synthetic_spec("api-job", f.out("api.mp4"), frames=60, segment_frames=24,
                                   overlap_frames=4, cost_ms=20)
        st, reply = call(port, "POST", "/api/jobs", json.dumps(spec))
        suite.equal(st, 201, "POST /api/jobs submits a job")
        suite.equal(reply.get("id"), "api-job", "the reply names the job")
        st, reply = call(port, "POST", "/api/jobs", json.dumps(spec))
        suite.equal(st, 409, "submitting the same id again is a conflict")

        # A batch through the CLI, to filter by.
        lines = [json.dumps(farm.synthetic_spec(None, f.out(f"b{i}.mp4"), frames=12,
                                                segment_frames=12, overlap_frames=2))
                 for i in range(3)]
        bpath = os.path.join(f.tmp, "specs", "batch.jsonl")
        with open(bpath, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        r = f.cli("submit", bpath, "--name", "filterme")
        batch = r.stdout.strip()
        rc, err = f.wait("api-job", 60)
        suite.check(rc == 0, "the API-submitted job renders", err)
        farm.wait_for(lambda: all(j.get("state") == "done" for j in
                                  call(port, "GET", f"/api/jobs?batch={batch}")[1]["jobs"]), 60)

        st, reply = call(port, "GET", "/api/jobs")
        ids = [j["id"] for j in reply.get("jobs", [])]
        suite.check("api-job" in ids and len(ids) == 4, "GET /api/jobs lists every job", ids)
        st, reply = call(port, "GET", f"/api/jobs?batch={batch}")
        bids = [j["id"] for j in reply["jobs"]]
        suite.check(len(bids) == 3 and all(j["batch"] == batch for j in reply["jobs"]),
                    "?batch= lists only that batch's jobs", bids)
        st, reply = call(port, "GET", "/api/jobs?state=done&limit=2")
        suite.check(len(reply["jobs"]) == 2 and all(j["state"] == "done" for j in reply["jobs"]),
                    "?state=done&limit=2 gives two done jobs", reply)
        st, reply = call(port, "GET", "/api/batches")
        suite.check(any(b["id"] == batch and b["name"] == "filterme" for b in reply["batches"]),
                    "GET /api/batches lists the batch")

        st, job = call(port, "GET", "/api/jobs/api-job")
        suite.equal(st, 200, "GET /api/jobs/ID")
        segs = job.get("segment_list", [])
        suite.equal(len(segs), job.get("segments"), "the job page lists every segment")
        suite.check(all(s.get("worker") in ("w0", "w1") and s.get("state") == "done"
                        and s.get("finished_ms", 0) >= s.get("started_ms", 1) > 0 for s in segs),
                    "each segment says which worker rendered it and when", segs)
        suite.check(any("job done" in line for line in job.get("log", [])),
                    "the job page has the job's log")
        suite.equal(job.get("progress"), 1.0, "a done job's progress is 1")
        st, video = call(port, "GET", job.get("output_url", "/none"))
        suite.check(st == 200 and video[4:8] == b"ftyp", "output_url serves the MP4",
                    f"status {st}, {len(video) if isinstance(video, bytes) else video} bytes")
        suite.equal(len(video), os.path.getsize(f.out("api.mp4")), "all of it")

        # Bad input: 400 naming the parameter; unknown things: 404.
        expect_error(port, "POST", "/api/jobs", 400, ["body", "not JSON"], body="{nope")
        expect_error(port, "POST", "/api/jobs", 400, ["frames"],
                     body=json.dumps(dict(spec, id="bad-frames", frames=0)))
        rel = dict(spec, id="rel")
        rel["output"] = dict(spec["output"], path="relative/x.mp4")
        expect_error(port, "POST", "/api/jobs", 400, ["output.path", "absolute"],
                     body=json.dumps(rel))
        expect_error(port, "GET", "/api/jobs?limit=0", 400, ["limit"])
        expect_error(port, "GET", "/api/jobs?state=sleeping", 400, ["state", "sleeping"])
        expect_error(port, "GET", "/api/jobs/bad%20id", 400, ["id", "not a valid"])
        expect_error(port, "GET", "/api/metrics?points=x", 400, ["points"])
        expect_error(port, "GET", "/api/jobs/no-such-job", 404, ["no job", "no-such-job"])
        expect_error(port, "GET", "/api/jobs?batch=no-such-batch", 404, ["no batch"])
        expect_error(port, "POST", "/api/jobs/no-such-job/cancel", 404, ["no job"])
        expect_error(port, "GET", "/api/jobs/no-such-job/output", 404, ["no job"])
        expect_error(port, "GET", "/api/teapots", 404, ["no such API call"])
        expect_error(port, "POST", "/api/jobs/api-job/cancel", 409, ["ended"])
        suite.check(not f.redis_keys(f.prefix + "job:bad-frames*")
                    and not f.redis_keys(f.prefix + "job:rel*"),
                    "refused submissions leave nothing in Redis")

        # /metrics against Redis, once the coordinator has written its last
        # counts (two equal reads of Redis around the scrape).
        time.sleep(1.5)
        for _ in range(20):
            before = f.redis_hgetall(f.prefix + "metrics")
            st, text = call(port, "GET", "/metrics")
            after = f.redis_hgetall(f.prefix + "metrics")
            if before == after:
                break
            time.sleep(0.3)
        suite.equal(st, 200, "GET /metrics")
        samples = metric_samples(text.decode())
        suite.check(len(samples) > 20, "/metrics parses with prometheus_client", len(samples))
        for name in ("jobs_submitted", "jobs_done", "segments_rendered", "frames_stitched",
                     "frames_received", "bytes_received", "jobs_failed", "jobs_cancelled",
                     "segments_retried", "segments_lost"):
            suite.equal(samples.get(f"rfarm_{name}_total"), float(after.get(name, 0)),
                        f"rfarm_{name}_total equals {f.prefix}metrics {name}")
        suite.equal(samples.get("rfarm_jobs_done_total"), 4.0, "four jobs done counted")
        suite.equal(samples.get("rfarm_frames_stitched_total"), 60.0 + 3 * 12,
                    "every written frame counted")
        suite.equal(samples.get("rfarm_workers_alive"), 2.0, "two workers alive")
        suite.check(samples.get("rfarm_worker_segments_done_total{worker=w0}", 0) +
                    samples.get("rfarm_worker_segments_done_total{worker=w1}", 0) ==
                    samples.get("rfarm_segments_rendered_total"),
                    "per-worker segment counts add up")

        # Time series: sampled, and capped to the retention (3 s / 0.3 s).
        st, m = call(port, "GET", "/api/metrics")
        fps = m["series"]["frames_per_s"]
        suite.check(len(fps) >= 3 and max(v for _, v in fps) >= 0, "time series are sampled",
                    len(fps))
        xlen = int(f.redis_command("XLEN", f.prefix + "ts:queue_depth"))
        suite.check(0 < xlen <= 10, "a series keeps only its retention (<= 10 samples)", xlen)

        # Grafana: valid JSON; every metric it queries is exported.
        with open(os.path.join(ROOT, "deploy", "grafana", "rfarm.json")) as fh:
            board = json.load(fh)
        exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
        names = set(re.findall(r"\brfarm_[a-z_]+\b", " ".join(exprs)))
        # A family may have no sample yet (no queued priority): its TYPE line counts.
        exported = {k.split("{")[0] for k in samples} | set(
            re.findall(r"^# TYPE (\S+) ", text.decode(), re.M))
        suite.check(len(names) >= 10, "the Grafana board queries rfarm metrics", sorted(names))
        missing = sorted(names - exported)
        suite.check(not missing, "every metric the Grafana board queries is in /metrics", missing)


def test_bearer_token():
    port = farm.free_ports(1)[0]
    tokdir = tempfile.mkdtemp(prefix="rfarm-token-")
    tokfile = os.path.join(tokdir, "token")
    with open(tokfile, "w") as fh:
        fh.write(TOKEN + "\n")
    args = ["--http", f"127.0.0.1:{port}", "--http-token-file", tokfile]
    try:
        with suite.farm(workers=1, name="http-token", coordinator_args=args) as f:
            spec = farm.synthetic_spec("tok-job", f.out("tok.y4m"), frames=400, cost_ms=30)
            expect_error(port, "POST", "/api/jobs", 401, ["Bearer"], body=json.dumps(spec))
            expect_error(port, "POST", "/api/jobs", 401, ["Bearer"], body=json.dumps(spec),
                         token="wrong")
            suite.check(not f.redis_keys(f.prefix + "job:tok-job"),
                        "an unauthorised submit creates nothing")
            st, _ = call(port, "GET", "/api/jobs")
            suite.equal(st, 200, "reading needs no token")
            st, reply = call(port, "POST", "/api/jobs", json.dumps(spec), token=TOKEN)
            suite.equal(st, 201, "submit with the token is accepted")
            expect_error(port, "POST", "/api/jobs/tok-job/cancel", 401, ["Bearer"])
            st, reply = call(port, "POST", "/api/jobs/tok-job/cancel", token=TOKEN)
            suite.equal(st, 200, "cancel with the token")
            farm.wait_for(lambda: call(port, "GET", "/api/jobs/tok-job")[1].get("state")
                          == "cancelled", 20)
            suite.equal(call(port, "GET", "/api/jobs/tok-job")[1].get("state"), "cancelled",
                        "the job is cancelled")
            log = f.coordinator.log_text()
            suite.check(TOKEN not in log, "the token never appears in the log")
    finally:
        os.unlink(tokfile)
        os.rmdir(tokdir)


suite.case(test_api_and_metrics)
suite.case(test_bearer_token)
sys.exit(suite.finish())
