#!/usr/bin/env python3
"""test_e2e_faults — the farm survives its processes dying, and loses nothing.

Workers are preempted, machines freeze, the coordinator is rescheduled,
Redis restarts, an engine breaks, an operator cancels. Whatever happens, an
accepted job must either finish with exactly the video a fault-free run
gives, or fail with a reason a person can read (DESIGN.md, "Data the farm
must never lose or corrupt"). Everything here is real processes on loopback
and a real Redis; faults are real signals.

The yardstick is one synthetic job (240 frames of 96x64, segments of 40
frames overlapping by 8, disagreement 0.5 so that the blend of every
overlap matters, 25 ms a frame so it runs for a few seconds) written
losslessly as Y4M. It is rendered once with no fault (test_reference); every
fault scenario renders the same spec and must give a byte-identical file
(sha256) whose decoded frames are the reference's, in order, each exactly
once (rf-vidprobe --frame-md5; the reference's frames are all different, so
a lost or doubled frame shows).

Scenarios (each its own farm):

1. SIGKILL one of three workers mid-segment: its segment is re-rendered
   elsewhere once its lease (1.5 s here) runs out.
2. SIGKILL every worker mid-job, then start new ones under new names.
3. SIGSTOP a worker mid-segment for longer than its lease, then SIGCONT:
   the frames it sends late are counted as stale (Redis `<prefix>stats`
   field `stale_frames`, and the coordinator's last log line) and ignored.
4. SIGKILL the coordinator after two segments are done, start a new one
   with the same command line: it reloads the job from Redis, the workers
   say hello again, and segments finished before the kill are not rendered
   again (same attempt and worker in Redis, one `segment started` line).
5. Stop Redis (append-only, fsync always) for a few seconds mid-job: a
   submit meanwhile is refused naming Redis; the running job completes and
   its Redis record ends `done` with every frame stitched.
6. An exec command that always fails for segment 2: after exactly 3
   attempts the job fails with a reason naming the segment, the attempts,
   a worker and the command's stderr; a synthetic job alongside finishes.
7. SIGTERM a worker mid-segment: it exits 0 having delivered (or handed
   back) its segment; the job completes.
8. `rfarm cancel` mid-job: the job ends `cancelled`, no output appears, and
   workers stop rendering its segments at once instead of finishing them.
"""

import os
import re
import shutil
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import farm  # noqa: E402

suite = farm.Suite("test_e2e_faults")

# The reference job: long enough (about 3 s on three workers) to hit it
# mid-flight, small enough to stay cheap.
FRAMES, SEG, OVERLAP = 240, 40, 8
NSEG = len(farm.expected_segments(FRAMES, SEG, OVERLAP))  # 8
SPEC = dict(frames=FRAMES, width=96, height=64, fps=24, seed=7, disagreement=0.5, cost_ms=25,
            segment_frames=SEG, overlap_frames=OVERLAP, blend="cosine")
LEASE = ["--lease-ms", "1500"]  # a lost worker costs 1.5 s, not the default 5
JOB_TIMEOUT = 30  # the reference job takes ~3 s; a fault adds a lease or two

FFMPEG_CMD = ("ffmpeg -v error -f lavfi -i testsrc2=size=${RFARM_WIDTH}x${RFARM_HEIGHT}:rate=${RFARM_FPS} "
              "-vf trim=start_frame=${RFARM_FIRST_FRAME}:end_frame=$((RFARM_FIRST_FRAME+RFARM_FRAMES)),"
              "setpts=PTS-STARTPTS -pix_fmt yuv420p -f yuv4mpegpipe -")
FAIL_SEG2_CMD = 'if [ "$RFARM_SEGMENT" = 2 ]; then echo boom-seg-2 >&2; exit 7; fi; ' + FFMPEG_CMD

REF = {}  # sha256, frame_md5, bytes of the fault-free rendering


def ref_spec(job_id, out):
    return farm.synthetic_spec(job_id, out, **SPEC)


# ---------------------------------------------------------------------------
# Helpers


def wait_log(proc, pattern, timeout):
    """The first match of pattern in proc's log, waiting up to timeout."""
    rx = re.compile(pattern)
    return farm.wait_for(lambda: rx.search(proc.log_text()), timeout)


def started_rx(job, seg=None):
    s = r"\d+" if seg is None else str(seg)
    return re.compile(rf"segment started job={re.escape(job)} seg=({s}) attempt=(\d+) ")


def count_started(f, job, seg):
    """`segment started job=J seg=K ` lines across every worker's log (killed
    and replaced workers included)."""
    rx = started_rx(job, seg)
    return sum(len(rx.findall(w.log_text())) for w in f.workers.values())


def seg_record(f, job, k):
    return f.redis_hgetall(f"{f.prefix}job:{job}:seg:{k}")


def done_segments(f, job):
    """{k: Redis record} of the job's segments whose state is done."""
    out = {}
    for k in range(NSEG):
        rec = seg_record(f, job, k)
        if rec.get("state") == "done":
            out[k] = rec
    return out


def check_identical(out, label):
    """The output has FRAMES frames, they are the reference's frames in
    order, and the file is byte-identical to the reference."""
    if not suite.check(os.path.exists(out), f"{label}: the output file exists", out):
        return
    info = farm.probe(out, frame_md5=True)
    suite.equal(info.get("frames"), FRAMES, f"{label}: output decodes to {FRAMES} frames")
    if not REF:
        suite.fail(f"{label}: output identical to the fault-free reference",
                   "no reference (test_reference failed)")
        return
    got, want = info.get("frame_md5") or [], REF["frame_md5"]
    bad = [i for i in range(max(len(got), len(want))) if got[i:i + 1] != want[i:i + 1]]
    doubled = len(got) - len(set(got))
    suite.check(not bad, f"{label}: every reference frame appears once, in order (frame md5)",
                f"{len(got)} frames vs {len(want)}; {len(bad)} differ, first {bad[:10]}; "
                f"{doubled} duplicated")
    digest = farm.sha256(out)
    suite.check(digest == REF["sha256"], f"{label}: output is byte-identical to the reference (sha256)",
                f"{digest} ({os.path.getsize(out)} bytes) vs {REF['sha256']} ({REF['bytes']} bytes)")


def first_started(f, name, job, timeout=15):
    """Wait until worker `name` logs that it started a segment of job;
    returns the segment index (None, with a failed check, if it does not)."""
    m = wait_log(f.workers[name], started_rx(job), timeout)
    if not suite.check(m, f"{name} started a segment of {job} within {timeout}s"):
        return None
    return int(m.group(1))


# ---------------------------------------------------------------------------
# The reference


def test_reference():
    with suite.farm(workers=3, name="faults-ref", coordinator_args=LEASE) as f:
        out = f.out("ref.y4m")
        job = f.submit(ref_spec("ref", out))
        if not f.wait_done(job, JOB_TIMEOUT):
            return
        info = farm.probe(out, frame_md5=True)
        md5 = info.get("frame_md5") or []
        ok = suite.equal(info.get("frames"), FRAMES, f"reference decodes to {FRAMES} frames")
        ok &= suite.equal(len(set(md5)), FRAMES,
                          "reference frames are all different (a lost or doubled frame would show)")
        if ok:
            REF.update(sha256=farm.sha256(out), frame_md5=md5, bytes=os.path.getsize(out))
            print(f"   reference: {REF['bytes']} bytes, sha256 {REF['sha256'][:16]}...")


# ---------------------------------------------------------------------------
# 1. SIGKILL one worker


def test_kill_one_worker():
    with suite.farm(workers=3, name="faults-kill1", coordinator_args=LEASE) as f:
        out = f.out("kill1.y4m")
        job = f.submit(ref_spec("kill1", out))
        seg = first_started(f, "w1", job)
        if seg is None:
            return
        time.sleep(0.3)  # a few frames into the segment
        rc = f.kill_worker("w1")
        suite.equal(rc, -signal.SIGKILL, "w1 was killed by SIGKILL")
        suite.check(not re.search(rf"segment finished job={job} seg={seg} ", f.workers["w1"].log_text()),
                    f"w1 was still rendering segment {seg} when killed")
        if not f.wait_done(job, JOB_TIMEOUT):
            return
        check_identical(out, "one worker killed")
        rec = seg_record(f, job, seg)
        suite.check(rec.get("state") == "done" and rec.get("worker") not in (None, "", "w1"),
                    f"segment {seg}, lost with w1, was finished by another worker", rec)


# ---------------------------------------------------------------------------
# 2. SIGKILL every worker, start new ones


def test_kill_all_workers():
    with suite.farm(workers=3, name="faults-killall", coordinator_args=LEASE) as f:
        out = f.out("killall.y4m")
        job = f.submit(ref_spec("killall", out))
        # Every worker into its second segment: some work is done, some is
        # in flight on every worker.
        rx = started_rx(job)
        busy = farm.wait_for(lambda: all(len(rx.findall(w.log_text())) >= 2 for w in f.workers.values()), 20)
        if not suite.check(busy, "every worker is on its second segment of the job"):
            return
        time.sleep(0.3)
        done_before = sorted(done_segments(f, job))
        for name in ("w0", "w1", "w2"):
            f.kill_worker(name)
        print(f"   killed w0 w1 w2; segments done before: {done_before}")
        suite.check(done_before and len(done_before) < NSEG,
                    "the workers were killed mid-job (some segments done, not all)", done_before)
        for name in ("n0", "n1", "n2"):
            f.add_worker(name)
        if not f.wait_done(job, JOB_TIMEOUT):
            return
        check_identical(out, "all workers killed and replaced")
        by = {k: seg_record(f, job, k).get("worker") for k in range(NSEG)}
        suite.check(any(by[k] in ("n0", "n1", "n2") for k in by),
                    "the new workers finished the segments the killed ones held", by)


# ---------------------------------------------------------------------------
# 3. SIGSTOP past the lease, then SIGCONT: late frames are stale


def stale_frames_in_redis(f):
    try:
        v = f.redis_command("HGET", f"{f.prefix}stats", "stale_frames")
    except farm.FarmError:
        return None
    return int(v) if v is not None and v.isdigit() else None


def test_sigstop_past_lease():
    with suite.farm(workers=3, name="faults-sigstop", coordinator_args=LEASE) as f:
        out = f.out("sigstop.y4m")
        job = f.submit(ref_spec("sigstop", out))
        seg = first_started(f, "w0", job)
        if seg is None:
            return
        w0 = f.workers["w0"]
        time.sleep(0.3)  # ~12 of its 40 frames sent; the rest will come late
        f.signal_worker("w0", signal.SIGSTOP)
        t_stop = time.monotonic()
        try:
            gone = wait_log(f.coordinator, r"worker gone worker=w0\b", 3.0)
            time.sleep(max(0.0, 3.0 - (time.monotonic() - t_stop)))  # stopped ~3 s in all
            suite.check(gone, "the coordinator declared w0 lost while it was stopped (lease 1500 ms)")
            suite.check(not re.search(rf"segment finished job={job} seg={seg} ", w0.log_text()),
                        f"w0 was stopped in the middle of segment {seg}")
        finally:
            f.signal_worker("w0", signal.SIGCONT)
        t_cont = time.monotonic()
        late = wait_log(w0, rf"segment finished job={job} seg={seg} ", 10)
        suite.check(late, f"after SIGCONT w0 finished streaming its old segment {seg} (late frames)")
        if f.wait_done(job, JOB_TIMEOUT):
            check_identical(out, "worker stopped past its lease")
        n = farm.wait_for(lambda: (stale_frames_in_redis(f) or 0) > 0,
                     max(0.5, t_cont + 10 - time.monotonic()), interval=0.2)
        suite.check(n, f"Redis {f.prefix}stats stale_frames > 0 within 10 s of SIGCONT",
                    f"HGET {f.prefix}stats stale_frames = {stale_frames_in_redis(f)!r}")
        rec = seg_record(f, job, seg)
        suite.check(rec.get("worker") != "w0" or int(rec.get("attempt") or 0) > 1,
                    f"segment {seg} was taken from w0 and finished by a later attempt", rec)
        f.stop()
        m = re.search(r"coordinator stopping\b.*\bstale_frames=(\d+)", f.coordinator.log_text())
        suite.check(m and int(m.group(1)) > 0,
                    "the coordinator's last line counts the stale frames (stale_frames=N, N > 0)",
                    m.group(0) if m else "no 'coordinator stopping ... stale_frames=' line")


# ---------------------------------------------------------------------------
# 4. SIGKILL the coordinator, start a new one


def test_coordinator_restart():
    with suite.farm(workers=3, name="faults-coord", coordinator_args=LEASE) as f:
        out = f.out("coord.y4m")
        job = f.submit(ref_spec("coord", out))
        two = farm.wait_for(lambda: len(done_segments(f, job)) >= 2, 20, interval=0.02)
        if not suite.check(two, "two segments are done in Redis"):
            return
        before = done_segments(f, job)  # the snapshot, right before the kill
        f.kill_coordinator()
        print(f"   coordinator killed; done before: "
              f"{ {k: (r.get('attempt'), r.get('worker')) for k, r in before.items()} }")
        suite.check(len(before) < NSEG, "the coordinator was killed mid-job", sorted(before))
        f.restart_coordinator()
        if not f.wait_done(job, JOB_TIMEOUT):
            return
        check_identical(out, "coordinator killed and restarted")
        for k, rec in sorted(before.items()):
            now = seg_record(f, job, k)
            suite.equal((now.get("state"), now.get("attempt"), now.get("worker")),
                        ("done", rec.get("attempt"), rec.get("worker")),
                        f"segment {k}, done before the kill, kept its Redis (state, attempt, worker)")
            suite.equal(count_started(f, job, k), 1,
                        f"segment {k}, done before the kill, was started exactly once across all workers")


# ---------------------------------------------------------------------------
# 5. Redis stops and comes back


def test_redis_restart():
    # One worker: the job runs ~8 s, so it is still running, with segments
    # left, when Redis comes back after the outage (from ~1 s to ~3.5 s).
    with suite.farm(workers=1, name="faults-redis", coordinator_args=LEASE, redis_aof=True) as f:
        out = f.out("redis.y4m")
        job = f.submit(ref_spec("redis", out))
        one = farm.wait_for(lambda: len(done_segments(f, job)) >= 1, 20, interval=0.02)
        if not suite.check(one, "a segment is done before Redis stops"):
            return
        rc = f.stop_redis()
        t_down = time.monotonic()
        print(f"   redis stopped (exit {rc})")
        try:
            outage_out = f.out("outage.y4m")
            r = f.submit_raw(farm.synthetic_spec("during-outage", outage_out, frames=24))
            said = (r.stderr + r.stdout).strip()
            print(f"   submit during the outage: exit {r.returncode}: {said!r}")
            suite.check(r.returncode != 0, "a submit while Redis is down is refused (non-zero exit)",
                        f"exit {r.returncode}, stdout {r.stdout.strip()!r}")
            suite.check("redis" in said.lower(), "the refusal names Redis", repr(said))
            time.sleep(max(0.0, 2.5 - (time.monotonic() - t_down)))
        finally:
            f.start_redis()
        print(f"   redis back after {time.monotonic() - t_down:.1f}s; "
              f"the job's record then: {f.redis_hgetall(f'{f.prefix}job:{job}').get('state')!r}")
        # No pause: `rfarm wait` must ride out the coordinator's reconnect
        # (it keeps asking while the coordinator cannot read Redis).
        if not f.wait_done(job, JOB_TIMEOUT):
            return
        check_identical(out, "Redis restarted mid-job")

        def final():
            rec = f.redis_hgetall(f"{f.prefix}job:{job}")
            return rec if rec.get("state") == "done" and rec.get("frames_stitched") == str(FRAMES) else None
        rec = farm.wait_for(final, 5, interval=0.2) or f.redis_hgetall(f"{f.prefix}job:{job}")
        suite.equal((rec.get("state"), rec.get("frames_stitched"), rec.get("frames")),
                    ("done", str(FRAMES), str(FRAMES)),
                    "after Redis is back the job's record says (state, frames_stitched, frames)")
        suite.check(not os.path.exists(outage_out) and not f.redis_hgetall(f"{f.prefix}job:during-outage"),
                    "the refused job left no trace (no output, no Redis record)")


# ---------------------------------------------------------------------------
# 6. A segment that always fails


def exec_spec(job_id, path, command, frames=136):
    return {
        "id": job_id,
        "engine": "exec",
        "params": {"command": command, "timeout_s": 60},
        "prompt": "testsrc2",
        "seed": 1,
        "width": 96,
        "height": 64,
        "fps": 24,
        "frames": frames,
        "segment_frames": SEG,
        "overlap_frames": OVERLAP,
        "blend": "linear",
        "output": {"path": path, "container": "y4m", "codec": "rawvideo"},
    }


def test_failing_segment():
    if shutil.which("ffmpeg") is None:
        print("   SKIP: ffmpeg is not installed (scripts/setup.sh installs it)")
        return
    args = LEASE + ["--max-attempts", "3", "--retry-backoff-ms", "200"]
    with suite.farm(workers=3, name="faults-failseg", coordinator_args=args) as f:
        bad_out = f.out("failseg.y4m")
        bad = f.submit(exec_spec("failseg", bad_out, FAIL_SEG2_CMD))  # segments 0..3
        good_out = f.out("alongside.y4m")
        good = f.submit(ref_spec("alongside", good_out))
        rc, err = f.wait(bad, JOB_TIMEOUT)
        print(f"   rfarm wait {bad}: exit {rc}: {err.strip()!r}")
        suite.equal(rc, 1, "rfarm wait on the job whose segment 2 always fails exits 1")
        st = f.status(bad)
        error = st.get("error") or ""
        print(f"   job error: {error!r}")
        suite.equal(st.get("state"), "failed", "the job's state is failed")
        suite.check(re.search(r"\bsegment 2\b", error), "the reason names 'segment 2'", repr(error))
        suite.check("3 attempts" in error, "the reason says '3 attempts'", repr(error))
        suite.check(any(re.search(rf"(?<![\w.-]){w}(?![\w.-])", error) for w in f.workers),
                    "the reason names a worker that tried it", repr(error))
        suite.check("boom-seg-2" in error, "the reason holds the command's stderr 'boom-seg-2'", repr(error))
        suite.equal(count_started(f, bad, 2), 3, "segment 2 was started exactly 3 times (--max-attempts 3)")
        suite.check(not os.path.exists(bad_out) and not os.path.exists(bad_out + ".partial"),
                    "the failed job leaves no output file")
        if f.wait_done(good, JOB_TIMEOUT):
            check_identical(good_out, "synthetic job alongside the failing one")


# ---------------------------------------------------------------------------
# 7. SIGTERM a worker mid-segment


def test_sigterm_worker():
    with suite.farm(workers=3, name="faults-sigterm", coordinator_args=LEASE) as f:
        out = f.out("sigterm.y4m")
        job = f.submit(ref_spec("sigterm", out))
        seg = first_started(f, "w2", job)
        if seg is None:
            return
        time.sleep(0.3)
        rc = f.stop_worker("w2")  # checks exit 0 after SIGTERM
        if rc == 0:
            log = f.workers["w2"].log_text()
            suite.check(re.search(rf"segment finished job={job} seg={seg} ", log) or "handing back" in log,
                        f"w2 delivered or handed back segment {seg} before exiting")
        if f.wait_done(job, JOB_TIMEOUT):
            check_identical(out, "worker stopped with SIGTERM")


# ---------------------------------------------------------------------------
# 8. rfarm cancel


CANCEL_COST_MS, CANCEL_SEG = 100, 60  # 6 s a segment


def open_segments(f, job):
    """(worker, seg, attempt) started in a worker's log without a later
    `segment finished` line for the same seg and attempt."""
    st = re.compile(rf"segment started job={re.escape(job)} seg=(\d+) attempt=(\d+) ")
    fi = re.compile(rf"segment finished job={re.escape(job)} seg=(\d+) attempt=(\d+) ")
    left = []
    for name, w in f.workers.items():
        open_ = set()
        for line in w.log_text().splitlines():
            m = st.search(line)
            if m:
                open_.add(m.groups())
            m = fi.search(line)
            if m:
                open_.discard(m.groups())
        left += [(name, int(s), int(a)) for s, a in sorted(open_)]
    return left


def test_cancel():
    with suite.farm(workers=3, name="faults-cancel", coordinator_args=LEASE) as f:
        r = f.cli("cancel", "no-such-job")
        suite.check(r.returncode != 0 and "no-such-job" in r.stderr,
                    "rfarm cancel of an unknown job id exits non-zero with a message naming it",
                    f"exit {r.returncode}, stderr {r.stderr.strip()!r}")
        out = f.out("cancel.y4m")
        job = f.submit(farm.synthetic_spec("cancel", out, frames=360, width=96, height=64, seed=7,
                                           disagreement=0.5, cost_ms=CANCEL_COST_MS,
                                           segment_frames=CANCEL_SEG, overlap_frames=OVERLAP))
        t_submit = time.monotonic()
        rx = started_rx(job)
        busy = farm.wait_for(lambda: all(rx.search(w.log_text()) for w in f.workers.values()), 15)
        if not suite.check(busy, "every worker is rendering a segment of the job"):
            return
        time.sleep(0.5)
        r = f.cli("cancel", job)
        t_cancel = time.monotonic()
        offsets = {name: len(w.log_text()) for name, w in f.workers.items()}
        print(f"   cancel {t_cancel - t_submit:.1f}s after submit: exit {r.returncode}: "
              f"{(r.stdout + r.stderr).strip()!r}")
        if not suite.equal(r.returncode, 0, f"rfarm cancel {job} exits 0"):
            return  # everything below is about what a cancel does

        left = farm.wait_for(lambda: not open_segments(f, job), 3.0)
        suite.check(left, "within 3 s of the cancel every started segment of the job has a "
                          "'segment finished' line (workers stopped rendering it)",
                    f"still open: {open_segments(f, job)}")
        print(f"   segments closed {time.monotonic() - t_cancel:.1f}s after the cancel")
        natural_ms = CANCEL_SEG * CANCEL_COST_MS
        fi = re.compile(rf"segment finished job={re.escape(job)} seg=(\d+) attempt=\d+ ms=(\d+)")
        ran = [(name, int(m.group(1)), int(m.group(2)))
               for name, w in f.workers.items() for m in fi.finditer(w.log_text())]
        slow = [x for x in ran if x[2] > natural_ms // 2]
        suite.check(ran and not slow,
                    f"cancelled segments stopped early (each ran under half its natural {natural_ms} ms)",
                    f"(worker, seg, ms): {ran}")
        after = {name: started_rx(job).findall(w.log_text()[offsets[name]:]) for name, w in f.workers.items()}
        suite.check(not any(after.values()), "no segment of the job started after the cancel",
                    {k: v for k, v in after.items() if v})

        rc, err = f.wait(job, 15)
        suite.equal(rc, 1, "rfarm wait on the cancelled job exits 1")
        st = f.status(job)
        suite.equal(st.get("state"), "cancelled", "the job's state is cancelled")
        suite.equal(f.redis_hgetall(f"{f.prefix}job:{job}").get("state"), "cancelled",
                    "the job's Redis record says cancelled")
        suite.check(not os.path.exists(out), "a cancelled job leaves no output file", out)
        suite.check(not os.path.exists(out + ".partial"), "a cancelled job leaves no .partial file")


suite.case(test_reference)
suite.case(test_kill_one_worker)
suite.case(test_kill_all_workers)
suite.case(test_sigstop_past_lease)
suite.case(test_coordinator_restart)
suite.case(test_redis_restart)
suite.case(test_failing_segment)
suite.case(test_sigterm_worker)
suite.case(test_cancel)
sys.exit(suite.finish())
