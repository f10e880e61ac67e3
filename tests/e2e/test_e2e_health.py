#!/usr/bin/env python3
"""test_e2e_health — a worker that keeps failing is kept away from work.

Two workers run the exec engine; the command fails at once on w0 (its
environment has RFARM_TEST_BROKEN=1, which the command checks) and renders
FFmpeg's testsrc2 on w1. The farm must:

- finish every job anyway: each segment w0 fails is retried and rendered
  by w1 (the coordinator runs with a short retry backoff);
- keep w0 away from a job it failed twice (Redis `kept_from_jobs`, and the
  coordinator's "worker kept away" log line);
- blame w0 only for failures another worker then rendered, and after such
  failures in three different jobs in a row, quarantine it: `rfarm workers
  --json` says state "quarantined" with a quarantine end in the future and
  fail_streak >= 3, Redis has the same, and the job submitted after that
  is rendered by w1 alone.
- w1's own record stays clean (fail_streak 0, not quarantined).
"""

import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import farm  # noqa: E402

suite = farm.Suite("test_e2e_health")

COMMAND = ("if [ -n \"$RFARM_TEST_BROKEN\" ]; then echo broken-worker >&2; exit 9; fi; "
           "ffmpeg -v error -f lavfi -i testsrc2=size=${RFARM_WIDTH}x${RFARM_HEIGHT}:rate=${RFARM_FPS} "
           "-vf trim=start_frame=${RFARM_FIRST_FRAME}:end_frame=$((RFARM_FIRST_FRAME+RFARM_FRAMES)),"
           "setpts=PTS-STARTPTS -pix_fmt yuv420p -f yuv4mpegpipe -")


def spec(job_id, path):
    return {
        "id": job_id, "engine": "exec", "params": {"command": COMMAND, "timeout_s": 60},
        "prompt": "health", "seed": 1, "width": 64, "height": 48, "fps": 25, "frames": 60,
        "segment_frames": 16, "overlap_frames": 4, "blend": "linear",
        "output": {"path": path, "container": "y4m", "codec": "rawvideo"},
    }


def workers_json(f):
    r = f.cli("workers", "--json")
    if r.returncode != 0:
        raise farm.FarmError(f"workers --json: exit {r.returncode}: {r.stderr.strip()}")
    return {w["id"]: w for w in json.loads(r.stdout)["workers"]}


def test_failing_worker_is_kept_away_then_quarantined():
    args = ["--max-attempts", "5", "--retry-backoff-ms", "50", "--quarantine-ms", "60000"]
    with suite.farm(workers=0, name="health", coordinator_args=args) as f:
        f.add_worker("w0", capacity=2, env={"RFARM_TEST_BROKEN": "1"})
        f.add_worker("w1", capacity=1)
        for i in range(3):
            job = f.submit(spec(f"health-{i}", f.out(f"health-{i}.y4m")))
            if not f.wait_done(job, timeout=60):
                return
            suite.equal(farm.probe(f.out(f"health-{i}.y4m")).get("frames"), 60,
                        f"health-{i} has all 60 frames despite the broken worker")
        log = f.coordinator.log_text()
        suite.check(re.search(r"worker kept away from job worker=w0 job=health-0", log),
                    "coordinator kept w0 away from health-0 after two failures")
        suite.check(re.search(r"worker quarantined worker=w0 fail_streak=3", log),
                    "coordinator quarantined w0 after blamed failures in three jobs")
        ws = workers_json(f)
        now_ms = time.time() * 1000
        w0, w1 = ws.get("w0", {}), ws.get("w1", {})
        suite.equal(w0.get("state"), "quarantined", "rfarm workers: w0 is quarantined")
        suite.check(w0.get("fail_streak", 0) >= 3, "rfarm workers: w0 fail_streak >= 3",
                    w0.get("fail_streak"))
        suite.check(w0.get("quarantined_until_ms", 0) > now_ms + 30000,
                    "rfarm workers: w0's quarantine ends about a minute from now",
                    w0.get("quarantined_until_ms"))
        suite.check("broken-worker" in (w0.get("last_error") or ""),
                    "rfarm workers: w0's last error holds the command's stderr", w0.get("last_error"))
        suite.equal(int(f.redis_cli("HGET", f"{f.prefix}worker:w0", "fail_streak") or 0) >= 3, True,
                    "redis worker:w0 fail_streak >= 3")
        suite.check(int(f.redis_cli("HGET", f"{f.prefix}worker:w0", "quarantined_until_ms") or 0) > now_ms,
                    "redis worker:w0 quarantined_until_ms is in the future")
        suite.equal(w1.get("fail_streak"), 0, "w1 fail_streak stays 0")
        suite.equal(w1.get("quarantined_until_ms"), 0, "w1 is not quarantined")
        text = f.cli("workers").stdout
        suite.check(re.search(r"^w0\s+quarantined\b.*quarantined for \d+s more", text, re.M),
                    "rfarm workers (table) shows w0 quarantined", text)

        # Quarantined: the next job goes to w1 alone, without a failure.
        before = len(re.findall(r"segment started", f.workers["w0"].log_text()))
        job = f.submit(spec("health-after", f.out("health-after.y4m")))
        if f.wait_done(job, timeout=60):
            after = len(re.findall(r"segment started", f.workers["w0"].log_text()))
            suite.equal(after, before, "w0 got no segment while quarantined")
            segs = f.redis_segment_workers("health-after", 5)
            suite.check(all(w == "w1" for w in segs.values()), "every segment of health-after was "
                        "rendered by w1", segs)
            st = f.status("health-after")
            suite.equal(st.get("state"), "done", "health-after is done")


suite.case(test_failing_worker_is_kept_away_then_quarantined)
sys.exit(suite.finish())
