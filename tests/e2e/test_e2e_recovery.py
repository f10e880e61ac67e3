#!/usr/bin/env python3
"""test_e2e_recovery — the coordinator's defences against quiet failures.

test_e2e_faults kills processes; the failures here are quieter and just as
real, and each one used to hang or lose a job:

1. Lost messages. A worker that stays connected and keeps sending
   heartbeats, but never got an Assign (or whose SegmentDone was lost with
   a broken connection), would hold its segments for ever. rf-ghostworker
   plays that worker: it swallows every assignment and its heartbeats list
   nothing in hand. The coordinator must take the segments back after the
   grace period and give them to the real worker; the job completes with
   the fault-free bytes and the ghost is never declared lost.
2. A hung Redis. Redis stopped with SIGSTOP accepts connections and never
   answers: every command waits out its timeout. The coordinator's loop
   stalls on it, but workers must not lose their leases for the
   coordinator's own stall (lease 1.5 s here, Redis frozen 4 s); the job
   completes with the fault-free bytes and no worker is declared gone.
3. Ending during an outage, then crashing. A job that finishes while Redis
   is down keeps its final record in the spool (<id>.final); the
   coordinator is then SIGKILLed, Redis comes back, a new coordinator
   starts: it must write the record (state done, output size) and not
   render the job again. It also removes the spool directory of a job
   that is over (one a crash left behind).
4. Tiny segments in shared packs across a crash. Segments of a few KiB go
   into pack files shared by all jobs (<spool>/.packs), their place kept
   in Redis. The coordinator is SIGKILLed mid-job: the new one must find
   the done segments where Redis says, not render them again, produce the
   fault-free bytes, delete a pack nothing references, and delete the
   first coordinator's packs once the job that held them is over.
5. Catching up after an outage rewrites unfinished jobs' records; their
   segments keep the started_ms and finished_ms they had, and a job that
   ended during the outage its finished_ms; a restart keeps a job's
   started_ms even when none of its segments was done.
"""

import datetime
import hashlib
import json
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import farm  # noqa: E402

suite = farm.Suite("test_e2e_recovery")

LEASE = ["--lease-ms", "1500"]


def spec(job_id, path, cost_ms=20, frames=120):
    return farm.synthetic_spec(job_id, path, frames=frames, width=96, height=64, seed=11,
                               disagreement=0.5, cost_ms=cost_ms, segment_frames=24,
                               overlap_frames=4, blend="cosine")


def log_ms(ts):
    """A log line's ISO timestamp (2026-12-08T04:25:56.450Z) in Unix ms."""
    t = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ")
    return t.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def reference(f, name):
    """The fault-free bytes of spec(), rendered in farm f before any fault."""
    out = f.out(f"{name}-ref.y4m")
    job = f.submit(spec(f"{name}-ref", out, cost_ms=0))
    if not f.wait_done(job, timeout=60):
        return None
    return sha(out)


def test_ghost_worker_loses_everything():
    with suite.farm(workers=1, capacity=1, name="ghost") as f:
        ref = reference(f, "ghost")
        log = os.path.join(f.log_dir, "ghost.log")
        g = farm.Proc("ghost", [os.path.join(f.bin, "rf-ghostworker"), "--connect", f.worker_ep,
                                "--id", "ghost", "--capacity", "2"], log, f.tmp)
        f.workers["ghost"] = g
        g.wait_for_line(r"ghost ready", farm.READY_TIMEOUT)
        f._wait_worker_known("ghost")
        out = f.out("ghost.y4m")
        t0 = time.monotonic()
        job = f.submit(spec("ghost", out))
        if not f.wait_done(job, timeout=60):
            return
        print(f"   job done in {time.monotonic() - t0:.1f}s")
        swallowed = re.findall(r"ghost swallowed job=ghost seg=(\d+)", g.log_text())
        suite.check(swallowed, "the ghost swallowed at least one assignment", g.log_text()[-300:])
        clog = f.coordinator.log_text()
        taken_back = re.findall(r"segment requeued job=ghost seg=(\d+) attempt=\d+ worker=ghost "
                                r"reason=\"the worker does not hold it", clog)
        suite.equal(sorted(set(taken_back)), sorted(set(swallowed)),
                    "every swallowed segment was taken back from the ghost")
        suite.check(not re.search(r"worker gone worker=ghost", clog),
                    "the ghost, heartbeating, was never declared lost")
        suite.equal(sha(out), ref, "the output is the fault-free bytes")


def test_hung_redis_costs_no_lease():
    with suite.farm(workers=2, capacity=1, name="hung", coordinator_args=LEASE) as f:
        ref = reference(f, "hung")
        out = f.out("hung.y4m")
        job = f.submit(spec("hung", out, cost_ms=30))
        started = farm.wait_for(lambda: "segment done job=hung " in f.coordinator.log_text(), 20)
        suite.check(started, "a segment of the job is done before Redis freezes")
        f.redis.popen.send_signal(signal.SIGSTOP)
        try:
            time.sleep(4.0)
        finally:
            f.redis.popen.send_signal(signal.SIGCONT)
        if not f.wait_done(job, timeout=60):
            return
        clog = f.coordinator.log_text()
        suite.check(not re.search(r"worker gone", clog),
                    "no worker was declared lost while Redis hung",
                    [ln for ln in clog.splitlines() if "worker gone" in ln][:3])
        suite.check(re.search(r"event loop stalled ms=\d+; leases extended", clog),
                    "the coordinator noticed its own stall and extended the leases")
        suite.equal(sha(out), ref, "the output is the fault-free bytes")
        rec = farm.wait_for(lambda: f.redis_hgetall(f"{f.prefix}job:hung").get("state") == "done", 10)
        suite.check(rec, "the job's Redis record says done once Redis answers again",
                    f.redis_hgetall(f"{f.prefix}job:hung").get("state"))


def test_final_state_survives_outage_and_crash():
    with suite.farm(workers=2, capacity=1, name="final", coordinator_args=LEASE,
                    redis_aof=True) as f:
        out = f.out("final.y4m")
        job = f.submit(spec("final", out, cost_ms=15))
        started = farm.wait_for(lambda: "segment assigned job=final " in f.coordinator.log_text(), 10)
        suite.check(started, "the job has started")
        f.stop_redis()
        done = farm.wait_for(lambda: os.path.exists(out), 30, interval=0.1)
        suite.check(done, "the job's video is written while Redis is down")
        if not done:
            f.start_redis()
            return
        final = os.path.join(f.spool, ".final", "final")
        kept = farm.wait_for(lambda: os.path.exists(final), 5)
        suite.check(kept, "its final record is kept in the spool (.final/final)", os.listdir(f.spool))
        bytes_out = os.path.getsize(out)
        written_ms = time.time() * 1000
        starts_before = sum(len(re.findall(r"segment started job=final ", w.log_text()))
                            for w in f.workers.values())
        f.kill_coordinator()
        # A finished job's directory that a crash left behind.
        orphan = os.path.join(f.spool, "over-and-done")
        os.makedirs(orphan)
        with open(os.path.join(orphan, "pack"), "wb") as fh:
            fh.write(b"\0" * 384)
        f.start_redis()
        time.sleep(1.0)  # the restart's time is not the job's
        f.restart_coordinator()
        suite.check(not os.path.exists(orphan),
                    "the new coordinator removed the spool of a job that is over")
        rc, err = f.wait(job, timeout=30)
        suite.equal(rc, 0, "rfarm wait says done after the restart")
        rec = f.redis_hgetall(f"{f.prefix}job:final")
        suite.equal((rec.get("state"), rec.get("output_bytes"), rec.get("frames_stitched")),
                    ("done", str(bytes_out), "120"),
                    "Redis has the final record: (state, output_bytes, frames_stitched)")
        suite.check(0 < int(rec.get("finished_ms", "0")) <= written_ms + 800,
                    "its finished_ms is when it ended, not when the record was written",
                    (rec.get("finished_ms"), int(written_ms)))
        sw = [p.split(":", 1) for p in rec.get("segment_workers", "").split(",") if p]
        suite.check(len(sw) == 6 and all(len(p) == 2 and p[1] for p in sw),
                    "the kept record also brought the job's results (a worker per segment)",
                    rec.get("segment_workers"))
        suite.check(rec.get("frames_rendered") == rec.get("frames_to_render") and
                    int(rec.get("render_ms", "0")) > 0 and rec.get("duration_s") == "5.000",
                    "and its progress and duration: frames_rendered = frames_to_render, "
                    "render_ms > 0, duration_s 5.000",
                    {k: rec.get(k) for k in ("frames_rendered", "frames_to_render", "render_ms",
                                             "duration_s")})
        suite.check(not os.path.exists(final), "the kept final record is gone once written")
        suite.check(re.search(r"final state written job=final state=done",
                              f.coordinator.log_text()),
                    "the new coordinator wrote the kept final record")
        time.sleep(1.0)
        starts_after = sum(len(re.findall(r"segment started job=final ", w.log_text()))
                           for w in f.workers.values())
        suite.equal(starts_after, starts_before, "nothing of the job was rendered again")
        suite.equal(f.redis_cli("SISMEMBER", f"{f.prefix}jobs:active", job), "0",
                    "the job is no longer in jobs:active")


def test_batch_totals_survive_an_outage():
    """Jobs of a batch that end while Redis is down: their increments of the
    batch's totals are lost, so the catch-up recounts them from the jobs'
    records; `rfarm watch BATCH` must then end with the batch done."""
    with suite.farm(workers=2, capacity=1, name="btotals", coordinator_args=LEASE,
                    redis_aof=True) as f:
        path = os.path.join(f.tmp, "specs", "b.jsonl")
        with open(path, "w") as fh:
            for i in range(4):
                s = spec(f"bt-{i}", f.out(f"bt-{i}.y4m"), cost_ms=10, frames=48)
                fh.write(json.dumps(s) + "\n")
        r = f.cli("submit", path)
        suite.equal(r.returncode, 0, "the batch is accepted")
        batch = r.stdout.strip()
        farm.wait_for(lambda: "segment done job=bt-" in f.coordinator.log_text(), 10)
        f.stop_redis()
        ended = farm.wait_for(lambda: all(os.path.exists(f.out(f"bt-{i}.y4m")) for i in range(4)), 30,
                         interval=0.1)
        suite.check(ended, "the batch's jobs end while Redis is down")
        f.start_redis()
        r = f.cli("watch", batch, "--interval", "0.3", timeout=60)
        suite.equal(r.returncode, 0, "rfarm watch BATCH ends once Redis is back")
        st = json.loads(f.cli("status", batch, "--json").stdout)
        b = (st.get("batches") or [{}])[0]
        suite.equal((b.get("jobs"), b.get("jobs_done"), b.get("state")), (4, 4, "done"),
                    "the batch's totals are whole: (jobs, jobs_done, state)")
        suite.check(re.search(r"batch recounted batch=" + batch, f.coordinator.log_text()),
                    "the coordinator recounted the batch after the outage")


def test_segment_times_survive_an_outage():
    """After an outage the coordinator writes every unfinished job's state
    again; a segment done before it keeps its finished_ms, and one that
    started during it says when it started, not when Redis came back (the
    catch-up used to stamp both with its own time)."""
    with suite.farm(workers=2, capacity=1, name="segtimes", coordinator_args=LEASE,
                    redis_aof=True) as f:
        # 5 segments of 24 frames at 100 ms: 2.4 s each, 2 at a time. The
        # coordinator retries Redis 0.1 to 3.1 s after losing it, so a
        # segment started during the outage is still running at the
        # catch-up.
        job = f.submit(spec("segtimes", f.out("segtimes.y4m"), cost_ms=100, frames=104))
        nseg = 5
        recs = lambda: {k: f.redis_hgetall(f"{f.prefix}job:segtimes:seg:{k}") for k in range(nseg)}
        done0 = farm.wait_for(lambda: recs()[0].get("state") == "done", 30, interval=0.05)
        if not suite.check(done0, "segment 0 is done in Redis"):
            return
        before = recs()
        f.stop_redis()
        # Redis comes back as soon as a segment has started during the outage.
        mark = len(f.coordinator.log_text())
        assigned = farm.wait_for(
            lambda: "segment assigned job=segtimes" in f.coordinator.log_text()[mark:], 10,
            interval=0.02)
        suite.check(assigned, "a segment starts during the outage")
        back_ms = time.time() * 1000
        f.start_redis()
        # The loop writes its log after the turn's Redis writes: once the
        # catch-up's line is in the log, its writes are in Redis.
        caught_up = farm.wait_for(lambda: "redis is back" in f.coordinator.log_text(), 10,
                                  interval=0.02)
        suite.check(caught_up, "the coordinator caught Redis up")
        now = recs()
        head = f.coordinator.log_text().split("redis is back")[0]
        suite.check("job done job=segtimes" not in head, "the job was still running at the catch-up")
        # Segments assigned before Redis was started again, by the log's
        # clock (the coordinator's): each started_ms is its log line's time.
        early = {int(k): log_ms(ts) for ts, k in re.findall(
                     r"^(\S+) info  coordinator: segment assigned job=segtimes seg=(\d+)", head, re.M)
                 if log_ms(ts) <= back_ms}
        running = sorted(k for k in early if now[k].get("state") == "running")
        suite.check(running, "segments assigned during the outage are running after the catch-up",
                    now)
        suite.check(all(abs(int(now[k].get("started_ms", "0")) - early[k]) <= 2 for k in running),
                    "their started_ms is when they were assigned, not the catch-up's time",
                    ({k: now[k].get("started_ms") for k in running}, early, int(back_ms)))
        if not f.wait_done(job, timeout=60):
            return
        suite.check(before[0].get("finished_ms") and
                    recs()[0].get("finished_ms") == before[0].get("finished_ms"),
                    "segment 0's finished_ms is the one from before the outage",
                    (recs()[0].get("finished_ms"), before[0].get("finished_ms")))


def test_job_start_survives_a_restart():
    """A coordinator killed after a job started but before any of its
    segments was done: the next one keeps the job's started_ms (it used to
    stamp the job started again when it assigned its next segment)."""
    with suite.farm(workers=1, capacity=1, name="jobstart", coordinator_args=LEASE) as f:
        job = f.submit(spec("jobstart", f.out("jobstart.y4m"), cost_ms=100, frames=44))
        key = f"{f.prefix}job:jobstart"
        started = farm.wait_for(lambda: f.redis_hgetall(key).get("started_ms"), 20, interval=0.02)
        if not suite.check(started, "the job has started"):
            return
        first = f.redis_hgetall(key).get("started_ms")
        f.kill_coordinator()
        seg0 = f.redis_hgetall(f"{key}:seg:0").get("state")
        suite.check(seg0 != "done", "no segment was done when the coordinator died", seg0)
        time.sleep(0.2)  # a new start would be a later millisecond
        f.restart_coordinator()
        if not f.wait_done(job, timeout=60):
            return
        suite.equal(f.redis_hgetall(key).get("started_ms"), first,
                    "the job's started_ms is the one the first coordinator wrote")


def tiny_spec(job_id, path, cost_ms):
    # 32x16 frames: a 24-frame segment is 18 KiB, so it goes into a pack.
    return farm.synthetic_spec(job_id, path, frames=144, width=32, height=16, seed=5,
                               disagreement=0.5, cost_ms=cost_ms, segment_frames=24,
                               overlap_frames=4, blend="cosine")


def test_packed_segments_survive_a_crash():
    with suite.farm(workers=2, capacity=1, name="packs", coordinator_args=LEASE) as f:
        ref_out = f.out("packs-ref.y4m")
        if not f.wait_done(f.submit(tiny_spec("packs-ref", ref_out, 0)), timeout=60):
            return
        ref = sha(ref_out)
        out = f.out("packs.y4m")
        job = f.submit(tiny_spec("packs", out, cost_ms=40))
        nseg = 7

        def done():
            recs = {k: f.redis_hgetall(f"{f.prefix}job:packs:seg:{k}") for k in range(nseg)}
            return {k: r for k, r in recs.items() if r.get("state") == "done"}

        two = farm.wait_for(lambda: len(done()) >= 2, 20, interval=0.02)
        if not suite.check(two, "two segments are done in Redis"):
            return
        started_ms = f.redis_hgetall(f"{f.prefix}job:packs").get("started_ms")
        f.kill_coordinator()
        before = done()
        suite.check(len(before) < nseg, "the coordinator was killed mid-job", sorted(before))
        packs_dir = os.path.join(f.spool, ".packs")
        places = {k: r.get("pack", "") for k, r in before.items()}
        suite.check(all(re.fullmatch(r"\d+:\d+", p) for p in places.values()),
                    "each done segment's record says where in which pack it is", places)
        old_packs = {f"{int(p.split(':')[0]):08d}" for p in places.values() if p}
        suite.check(old_packs and all(os.path.exists(os.path.join(packs_dir, n)) for n in old_packs),
                    "those packs are in <spool>/.packs", sorted(os.listdir(packs_dir)))
        stray = os.path.join(packs_dir, "00000900")  # a crash's leftover nothing references
        with open(stray, "wb") as fh:
            fh.write(b"\0" * 4096)
        f.restart_coordinator()
        if not f.wait_done(job, timeout=60):
            return
        suite.equal(sha(out), ref, "the output is the fault-free bytes")
        suite.check(started_ms and
                    f.redis_hgetall(f"{f.prefix}job:packs").get("started_ms") == started_ms,
                    "the job's started_ms is the first coordinator's", started_ms)
        for k, rec in sorted(before.items()):
            now = f.redis_hgetall(f"{f.prefix}job:packs:seg:{k}")
            suite.equal((now.get("attempt"), now.get("worker"), now.get("pack")),
                        (rec.get("attempt"), rec.get("worker"), rec.get("pack")),
                        f"segment {k}, done before the kill, was not rendered again")
        sw = f.redis_hgetall(f"{f.prefix}job:packs").get("segment_workers", "")
        pairs = [p.split(":", 1) for p in sw.split(",") if p]
        suite.check(len(pairs) == nseg and all(len(p) == 2 and p[1] for p in pairs),
                    "the job's results name the worker of every segment, those done before the "
                    "kill too", sw)
        suite.check(not os.path.exists(stray), "the new coordinator deleted a pack nothing needs")
        gone = farm.wait_for(lambda: not any(os.path.exists(os.path.join(packs_dir, n))
                                             for n in old_packs), 10)
        suite.check(gone, "the first coordinator's packs are deleted once the job is over",
                    sorted(os.listdir(packs_dir)))
        suite.check(not os.path.exists(os.path.join(f.spool, "packs")),
                    "the job left no spool directory of its own")


suite.case(test_ghost_worker_loses_everything)
suite.case(test_hung_redis_costs_no_lease)
suite.case(test_final_state_survives_outage_and_crash)
suite.case(test_batch_totals_survive_an_outage)
suite.case(test_segment_times_survive_an_outage)
suite.case(test_job_start_survives_a_restart)
suite.case(test_packed_segments_survive_a_crash)
sys.exit(suite.finish())
