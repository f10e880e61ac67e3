#!/usr/bin/env python3
"""test_e2e_batches — operators' batches: validation, idempotence, fair
share, priorities, pause/resume/cancel and watching.

Real Redis, coordinator and workers on loopback, driven through the CLI:

1. A 1,000-line JSONL batch with three bad lines is rejected whole: the
   message names the three line numbers, and nothing is queued (no job
   record, no batch record). With --skip-invalid the 997 good lines run to
   the end (`rfarm watch BATCH`, whose output to a file must be plain lines
   without terminal escape codes), their outputs land where the
   {batch}/{id} template says, and submitting the same file again creates
   no job.
2. Two batches of equal priority submitted one after the other both make
   progress within the first seconds (fair share by rendered frames, not
   first come first served); a higher-priority job submitted last gets the
   next free worker before any queued lower-priority work.
3. Pausing a batch stops its segments being handed out (nothing new is
   assigned while it is paused); resuming it lets it finish. Cancelling a
   batch cancels every job in it.
"""

import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import farm  # noqa: E402

suite = farm.Suite("test_e2e_batches")


def write_jsonl(f, name, specs):
    path = os.path.join(f.tmp, "specs", name)
    with open(path, "w") as fh:
        for s in specs:
            fh.write((s if isinstance(s, str) else json.dumps(s)) + "\n")
    return path


def tiny(out, **kw):
    s = farm.synthetic_spec(None, out, frames=kw.pop("frames", 1), width=16, height=16,
                            cost_ms=kw.pop("cost_ms", 0), segment_frames=kw.pop("segment_frames", 48),
                            overlap_frames=kw.pop("overlap_frames", 0), **kw)
    return s


def status_json(f, ident):
    r = f.cli("status", ident, "--json")
    if r.returncode != 0:
        raise farm.FarmError(f"status {ident} --json: exit {r.returncode}: {r.stderr.strip()}")
    return json.loads(r.stdout)


def test_big_batch_validation_and_idempotence():
    with suite.farm(workers=2, capacity=4, name="big") as f:
        template = os.path.join(f.out_dir, "{batch}", "{id}.y4m")
        specs = [tiny(template) for _ in range(1000)]
        bad = {17: '{"engine": "synthetic"',                      # not JSON
               500: dict(specs[499], width=17),                   # odd width
               999: dict(specs[998], bogus=1)}                    # unknown field
        lines = [bad.get(i + 1, specs[i]) for i in range(1000)]
        path = write_jsonl(f, "campaign.jsonl", lines)
        r = f.cli("submit", path)
        suite.equal(r.returncode, 1, "a batch with three bad lines is rejected (exit 1)")
        for n in (17, 500, 999):
            suite.check(re.search(rf"\bline {n}: ", r.stderr), f"the message names line {n}",
                        r.stderr[-600:])
        suite.check("width" in r.stderr and "bogus: unknown field" in r.stderr,
                    "the messages name the fields", r.stderr[-600:])
        suite.equal(f.redis_keys(f"{f.prefix}job:*"), [], "nothing was queued (no job record)")
        suite.equal(f.redis_keys(f"{f.prefix}batch:*"), [], "nothing was queued (no batch record)")

        t0 = time.monotonic()
        r = f.cli("submit", path, "--skip-invalid", "--name", "campaign", timeout=120)
        secs = time.monotonic() - t0
        suite.equal(r.returncode, 0, "with --skip-invalid the batch is accepted")
        batch = r.stdout.strip()
        print(f"   batch {batch}: submitted in {secs:.2f}s; {r.stderr.strip().splitlines()[0]}")
        suite.check(re.search(r"997 jobs created, 0 already there, 3 invalid lines skipped", r.stderr),
                    "997 jobs created, 3 invalid lines listed", r.stderr.splitlines()[:2])
        watch_out = os.path.join(f.tmp, "watch.txt")
        with open(watch_out, "w") as fh:
            argv = [os.path.join(f.bin, "rfarm"), "--endpoint", f.client_ep, "watch", batch,
                    "--interval", "0.5"]
            rc = farm.subprocess.run(argv, stdout=fh, stderr=farm.subprocess.STDOUT,
                                     stdin=farm.subprocess.DEVNULL, timeout=240).returncode
        suite.equal(rc, 0, "rfarm watch BATCH ends (exit 0) once the batch is over")
        text = open(watch_out, "rb").read()
        suite.check(b"\x1b" not in text, "watch output to a file has no terminal escape codes")
        last = [ln for ln in text.decode().splitlines() if ln.startswith("batch=")][-1:]
        suite.check(last and "jobs_done=997" in last[0] and "jobs=997" in last[0],
                    "watch's plain lines end with the batch complete", last)
        doc = status_json(f, batch)
        b = (doc.get("batches") or [{}])[0]
        suite.equal((b.get("jobs"), b.get("jobs_done"), b.get("jobs_failed"), b.get("state")),
                    (997, 997, 0, "done"), "batch status: (jobs, jobs_done, jobs_failed, state)")
        outs = os.listdir(os.path.join(f.out_dir, batch)) if os.path.isdir(
            os.path.join(f.out_dir, batch)) else []
        suite.equal(len(outs), 997, "997 outputs under out/<batch>/ (the {batch}/{id} template)")
        nkeys = len(f.redis_keys(f"{f.prefix}job:*:seg:*"))
        r = f.cli("submit", path, "--skip-invalid", timeout=120)
        suite.equal((r.returncode, r.stdout.strip()), (0, batch),
                    "the same file again names the same batch")
        suite.check(re.search(r"0 jobs created, 997 already there", r.stderr),
                    "re-submitting it creates no job", r.stderr.splitlines()[:1])
        suite.equal(len(f.redis_keys(f"{f.prefix}job:*:seg:*")), nkeys,
                    "no new job record in Redis")


def assigned(f):
    """[(job, seg)] in the order the coordinator assigned them."""
    return [(m.group(1), int(m.group(2))) for m in
            re.finditer(r"segment assigned job=(\S+) seg=(\d+)", f.coordinator.log_text())]


def test_fair_share_and_priority():
    with suite.farm(workers=2, capacity=1, name="fair") as f:
        def batch(name, n):
            specs = [dict(tiny(f.out(f"{name}-{{id}}.y4m"), frames=48, segment_frames=12,
                               cost_ms=20), id=f"{name}-{i}") for i in range(n)]
            return write_jsonl(f, f"{name}.jsonl", specs)
        ra = f.cli("submit", batch("alpha", 6))
        rb = f.cli("submit", batch("beta", 6))
        suite.check(ra.returncode == 0 and rb.returncode == 0, "both batches accepted",
                    (ra.stderr, rb.stderr))
        ba, bb = ra.stdout.strip(), rb.stdout.strip()
        time.sleep(2.5)
        fa = status_json(f, ba)["batches"][0]["frames_rendered"]
        fb = status_json(f, bb)["batches"][0]["frames_rendered"]
        print(f"   after 2.5 s: alpha rendered {fa} frames, beta {fb}")
        suite.check(fa > 0 and fb > 0, "both batches progress in the first seconds", (fa, fb))
        suite.check(abs(fa - fb) <= 24, "they progress together (within two segments' frames)",
                    (fa, fb))
        before = len(assigned(f))
        hi = f.submit(dict(tiny(f.out("urgent.y4m"), frames=24, segment_frames=12, cost_ms=20),
                           id="urgent", priority=10))
        nxt = farm.wait_for(lambda: assigned(f)[before:before + 1], 5, interval=0.02)
        suite.equal(nxt and nxt[0][0], hi, "the next segment handed out is the high-priority job's")
        for ident in (ba, bb, hi):
            r = f.cli("watch", ident, "--interval", "0.3", timeout=120)
            suite.equal(r.returncode, 0, f"{ident} finishes")
        # On a terminal (script(1) gives it one): bars redrawn in place, each
        # line within the terminal's width so the redraw cannot break.
        if farm.shutil.which("script"):
            cmd = f"{os.path.join(f.bin, 'rfarm')} --endpoint {f.client_ep} watch {ba}"
            r = farm.subprocess.run(["script", "-qfc", cmd, "/dev/null"], capture_output=True,
                                    timeout=60, stdin=farm.subprocess.DEVNULL)
            out = r.stdout.decode("utf-8", "replace")
            plain = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", out)
            widths = [len(ln.rstrip("\r")) for ln in plain.split("\n")]
            suite.check(r.returncode == 0 and "\x1b[" in out and "[####" in out,
                        "on a terminal, watch draws bars with escape codes", out[-200:])
            suite.check(max(widths) < 80, "on a terminal, watch's lines fit 80 columns",
                        max(widths))


def test_pause_resume_cancel():
    with suite.farm(workers=2, capacity=1, name="pause") as f:
        specs = [dict(tiny(f.out(f"p-{i}.y4m"), frames=48, segment_frames=12, cost_ms=20),
                      id=f"p-{i}") for i in range(4)]
        r = f.cli("submit", write_jsonl(f, "p.jsonl", specs))
        batch = r.stdout.strip()
        farm.wait_for(lambda: any(j.startswith("p-") for j, _ in assigned(f)), 5, interval=0.02)
        r = f.cli("pause", batch)
        suite.check(r.returncode == 0, "rfarm pause BATCH", r.stderr)
        n_paused = len(assigned(f))
        time.sleep(1.5)  # the segments in hand finish; nothing new may start
        suite.equal(len(assigned(f)), n_paused, "no segment is handed out while the batch is paused")
        st = status_json(f, batch)
        suite.check(any(j["state"] == "paused" for j in st["jobs"]), "its jobs say paused",
                    [j["state"] for j in st["jobs"]])
        r = f.cli("resume", batch)
        suite.check(r.returncode == 0, "rfarm resume BATCH", r.stderr)
        r = f.cli("watch", batch, "--interval", "0.3", timeout=120)
        suite.equal(r.returncode, 0, "the resumed batch finishes")
        st = status_json(f, batch)
        suite.equal(sorted(j["state"] for j in st["jobs"]), ["done"] * 4, "all its jobs are done")

        specs = [dict(tiny(f.out(f"c-{i}.y4m"), frames=96, segment_frames=12, cost_ms=30),
                      id=f"c-{i}") for i in range(3)]
        r = f.cli("submit", write_jsonl(f, "c.jsonl", specs))
        cb = r.stdout.strip()
        farm.wait_for(lambda: any(j.startswith("c-") for j, _ in assigned(f)), 5, interval=0.02)
        r = f.cli("cancel", cb)
        suite.check(r.returncode == 0, "rfarm cancel BATCH", r.stderr)
        suite.check(re.search(r"jobs=3\b", r.stdout), "the cancel reached its three jobs", r.stdout)
        st = status_json(f, cb)
        suite.equal(sorted(j["state"] for j in st["jobs"]), ["cancelled"] * 3,
                    "every job of the cancelled batch is cancelled")
        suite.equal(st["batches"][0]["state"], "cancelled", "the batch says cancelled")
        r = f.cli("logs", "c-0")
        suite.check(r.returncode == 0 and "job cancelled" in r.stdout,
                    "rfarm logs shows the job's events", r.stdout[-300:])


suite.case(test_big_batch_validation_and_idempotence)
suite.case(test_fair_share_and_priority)
suite.case(test_pause_resume_cancel)
sys.exit(suite.finish())
