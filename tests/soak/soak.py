#!/usr/bin/env python3
"""soak — many small jobs while workers keep dying (on demand, not in CI).

Submits --jobs small synthetic jobs (all the same spec but their id) to a
farm of --workers workers, then, until every job has ended, SIGKILLs a
random worker every --kill-every seconds and starts a fresh one under a new
name in its place, so the number of workers stays the same. The coordinator
runs with a short lease (--lease-ms) so lost segments come back quickly.

It must hold that every job ends `done` (read from Redis, the source of
truth), that every job's video decodes (rf-vidprobe) to exactly the job's
frame count, and, since the specs are the same, that all the videos are
byte-identical. The coordinator and the surviving workers must exit 0 when
the farm stops. A summary is printed; the exit status is 0 only when
nothing failed.

    python3 tests/soak/soak.py --bin build [--jobs 100] [--workers 4] [--kill-every 3]

Reuses the e2e harness (tests/e2e/farm.py): private Redis, loopback ports,
temporary directory kept on failure (or with --keep).
"""

import argparse
import collections
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import farm  # noqa: E402

ap = argparse.ArgumentParser(description="rfarm soak: jobs under random worker kills")
ap.add_argument("--bin", required=True, help="build directory holding the rfarm programs")
ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
ap.add_argument("--jobs", type=int, default=100, help="jobs to submit (default 100)")
ap.add_argument("--workers", type=int, default=4, help="workers kept running (default 4)")
ap.add_argument("--kill-every", type=float, default=3.0,
                help="seconds between kills; 0 kills nothing (default 3)")
ap.add_argument("--frames", type=int, default=60, help="frames per job (default 60)")
ap.add_argument("--segment-frames", type=int, default=20, help="segment length (default 20)")
ap.add_argument("--overlap-frames", type=int, default=4, help="segment overlap (default 4)")
ap.add_argument("--cost-ms", type=int, default=10, help="synthetic cost per frame (default 10)")
ap.add_argument("--lease-ms", type=int, default=1500, help="coordinator --lease-ms (default 1500)")
ap.add_argument("--timeout", type=float, default=600, help="seconds for all jobs to end (default 600)")
ap.add_argument("--seed", type=int, default=None, help="random seed for the choice of victims")
opts = ap.parse_args()
if opts.jobs < 1 or opts.workers < 1 or opts.kill_every < 0:
    ap.error("--jobs and --workers must be at least 1, --kill-every at least 0")

suite = farm.Suite("soak", ["--bin", opts.bin] + (["--keep"] if opts.keep else []))
seed = opts.seed if opts.seed is not None else int(time.time())
rng = random.Random(seed)
TERMINAL = ("done", "failed", "cancelled")


def job_state(f, job):
    try:
        return f.redis_command("HGET", f"{f.prefix}job:{job}", "state")
    except farm.FarmError:
        return None  # Redis busy or the key not written yet: ask again later


def soak():
    t0 = time.monotonic()
    kills = []  # (seconds since start, victim, replacement)
    with suite.farm(workers=opts.workers, name="soak",
                    coordinator_args=["--lease-ms", str(opts.lease_ms)]) as f:
        jobs = {}
        for i in range(opts.jobs):
            job_id = f"soak-{i:04d}"
            out = f.out(f"{job_id}.y4m")
            f.submit(farm.synthetic_spec(job_id, out, frames=opts.frames, width=64, height=48,
                                         seed=11, disagreement=0.5, cost_ms=opts.cost_ms,
                                         segment_frames=opts.segment_frames,
                                         overlap_frames=opts.overlap_frames))
            jobs[job_id] = out
        print(f"   submitted {len(jobs)} jobs in {time.monotonic() - t0:.1f}s "
              f"(random seed {seed})", flush=True)

        states = {}
        next_id = opts.workers
        next_kill = time.monotonic() + opts.kill_every
        deadline = time.monotonic() + opts.timeout
        last_report = 0.0
        while True:
            for job in jobs:
                if states.get(job) not in TERMINAL:
                    states[job] = job_state(f, job)
            pending = [j for j in jobs if states.get(j) not in TERMINAL]
            now = time.monotonic()
            if now - last_report >= 10:
                last_report = now
                count = collections.Counter(states.get(j) or "?" for j in jobs)
                print(f"   t={now - t0:5.1f}s kills={len(kills)} "
                      f"{', '.join(f'{k}={v}' for k, v in sorted(count.items()))}", flush=True)
            if not pending or now >= deadline:
                break
            if opts.kill_every > 0 and now >= next_kill:
                live = [n for n, w in f.workers.items() if w.alive() and not w.stopped]
                victim = rng.choice(live)
                f.kill_worker(victim)
                name = f"w{next_id}"
                next_id += 1
                f.add_worker(name)
                kills.append((now - t0, victim, name))
                next_kill = time.monotonic() + opts.kill_every
            time.sleep(0.25)
        elapsed = time.monotonic() - t0

        # Judge every job.
        pending = [j for j in jobs if states.get(j) not in TERMINAL]
        not_done = {j: states.get(j) for j in jobs if states.get(j) != "done"}
        for job, state in sorted(not_done.items()):
            why = ""
            try:
                why = f.redis_command("HGET", f"{f.prefix}job:{job}", "error") or ""
            except farm.FarmError as e:
                why = str(e)
            suite.fail(f"job {job} done", f"state {state!r} {why}".strip())
        bad_frames, digests = {}, collections.Counter()
        for job, out in sorted(jobs.items()):
            if states.get(job) != "done":
                continue
            try:
                n = farm.probe(out).get("frames")
            except farm.FarmError as e:
                n = f"unreadable: {e}"
            if n != opts.frames:
                bad_frames[job] = n
                suite.fail(f"job {job} has {opts.frames} frames", f"got {n!r}")
            else:
                digests[farm.sha256(out)] += 1
        ndone = len(jobs) - len(not_done)
        suite.check(not pending, f"all {len(jobs)} jobs ended within {opts.timeout:.0f}s",
                    f"{len(pending)} still unfinished")
        suite.equal(ndone, len(jobs), "jobs done")
        suite.check(not bad_frames, f"every finished job's video has {opts.frames} frames",
                    f"{len(bad_frames)} wrong")
        suite.check(len(digests) <= 1, "all videos are byte-identical (same spec)",
                    f"{len(digests)} different files: {dict(digests)}")
        print(f"\nsoak summary: {len(jobs)} jobs, {ndone} done, "
              f"{sum(1 for s in not_done.values() if s == 'failed')} failed, {len(pending)} unfinished, "
              f"{len(bad_frames)} with a wrong frame count; {len(kills)} workers killed and replaced "
              f"(every {opts.kill_every:g}s, {opts.workers} workers); {elapsed:.1f}s; seed {seed}",
              flush=True)
        if kills:
            print("   kills: " + ", ".join(f"{t:.0f}s {v}->{r}" for t, v, r in kills), flush=True)


suite.case(soak)
sys.exit(suite.finish())
