#!/usr/bin/env python3
"""bench_farm — farm-level benchmarks of rfarm, each beside a baseline.

Runs the real programs (a private redis-server, rfarm-coordinator and
rfarm-workers on loopback, started by the e2e harness tests/e2e/farm.py)
and prints aligned tables. Three benchmarks, each a subcommand:

  scheduler  many tiny jobs through a null engine (synthetic, 16x16 frames,
             cost_ms 0, y4m): segments completed per second with 4 workers,
             beside the same batch on 1 worker; the coordinator's CPU time
             per segment; and the CLI wall time of submitting a
             10,000-line batch.                 targets: >= 20,000 seg/s,
                                                submit < 2 s
  transport  one 1920x1080 raw (y4m) job at cost 0: the coordinator's frame
             intake in MB/s and frames/s, beside a C memcpy of the same
             bytes (bench/memcpy_bw.c), a pwrite+fsync of the same bytes
             to the spool's file system, and the same frames over ZeroMQ
             alone, the socket path's ceiling (bench/zmq_bw.c).
                                                target: >= 1/3 of memcpy
  scaling    one job at 50 ms/frame on 1, 2, 4 and 8 workers: speed-up
             against 1 worker and efficiency against the ideal time once
             overlap frames are counted.        target: >= 90% at 8 workers
  metrics    the scheduler run with the coordinator's metrics off, then on
             (alternated, --repeat times each). target: on within 10% of off

    python3 bench/bench_farm.py scheduler|transport|scaling|metrics|all --bin build [--full]

The default sizes keep each benchmark under about two minutes on a 2-core
machine; --full runs the sizes the issue names (10,000 jobs; 1,200 frames).
Every size can also be set by hand (see --help).
See bench/README.md.
"""

import argparse
import calendar
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
import farm  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
FRAME_1080P = 1920 * 1080 * 3 // 2  # bytes of one I420 1920x1080 frame


# ---------------------------------------------------------------------------
# Output


def table(title, headers, rows, note=None):
    """Print rows (lists of str/int/float) under headers, columns aligned:
    text left, numbers right."""
    def fmt(v):
        if isinstance(v, float):
            if v != v:
                return "-"
            a = abs(v)
            if a >= 1000:
                return f"{v:,.0f}"
            if a >= 100:
                return f"{v:.1f}"
            if a >= 1 or a == 0:
                return f"{v:.2f}"
            return f"{v:.3f}" if a < 0.1 else f"{v:.2f}"
        if isinstance(v, int) and not isinstance(v, bool):
            return f"{v:,}"
        return "-" if v is None else str(v)

    cells = [[fmt(v) for v in r] for r in rows]
    numeric = [all(isinstance(r[i], (int, float)) or r[i] is None for r in rows) if rows else False
               for i in range(len(headers))]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(headers)]

    def line(vals):
        return "  ".join(v.rjust(w) if numeric[i] else v.ljust(w)
                         for i, (v, w) in enumerate(zip(vals, widths))).rstrip()

    print()
    print(title)
    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print(line(c))
    if note:
        for n in note.strip("\n").splitlines():
            print(f"  {n}")
    sys.stdout.flush()


def say(msg):
    print(f"-- {msg}", flush=True)


# ---------------------------------------------------------------------------
# Measuring processes


def proc_cpu(pid):
    """utime+stime of a process (all its threads), in seconds; None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def thread_cpu(pid):
    """{"main", "zmq", "other"}: CPU seconds of a process's threads: the
    main thread (the coordinator's event loop), ZeroMQ's background threads
    (ZMQbg/...) and the rest (the coordinator's stitch/encode pool)."""
    out = {"main": 0.0, "zmq": 0.0, "other": 0.0}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                s = f.read()
        except OSError:
            continue
        comm = s[s.index("(") + 1:s.rindex(")")]
        fields = s[s.rindex(")") + 2:].split()
        cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
        kind = "main" if tid == str(pid) else "zmq" if comm.startswith("ZMQbg") else "other"
        out[kind] += cpu
    return out


def proc_status(pid):
    """voluntary/nonvoluntary context switches of a process (all threads)."""
    out = {"vcsw": 0, "ivcsw": 0}
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for ln in f:
                    if ln.startswith("voluntary_ctxt_switches:"):
                        out["vcsw"] += int(ln.split()[1])
                    elif ln.startswith("nonvoluntary_ctxt_switches:"):
                        out["ivcsw"] += int(ln.split()[1])
    except OSError:
        pass
    return out


def proc_io(pid):
    """syscr/syscw/write_bytes from /proc/PID/io (0s if unreadable)."""
    out = {}
    try:
        with open(f"/proc/{pid}/io") as f:
            for ln in f:
                k, v = ln.split(":")
                out[k] = int(v)
    except OSError:
        pass
    return out


class Snapshot:
    """CPU seconds of the coordinator, Redis and every worker, the
    coordinator's context switches and syscalls, and Redis's command
    counters, at one moment."""

    def __init__(self, f):
        self.t = time.monotonic()
        self.coord = proc_cpu(f.coordinator.pid) or 0.0
        self.threads = thread_cpu(f.coordinator.pid)
        self.redis = proc_cpu(f.redis.pid) or 0.0
        self.workers = sum(proc_cpu(w.pid) or 0.0 for w in f.workers.values())
        self.csw = proc_status(f.coordinator.pid)
        self.io = proc_io(f.coordinator.pid)
        self.redis_calls, self.redis_usec = redis_cmdstats(f)
        self.redis_reads = redis_reads(f)

    def threads_delta(self, earlier):
        return {k: self.threads[k] - earlier.threads[k] for k in self.threads}


def redis_reads(f):
    """Redis's total_reads_processed (INFO stats): read events on client
    sockets, i.e. round trips, however many commands each carried."""
    try:
        info = f.redis_command("INFO", "stats")
    except farm.FarmError:
        return 0
    m = re.search(r"total_reads_processed:(\d+)", info or "")
    return int(m.group(1)) if m else 0


def redis_cmdstats(f):
    """Total calls and usec over all Redis commands (INFO commandstats)."""
    try:
        info = f.redis_command("INFO", "commandstats")
    except farm.FarmError:
        return 0, 0
    calls = usec = 0
    for m in re.finditer(r"cmdstat_(\w+):calls=(\d+),usec=(\d+)", info or ""):
        if m.group(1) in ("info",):
            continue
        calls += int(m.group(2))
        usec += int(m.group(3))
    return calls, usec


# ---------------------------------------------------------------------------
# Logs

LOG_RX = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})Z \S+\s+\S+: (.*)$")


def log_events(path, wanted):
    """[(unix seconds, message, fields)] of the lines of a log whose message
    starts with one of `wanted` (a tuple of prefixes)."""
    out = []
    try:
        f = open(path, "rb")
    except OSError:
        return out
    with f:
        for raw in f:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            m = LOG_RX.match(line)
            if not m:
                continue
            msg = m.group(8)
            if not msg.startswith(wanted):
                continue
            y, mo, d, h, mi, s, ms = (int(m.group(i)) for i in range(1, 8))
            t = calendar.timegm((y, mo, d, h, mi, s)) + ms / 1000.0
            out.append((t, msg, farm.log_fields(msg)))
    return out


def window(events, first_prefix, last_prefix):
    """(first time of a `first_prefix` line, last time of a `last_prefix` line)."""
    t0 = min((t for t, m, _ in events if m.startswith(first_prefix)), default=None)
    t1 = max((t for t, m, _ in events if m.startswith(last_prefix)), default=None)
    return t0, t1


# ---------------------------------------------------------------------------
# Farms


class Bench:
    def __init__(self, opts):
        self.opts = opts
        argv = ["--bin", opts.bin] + (["--keep"] if opts.keep else [])
        # The harness prints one "ok" line per program that stops cleanly;
        # its Suite counts them, and a failure there is reported at the end.
        self.suite = farm.Suite("bench_farm", argv)
        self.results = []  # (benchmark, target, measured, met)
        self.compiled = {}  # bench helper name -> the executable c_tool built
        self.cleanup = []  # temporary directories to remove at the end

    def farm(self, **kw):
        kw.setdefault("prefix", "rfarm-bench:")
        return farm.Farm(self.suite, **kw)

    def target(self, bench, what, measured, met):
        self.results.append((bench, what, measured, "yes" if met else "NO"))


def write_batch(path, specs):
    with open(path, "w") as fh:
        for s in specs:
            fh.write(json.dumps(s, separators=(",", ":")) + "\n")


def submit_batch(f, path, timeout):
    """`rfarm submit FILE.jsonl`; returns (batch id, CLI wall seconds)."""
    t0 = time.monotonic()
    r = f.cli("submit", path, timeout=timeout)
    dt = time.monotonic() - t0
    if r.returncode != 0:
        raise farm.FarmError(f"batch submit refused (exit {r.returncode}): {r.stderr.strip()[:500]}")
    return r.stdout.strip(), dt


def wait_batch(f, batch, njobs, timeout):
    """Poll the batch record in Redis (every 0.1 s) until every job ended.
    Returns {done, failed, cancelled}."""
    key = f"{f.prefix}batch:{batch}"
    deadline = time.monotonic() + timeout
    while True:
        h = f.redis_hgetall(key)
        ended = {k: int(h.get(f"jobs_{k}", 0) or 0) for k in ("done", "failed", "cancelled")}
        if sum(ended.values()) >= njobs:
            return ended
        if not f.coordinator.alive():
            raise farm.FarmError("the coordinator died during the benchmark")
        if time.monotonic() > deadline:
            raise farm.FarmError(f"batch {batch}: {ended} of {njobs} jobs ended after {timeout:.0f}s")
        time.sleep(0.1)


def wait_job_log(f, job, timeout):
    """Wait for `job done|failed job=JOB` in the coordinator's log."""
    f.coordinator.wait_for_line(rf"job (done|failed|cancelled) job={re.escape(job)}\b", timeout)
    if re.search(rf"job done job={re.escape(job)}\b", f.coordinator.log_text()) is None:
        raise farm.FarmError(f"job {job} did not end done; see {f.coordinator.log_path}")


def perf_start(pid, out):
    if shutil.which("perf") is None:
        say("perf not found; --perf ignored")
        return None
    return subprocess.Popen(["perf", "record", "-q", "-F", "999", "-g", "-p", str(pid), "-o", out],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def perf_stop(p, out, title, lines=25):
    if p is None:
        return
    p.send_signal(signal.SIGINT)
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        return
    r = subprocess.run(["perf", "report", "-i", out, "--stdio", "--no-children", "--sort",
                        "dso,sym", "--percent-limit", "1", "-g", "none"],
                       capture_output=True, text=True)
    rows = [ln for ln in r.stdout.splitlines() if ln.strip() and not ln.startswith("#")]
    print(f"\n{title} (perf, on-CPU samples of the coordinator, all threads)")
    print("  hottest functions (self, >= 1%):")
    for ln in rows[:lines]:
        print("    " + ln.strip())
    # Inclusive time of system calls and of the coordinator's own functions:
    # which call the kernel time above is spent under.
    r = subprocess.run(["perf", "report", "-i", out, "--stdio", "--children", "--sort", "sym",
                        "--percent-limit", "2", "-g", "none"], capture_output=True, text=True)
    rows = [ln for ln in r.stdout.splitlines()
            if re.search(r"__x64_sys_\w+|\[\.\] (coord|store|stitch|sched|enc|rf_|on_|redis|zmq)", ln)]
    print("  system calls and rfarm/hiredis/zmq functions (inclusive, >= 2%):")
    for ln in rows[:lines]:
        print("    " + ln.strip())


# ---------------------------------------------------------------------------
# 1. scheduler


def sched_run(b, nworkers, njobs, seg_per_job, capacity, coordinator_args=()):
    """One farm of nworkers, one batch of njobs null jobs; returns a dict."""
    o = b.opts
    with b.farm(workers=nworkers, capacity=capacity, name=f"sched-w{nworkers}",
                coordinator_args=coordinator_args) as f:
        specs = []
        for _ in range(njobs):
            specs.append(farm.synthetic_spec(None, os.path.join(f.out_dir, "{id}.y4m"),
                                             frames=seg_per_job, width=16, height=16, cost_ms=0,
                                             segment_frames=1, overlap_frames=0))
        path = os.path.join(f.tmp, "batch.jsonl")
        write_batch(path, specs)
        perf = perf_start(f.coordinator.pid, os.path.join(f.tmp, "perf.data")) if o.perf and nworkers > 1 else None
        s0 = Snapshot(f)
        batch, submit_s = submit_batch(f, path, timeout=max(60, njobs / 100))
        ended = wait_batch(f, batch, njobs, timeout=o.timeout)
        s1 = Snapshot(f)
        if perf:
            perf_stop(perf, os.path.join(f.tmp, "perf.data"),
                      f"scheduler, {nworkers} workers: where the coordinator's CPU goes")
        ev = log_events(f.coordinator.log_path, ("segment assigned", "segment done", "job done"))
        t_first, t_last = window(ev, "segment assigned", "segment done")
        nseg = sum(1 for _, m, _ in ev if m.startswith("segment done"))
        _, t_jobs = window(ev, "segment assigned", "job done")
    segs = njobs * seg_per_job
    win = (t_last - t_first) if t_first and t_last else float("nan")
    e2e = s1.t - s0.t
    return {
        "workers": nworkers, "jobs": njobs, "segments": segs, "segments_logged": nseg,
        "ended": ended, "submit_s": submit_s, "window_s": win, "e2e_s": e2e,
        "jobs_window_s": (t_jobs - t_first) if t_first and t_jobs else float("nan"),
        "seg_per_s": segs / win if win == win and win > 0 else float("nan"),
        "seg_per_s_e2e": segs / e2e,
        "coord_cpu": s1.coord - s0.coord, "redis_cpu": s1.redis - s0.redis,
        "coord_main": s1.threads_delta(s0)["main"],
        "workers_cpu": s1.workers - s0.workers,
        "redis_calls": s1.redis_calls - s0.redis_calls,
        "redis_reads": s1.redis_reads - s0.redis_reads,
        "redis_usec": s1.redis_usec - s0.redis_usec,
        "vcsw": s1.csw["vcsw"] - s0.csw["vcsw"],
        "syscalls": (s1.io.get("syscr", 0) + s1.io.get("syscw", 0)) - (s0.io.get("syscr", 0) + s0.io.get("syscw", 0)),
    }


def redis_rtt_us(f, n=20000):
    """Mean round trip of one synchronous Redis command (SET) against the
    farm's Redis, as the coordinator's hiredis calls pay it: redis-benchmark
    with one client and no pipelining when it is installed, else PINGs from
    Python (which adds its own overhead). Returns (us, how)."""
    if shutil.which("redis-benchmark"):
        r = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(f.redis_port), "-t", "set",
                            "-n", str(n), "-c", "1", "-P", "1", "--csv"],
                           capture_output=True, text=True, timeout=120)
        for ln in r.stdout.splitlines():
            cols = [c.strip('"') for c in ln.split(",")]
            if cols and cols[0] == "SET":
                try:
                    return 1e6 / float(cols[1]), "redis-benchmark SET, 1 client"
                except (IndexError, ValueError):
                    break
    import socket
    with socket.create_connection(("127.0.0.1", f.redis_port), timeout=5) as sk:
        t0 = time.perf_counter()
        for _ in range(n // 4):
            sk.sendall(b"PING\r\n")
            sk.recv(64)
        return (time.perf_counter() - t0) / (n // 4) * 1e6, "PING from Python"


def fsync_dir(directory):
    """What makes a rename durable: the directory's own fsync."""
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def remove_files(directory, names):
    for name in names:
        try:
            os.unlink(os.path.join(directory, name))
        except OSError:
            pass


def spool_commit_us(directory, n=300, size=384):
    """What the coordinator does on disk to commit one finished 16x16
    segment alone (a commit group of one), in `directory`: open the pack
    file (spool.h), pwrite the frame after the last one, fsync, close. A
    group of several shares the open and the fsync. Mean us per segment."""
    buf = os.urandom(size)
    pack = os.path.join(directory, "ref-pack")
    os.close(os.open(pack, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))
    fsync_dir(directory)
    t0 = time.perf_counter()
    for i in range(n):
        fd = os.open(pack, os.O_WRONLY)
        os.pwrite(fd, buf, i * size)
        os.fsync(fd)
        os.close(fd)
    dt = (time.perf_counter() - t0) / n * 1e6
    remove_files(directory, ["ref-pack"])
    return dt


def submit_only(b, nlines):
    """A farm with no workers: time `rfarm submit` of an nlines batch."""
    with b.farm(workers=0, name="submit") as f:
        specs = [farm.synthetic_spec(None, os.path.join(f.out_dir, "{id}.y4m"), frames=10,
                                     width=16, height=16, cost_ms=0, segment_frames=1,
                                     overlap_frames=0) for _ in range(nlines)]
        path = os.path.join(f.tmp, "batch.jsonl")
        write_batch(path, specs)
        size = os.path.getsize(path)
        s0 = Snapshot(f)
        batch, secs = submit_batch(f, path, timeout=300)
        s1 = Snapshot(f)
        ev = log_events(f.coordinator.log_path, ("job queued", "batch accepted"))
        t_q0, t_acc = window(ev, "job queued", "batch accepted")
        created = sum(1 for _, m, _ in ev if m.startswith("job queued"))
        rtt, rtt_how = redis_rtt_us(f)
        commit = spool_commit_us(f.spool)
    return {"rtt_us": rtt, "rtt_how": rtt_how, "commit_us": commit,
            "lines": nlines, "bytes": size, "cli_s": secs, "created": created,
            "coord_cpu": s1.coord - s0.coord, "redis_cpu": s1.redis - s0.redis,
            "redis_calls": s1.redis_calls - s0.redis_calls,
            "redis_reads": s1.redis_reads - s0.redis_reads,
            "create_s": (t_acc - t_q0) if t_q0 and t_acc else float("nan")}


# A null engine's worker can render several segments at once; with one, each
# worker idles for a round trip to the coordinator after every segment, and
# with few, every segment costs its own wake-ups in the coordinator and the
# worker. Measured on 2 cores (bench/README.md): --capacity 4 ~13,500 seg/s,
# 16 ~18,700-21,300, 32 no better.
SCHED_CAPACITY = 16


def bench_scheduler(b):
    o = b.opts
    njobs = o.jobs or (10000 if o.full else 1000)
    seg = o.segments_per_job
    cap = o.capacity or SCHED_CAPACITY
    say(f"scheduler: {njobs:,} jobs x {seg} segments (16x16, cost_ms 0, y4m), "
        f"{o.workers} workers vs 1, each --capacity {cap}; submit of a {o.submit_lines:,}-line batch")
    runs = [sched_run(b, 1, njobs, seg, cap)]
    runs.append(sched_run(b, o.workers, njobs, seg, cap))
    sub = submit_only(b, o.submit_lines)

    base = runs[0]["seg_per_s"]
    rows = []
    for r in runs:
        rows.append([f"{r['workers']} worker{'s' if r['workers'] > 1 else ''}"
                     + (" (baseline)" if r["workers"] == 1 else ""),
                     r["jobs"], r["segments"], r["window_s"], r["seg_per_s"], r["seg_per_s"] / base,
                     r["e2e_s"], r["seg_per_s_e2e"]])
    table("scheduler: segments completed per second (null engine)",
          ["run", "jobs", "segments", "window s", "seg/s", "x baseline", "e2e s", "seg/s e2e"], rows,
          note=f"""
window: first `segment assigned` to last `segment done` in the coordinator's log (ms);
e2e: from `rfarm submit` until the batch record in Redis says every job ended (includes
the submit and the stitching of {runs[0]['jobs']:,} y4m files). Target: >= 20,000 seg/s.""")
    ncpu = os.cpu_count() or 1
    rows = []
    for r in runs:
        n = r["segments"]
        rows.append([f"{r['workers']} worker{'s' if r['workers'] > 1 else ''}",
                     r["coord_cpu"] * 1e6 / n, r["coord_main"] * 1e6 / n,
                     r["coord_cpu"] / r["e2e_s"] * 100, r["coord_main"] / r["e2e_s"] * 100,
                     r["redis_cpu"] * 1e6 / n, r["workers_cpu"] * 1e6 / n,
                     (r["coord_cpu"] + r["redis_cpu"] + r["workers_cpu"]) * 1e6 / n,
                     ncpu * n / max(1e-9, r["coord_cpu"] + r["redis_cpu"] + r["workers_cpu"]),
                     r["redis_calls"] / n, r["redis_reads"] / n, r["syscalls"] / n, r["vcsw"] / n])
    table("scheduler: cost per segment (over the e2e interval)",
          ["run", "coord us/seg", "main thread us/seg", "coord busy %", "main busy %",
           "redis us/seg", "workers us/seg", "all us/seg", "CPU ceiling seg/s",
           "redis cmds/seg", "redis trips/seg",
           "coord rd+wr syscalls/seg",
           "coord csw/seg"], rows,
          note=f"""
us/seg: CPU time (utime+stime, /proc/PID/stat and /proc/PID/task/*/stat) per segment;
main thread = the coordinator's event loop. busy %: CPU time / e2e wall time (100% = one
core). all: coordinator + Redis + workers; CPU ceiling: {ncpu} CPUs / all us/seg, the rate
this machine cannot beat with these CPU costs even if nothing ever waited.
redis cmds/seg: INFO commandstats calls; trips: INFO stats total_reads_processed (requests
Redis read off a socket: one per round trip however many commands it carried; the
benchmark's own polling adds ~10/s); rd+wr syscalls: syscr+syscw of /proc/PID/io;
csw: voluntary context switches (the loop blocking on Redis, fsync, poll).""")
    # A run whose jobs did not all finish measured a farm that was failing:
    # its rate is no result, and the benchmark fails.
    incomplete = [r for r in runs
                  if r["ended"]["done"] != r["jobs"] or r["segments_logged"] != r["segments"]]
    for r in incomplete:
        b.suite.fail(f"{r['workers']}-worker run: not every job finished",
                     f"{r['ended']} jobs ended, {r['segments_logged']} of {r['segments']} "
                     f"segments logged done")

    table("scheduler: submitting one batch (rfarm submit FILE.jsonl, no workers)",
          ["lines", "file bytes", "jobs created", "CLI wall s", "lines/s", "coord CPU s",
           "redis CPU s", "redis cmds/job", "redis trips/job", "queued..accepted s"],
          [[sub["lines"], sub["bytes"], sub["created"], sub["cli_s"], sub["lines"] / sub["cli_s"],
            sub["coord_cpu"], sub["redis_cpu"], sub["redis_calls"] / max(1, sub["lines"]),
            sub["redis_reads"] / max(1, sub["lines"]), sub["create_s"]]],
          note="queued..accepted: first `job queued` to `batch accepted` in the coordinator's log "
               "(job creation inside the coordinator).")
    r4 = runs[1]
    n4 = r4["segments"]
    table("scheduler: reference costs on this machine (measured now, beside the budget)",
          ["operation", "us", "per segment now", "us/seg", "max seg/s alone"],
          [["budget at 20,000 seg/s", 50.0, 1.0, 50.0, 20000.0],
           [f"Redis round trip ({sub['rtt_how']})", sub["rtt_us"], r4["redis_reads"] / n4,
            sub["rtt_us"] * r4["redis_reads"] / n4, 1e6 / max(1e-9, sub["rtt_us"] * r4["redis_reads"] / n4)],
           ["spool commit alone: pwrite into a pack + fsync", sub["commit_us"], 1.0,
            sub["commit_us"], 1e6 / sub["commit_us"]],
           ["coordinator event loop CPU (measured above)", r4["coord_main"] * 1e6 / n4, 1.0,
            r4["coord_main"] * 1e6 / n4, n4 / max(r4["coord_main"], 1e-9)]],
          note=f"""
per segment now: Redis round trips per segment (total_reads_processed) counted in the
{r4['workers']}-worker run, priced at one synchronous round trip each (the loop sends a turn's
writes together, so this overstates it); the spool commit is what commit.c does for a
finished segment that is alone in its commit group (one 384-byte frame appended to a pack),
timed in the farm's spool directory ({tempfile.gettempdir()}); under load a group's segments
share one fsync, so this overstates it too. The event loop CPU row is the CPU the loop burnt.""")
    b.target("scheduler", f"seg/s, {runs[1]['workers']} workers, {njobs:,} jobs >= 20,000",
             f"{runs[1]['seg_per_s']:,.0f}" + (" (jobs failed: no result)" if incomplete else ""),
             runs[1]["seg_per_s"] >= 20000 and not incomplete)
    b.target("scheduler", f"submit {sub['lines']:,}-line batch < 2 s", f"{sub['cli_s']:.2f} s",
             sub["cli_s"] < 2.0)


def bench_metrics(b):
    """The scheduler benchmark's multi-worker run with the coordinator's
    metrics off (--no-metrics) and on (the default), in the order off, on,
    on, off, off, on... so that a drift of the machine hits both alike: the
    spool's file system gets slower run after run (ext4 scans the inodes it
    recently freed when it makes files; --tmpdir /dev/shm takes it out)."""
    o = b.opts
    njobs = o.jobs or (10000 if o.full else 1000)
    seg = o.segments_per_job
    say(f"metrics: {njobs:,} jobs x {seg} segments, {o.workers} workers, metrics off vs on, "
        f"{o.repeat} runs each, order off-on, on-off, ...")
    runs = {"off": [], "on": []}
    for rnd in range(o.repeat):
        for mode in (("off", "on") if rnd % 2 == 0 else ("on", "off")):
            args = ["--no-metrics"] if mode == "off" else ["--metrics-interval-ms", "1000"]
            runs[mode].append(sched_run(b, o.workers, njobs, seg, o.capacity or SCHED_CAPACITY,
                                        args))
    rows = []
    for mode in ("off", "on"):
        rs = runs[mode]
        rows.append([f"metrics {mode}" + (" (baseline)" if mode == "off" else ""),
                     " / ".join(f"{r['seg_per_s']:,.0f}" for r in rs),
                     statistics.median(r["seg_per_s"] for r in rs),
                     statistics.median(r["coord_cpu"] * 1e6 / r["segments"] for r in rs),
                     statistics.median(r["redis_calls"] / r["segments"] for r in rs)])
    off, on = rows[0][2], rows[1][2]
    table("metrics: scheduler throughput with the coordinator's metrics off and on",
          ["run", "seg/s of each run", "median seg/s", "coord us/seg", "redis cmds/seg"], rows,
          note="""
on: counters, gauges and per-worker figures written once a second, one time-series sample
per series every second (the default interval is 5 s: this is 5x the default's writes).
Target: on within 10% of off.""")
    b.target("metrics", "seg/s with metrics on >= 90% of off",
             f"{on:,.0f} vs {off:,.0f} ({on / off * 100:.1f}%)", on >= 0.9 * off)


# ---------------------------------------------------------------------------
# 2. transport


def pkg_flags(pkg):
    """pkg-config's compile and link flags for pkg, or -l<name> without it."""
    try:
        r = subprocess.run(["pkg-config", "--cflags", "--libs", pkg], capture_output=True,
                           text=True)
    except OSError:  # no pkg-config
        r = None
    return r.stdout.split() if r and r.returncode == 0 else [f"-l{pkg.removeprefix('lib')}"]


def c_tool(b, name, source, libs=()):
    """Path of a bench helper: BIN/name when the build has it, else
    bench/source compiled once into a temporary directory that main()
    removes at the end."""
    built = os.path.join(b.opts.bin, name)
    if os.access(built, os.X_OK):
        return built
    if name in b.compiled:
        return b.compiled[name]
    tmp = tempfile.mkdtemp(prefix=f"rfarm-{name}-")
    b.cleanup.append(tmp)
    exe = os.path.join(tmp, name)
    cc = os.environ.get("CC", "cc")
    try:
        r = subprocess.run([cc, "-O2", "-std=c17", "-D_POSIX_C_SOURCE=200809L", "-D_GNU_SOURCE",
                            "-o", exe, os.path.join(HERE, source), *libs],
                           capture_output=True, text=True)
    except OSError as e:
        raise farm.FarmError(f"cannot compile bench/{source}: {cc}: {e}") from None
    if r.returncode != 0:
        raise farm.FarmError(f"cannot compile bench/{source}: {r.stderr.strip()}")
    b.compiled[name] = exe
    return exe


def run_tool(b, name, source, args, libs=()):
    """Run a bench helper; the key=value fields of its one line of output.
    It runs in a process group of its own, killed whole on a time-out (a
    helper may have children)."""
    exe = c_tool(b, name, source, libs)
    try:
        p = subprocess.Popen([exe, *map(str, args)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
    except OSError as e:
        raise farm.FarmError(f"cannot run {exe}: {e}") from None
    try:
        out, err = p.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.communicate()
        raise farm.FarmError(f"{name} took over 300 s") from None
    if p.returncode != 0:
        raise farm.FarmError(f"{name} failed: {err.strip()}")
    return farm.log_fields(out)


def memcpy_bw(b, total, chunk):
    f = run_tool(b, "rf-bench-memcpy", "memcpy_bw.c", [total, chunk])
    return float(f["best_s"]), float(f["MBps"])


def zmq_bw(b, total, chunk, senders, spool_dir=None, file_frames=48):
    """Frames over ZeroMQ on loopback with nothing else running: dropped,
    or written into files of file_frames frames in spool_dir (zmq_bw.c);
    best seconds of 3."""
    args = [total, chunk, senders, 3] + ([spool_dir, file_frames] if spool_dir else [])
    f = run_tool(b, "rf-bench-zmq", "zmq_bw.c", args, libs=(*pkg_flags("libzmq"), "-pthread"))
    return float(f["best_s"])


def pwrite_bw(directory, total, chunk, per_file):
    """pwrite `total` bytes in `chunk` pieces to files of `per_file` chunks in
    directory, fsync each file and the directory as the coordinator does per
    segment; returns seconds."""
    buf = memoryview(os.urandom(chunk))
    t0 = time.monotonic()
    left, k = total, 0
    while left > 0:
        p = os.path.join(directory, f"pw-{k}.raw")
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            for i in range(per_file):
                if left <= 0:
                    break
                n = min(chunk, left)
                os.pwrite(fd, buf[:n], i * chunk)
                left -= n
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(directory)
        k += 1
    dt = time.monotonic() - t0
    remove_files(directory, (f"pw-{i}.raw" for i in range(k)))
    return dt


def transport_run(b, share, frames, L):
    """One transport job on a fresh farm; its timings and CPU. share: the
    workers write frames into the coordinator's spool (they run beside it)
    instead of sending them over the socket."""
    o = b.opts
    w, h = o.width, o.height
    name = "transport-spool" if share else "transport-socket"
    with b.farm(workers=o.workers, name=name, share_spool=share) as f:
        out = f.out("transport.y4m")
        spec = farm.synthetic_spec("transport", out, frames=frames, width=w, height=h, cost_ms=0,
                                   segment_frames=L, overlap_frames=0)
        perf = perf_start(f.coordinator.pid, os.path.join(f.tmp, "perf.data")) if o.perf else None
        s0 = Snapshot(f)
        job = f.submit(spec)
        wait_job_log(f, job, o.timeout)
        s1 = Snapshot(f)
        if perf:
            perf_stop(perf, os.path.join(f.tmp, "perf.data"),
                      f"{name}: where the coordinator's CPU goes")
        ev = log_events(f.coordinator.log_path, ("segment assigned", "segment done", "job queued",
                                                 "video written", "job done"))
        t_first, t_last = window(ev, "segment assigned", "segment done")
        t_q, _ = window(ev, "job queued", "job queued")
        _, t_written = window(ev, "video written", "video written")
        render_ms = [int(x.get("ms", 0)) for _, m, x in ev if m.startswith("segment done")]
        out_bytes = os.path.getsize(out) if os.path.exists(out) else 0
        in_spool = sum(int(farm.log_fields(line).get("frames_in_spool", 0))
                       for wk in f.workers.values() for line in wk.log_text().splitlines()
                       if "segment finished" in line)
        # Same bytes through pwrite+fsync into the spool's file system, in
        # files of one segment each, as the coordinator writes them.
        pw_s = None if share else pwrite_bw(f.spool, frames * w * h * 3 // 2, w * h * 3 // 2, L)
        try:
            os.unlink(out)
        except OSError:
            pass
    return {"intake": t_last - t_first, "e2e": t_written - t_q, "th": s1.threads_delta(s0),
            "coord": s1.coord - s0.coord, "workers": s1.workers - s0.workers,
            "redis": s1.redis - s0.redis, "render_ms": render_ms, "out_bytes": out_bytes,
            "in_spool": in_spool, "pw_s": pw_s}


def bench_transport(b):
    o = b.opts
    frames = o.frames or (1200 if o.full else 240)
    w, h = o.width, o.height
    L = o.segment_frames or 48
    fb = w * h * 3 // 2
    total = frames * fb
    say(f"transport: one {w}x{h} y4m job of {frames} frames (segments of {L}, "
        f"overlap 0, cost 0) on {o.workers} workers = {total / 1e6:,.0f} MB, "
        f"frames over the socket, then written into the spool by the workers")
    runs = {"socket": transport_run(b, False, frames, L), "spool": transport_run(b, True, frames, L)}
    mc_s, mc_mbps = memcpy_bw(b, total, fb)
    pw_s = runs["socket"]["pw_s"]
    # The socket path's ceiling: the same frames from as many processes as
    # there are workers, over ZeroMQ alone, into the spool's file system.
    # Without it (it could not be built or run) the farm's rows still stand.
    zdir = tempfile.mkdtemp(prefix="rfarm-bench-zmq-")
    zmq_drop_s = zmq_spool_s = None
    try:
        zmq_drop_s = zmq_bw(b, total, fb, o.workers)
        zmq_spool_s = zmq_bw(b, total, fb, o.workers, zdir, L)
    except farm.FarmError as e:
        say(f"transport: ZeroMQ ceiling rows left out: {e}")
    finally:
        shutil.rmtree(zdir, ignore_errors=True)

    def row(label, secs):
        return [label, total, secs, total / secs / 1e6, frames / secs, total / secs / 1e6 / mc_mbps * 100]
    rows = [
        row("intake, frames over the socket", runs["socket"]["intake"]),
        row("intake, workers write the spool", runs["spool"]["intake"]),
        row("end to end, frames over the socket", runs["socket"]["e2e"]),
        row("end to end, workers write the spool", runs["spool"]["e2e"]),
        ["memcpy, 1 thread (baseline)", total, mc_s, mc_mbps, total / fb / mc_s, 100.0],
        row("pwrite+fsync to spool fs, 1 thread", pw_s),
    ]
    if zmq_drop_s:
        rows.append(row(f"ZeroMQ alone, {o.workers} senders, dropped", zmq_drop_s))
    if zmq_spool_s:
        rows.append(row(f"ZeroMQ alone, {o.workers} senders, into spool fs", zmq_spool_s))
    lines = []
    for k, r in runs.items():
        th, n = r["th"], len(r["render_ms"]) or 1
        lines.append(
            f"{k}: CPU s coordinator {r['coord']:.2f} (event loop {th['main']:.2f}, ZeroMQ I/O "
            f"{th['zmq']:.2f}, stitch/encode pool {th['other']:.2f}), workers {r['workers']:.2f}, "
            f"redis {r['redis']:.2f}; per frame: coordinator {r['coord'] / frames * 1e3:.2f} ms, "
            f"workers {r['workers'] / frames * 1e3:.2f} ms; render {sum(r['render_ms']) / n / L:.2f} "
            f"ms/frame; frames written into the spool by workers {r['in_spool']:,} of {frames:,}; "
            f"output {r['out_bytes']:,} bytes.")
    table(f"transport: {frames} frames of {w}x{h} I420 ({fb:,} bytes each), {o.workers} workers",
          ["path", "bytes", "seconds", "MB/s", "frames/s", "% of memcpy"], rows,
          note="\n".join([
              "intake: first `segment assigned` to last `segment done` in the coordinator's log (ms",
              "resolution). socket: every frame crossed ZeroMQ (loopback TCP) and the coordinator",
              "pwrote it to the spool. spool: the workers (beside the coordinator, --share-spool",
              "auto) pwrote each frame into the segment's spool file and sent a small message;",
              "the coordinator checks the file's size and commits it. End to end: `job queued` to",
              "`video written` (includes stitching the y4m output). ZeroMQ alone: the same frames",
              f"sent by {o.workers} processes over loopback TCP to one that drops them, or pwrites",
              f"them in files of {L} frames beside the farms while a second thread fsyncs each",
              "file (bench/zmq_bw.c): the socket path's ceiling, with no rendering and no",
              "stitching."] + lines +
              [f"target: intake >= 1/3 of memcpy ({mc_mbps / 3:,.0f} MB/s)."]))
    ceiling = total / zmq_spool_s / 1e6 / mc_mbps if zmq_spool_s else None
    for k, label in (("socket", "frames over the socket"), ("spool", "workers write the spool")):
        ratio = total / runs[k]["intake"] / 1e6 / mc_mbps
        b.target("transport", f"intake >= 1/3 of memcpy, {label}",
                 f"{ratio * 100:.1f}% ({total / runs[k]['intake'] / 1e6:,.0f} of {mc_mbps:,.0f} MB/s)"
                 + (f"; ZeroMQ alone into the spool: {ceiling * 100:.1f}%"
                    if k == "socket" and ceiling else ""),
                 ratio >= 1 / 3)


# ---------------------------------------------------------------------------
# 3. scaling


def lpt_makespan(lengths, workers):
    """Frames on the busiest worker when whole segments are dealt out in
    order to the first free worker (what a pull scheduler does with equal
    workers)."""
    loads = [0] * workers
    for L in lengths:
        i = loads.index(min(loads))
        loads[i] += L
    return max(loads)


def bench_scaling(b):
    o = b.opts
    if o.full:
        frames, L, O = o.frames or 1200, o.segment_frames or 48, o.overlap_frames if o.overlap_frames is not None else 8
    else:
        frames, L, O = o.frames or 240, o.segment_frames or 34, o.overlap_frames if o.overlap_frames is not None else 4
    cost = o.cost_ms
    plan = farm.expected_segments(frames, L, O)
    lengths = [e - s for s, e in plan]
    seg_frames = sum(lengths)
    say(f"scaling: one job of {frames} frames, segments of {L} overlapping by {O} "
        f"({len(plan)} segments, {seg_frames} segment frames), {cost} ms/frame, "
        f"{o.size} frames, workers {','.join(map(str, o.worker_counts))}")
    w_, h_ = (int(x) for x in o.size.split("x"))
    res = []
    for W in o.worker_counts:
        with b.farm(workers=W, name=f"scaling-w{W}") as f:
            spec = farm.synthetic_spec(f"scale-w{W}", f.out(f"scale-w{W}.y4m"), frames=frames,
                                       width=w_, height=h_, cost_ms=cost, segment_frames=L,
                                       overlap_frames=O)
            s0 = Snapshot(f)
            job = f.submit(spec)
            wait_job_log(f, job, o.timeout)
            s1 = Snapshot(f)
            ev = log_events(f.coordinator.log_path, ("segment assigned", "segment done",
                                                     "job queued", "job done"))
            # Per worker, from its own log (in file order): the time from
            # `segment finished` to its next `segment started`, i.e. the
            # round trip through the coordinator between two segments.
            gaps = []
            for wk in f.workers.values():
                wev = log_events(wk.log_path, ("segment started", "segment finished"))
                for (t1, m1, _), (t2, m2, _) in zip(wev, wev[1:]):
                    if m1.startswith("segment finished") and m2.startswith("segment started"):
                        gaps.append(t2 - t1)
        t_q, _ = window(ev, "job queued", "job queued")
        _, t_done = window(ev, "job done", "job done")
        t_a, t_l = window(ev, "segment assigned", "segment done")
        render = [int(x.get("ms", 0)) for _, m, x in ev if m.startswith("segment done")]
        res.append({"W": W, "job_s": t_done - t_q, "render_s": t_l - t_a,
                    "start_s": t_a - t_q, "gap_ms": (sum(gaps) / len(gaps) * 1e3) if gaps else 0.0,
                    "render_over_ms": (sum(render) / len(render) - sum(lengths) / len(lengths) * cost)
                    if render else float("nan"),
                    "coord_cpu": s1.coord - s0.coord})
    base = next((r["job_s"] for r in res if r["W"] == 1), res[0]["job_s"] * res[0]["W"])
    rows = []
    for r in res:
        W = r["W"]
        fluid = seg_frames / W * cost / 1000
        whole = lpt_makespan(lengths, W) * cost / 1000
        r["eff"] = fluid / r["job_s"]
        rows.append([W, r["job_s"], r["render_s"], base / r["job_s"], W, fluid, r["eff"] * 100,
                     whole, whole / r["job_s"] * 100, r["start_s"] * 1e3, r["gap_ms"],
                     r["render_over_ms"], r["coord_cpu"]])
    table(f"scaling: {frames} frames at {cost} ms/frame ({len(plan)} segments of <= {L}, overlap {O})",
          ["workers", "job s", "render s", "speed-up", "ideal speed-up", "ideal s", "% of ideal",
           "whole-seg ideal s", "% of whole-seg", "first assign ms", "worker idle gap ms",
           "seg overrun ms", "coord CPU s"], rows,
          note=f"""
job s: `job queued` to `job done` in the coordinator's log (what the target is judged on);
render s: first `segment assigned` to last `segment done`. speed-up: 1-worker job s / job s.
ideal s = (segment frames incl. overlaps / W) x cost = ({seg_frames} / W) x {cost} ms: the
job's {frames} frames plus {seg_frames - frames} overlap frames rendered twice, spread perfectly over W workers.
whole-seg ideal: segments are indivisible; the busiest worker's frames when the {len(plan)}
segments go, in order, to whichever worker is free, x {cost} ms (>= ideal s).
first assign: `job queued` to first `segment assigned`; worker idle gap: mean time from a
worker's `segment finished` to its next `segment started` (its own log; 0 when no worker
rendered two segments); seg overrun: mean segment render time (the worker's ms=) minus
frames x cost.""")
    r8 = next((r for r in res if r["W"] == 8), res[-1])
    b.target("scaling", f">= 90% of ideal at {r8['W']} workers ({frames} frames)",
             f"{r8['eff'] * 100:.1f}%", r8["eff"] >= 0.9)


# ---------------------------------------------------------------------------


def build_identity(bindir):
    """Which rfarm is measured: the source tree's commit and the time the
    coordinator binary was built."""
    root = os.path.join(HERE, "..")
    try:
        head = subprocess.run(["git", "-C", root, "log", "-1", "--format=%h %s"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        head, dirty = "?", ""
    try:
        built = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(
            os.path.getmtime(os.path.join(bindir, "rfarm-coordinator"))))
    except OSError:
        built = "?"
    return (f"measuring {bindir} (coordinator built {built}); source at {head[:72]}"
            f"{' + uncommitted changes' if dirty else ''}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("which", choices=["scheduler", "transport", "scaling", "metrics", "all"])
    ap.add_argument("--bin", required=True, help="build directory holding the rfarm programs")
    ap.add_argument("--full", action="store_true",
                    help="the issue's sizes: 10,000 jobs; 1,200-frame jobs (long)")
    ap.add_argument("--keep", action="store_true", help="keep the farms' temporary directories")
    ap.add_argument("--perf", action="store_true",
                    help="perf record the coordinator (scheduler: the multi-worker run; transport) "
                         "and print its hottest symbols")
    ap.add_argument("--tmpdir", default=None,
                    help="where the farms' directories (spool, outputs, Redis, logs) go "
                         "(default $TMPDIR or /tmp); e.g. /dev/shm to take the disk out")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds a run may take (default 1800)")
    g = ap.add_argument_group("scheduler")
    g.add_argument("--jobs", type=int, default=None, help="jobs (default 1,000; --full 10,000)")
    g.add_argument("--segments-per-job", type=int, default=10, help="segments per job (default 10)")
    g.add_argument("--workers", type=int, default=4,
                   help="workers of the scheduler and transport runs (default 4)")
    g.add_argument("--capacity", type=int, default=None,
                   help=f"worker --capacity in the scheduler and metrics runs (default {SCHED_CAPACITY})")
    g.add_argument("--repeat", type=int, default=2,
                   help="metrics: runs with metrics off and on, alternated (default 2 each)")
    g.add_argument("--submit-lines", type=int, default=10000,
                   help="lines of the batch whose submission is timed (default 10,000)")
    g = ap.add_argument_group("transport and scaling")
    g.add_argument("--frames", type=int, default=None,
                   help="frames of the job (transport 240, scaling 240; --full 1,200 both)")
    g.add_argument("--segment-frames", type=int, default=None,
                   help="segment length (transport 48; scaling 34, --full 48)")
    g.add_argument("--overlap-frames", type=int, default=None, help="scaling overlap (4; --full 8)")
    g.add_argument("--width", type=int, default=1920, help="transport frame width (1920)")
    g.add_argument("--height", type=int, default=1080, help="transport frame height (1080)")
    g.add_argument("--cost-ms", type=int, default=50, help="scaling cost per frame (50)")
    g.add_argument("--size", default="64x64", help="scaling frame size (64x64)")
    g.add_argument("--worker-counts", default="1,2,4,8", help="scaling worker counts (1,2,4,8)")
    o = ap.parse_args()
    o.bin = os.path.abspath(o.bin)
    if o.tmpdir:
        tempfile.tempdir = os.path.abspath(o.tmpdir)
    o.worker_counts = [int(x) for x in o.worker_counts.split(",") if x.strip()]
    b = Bench(o)
    say(build_identity(o.bin))
    t0 = time.monotonic()
    chosen = ["scheduler", "transport", "scaling", "metrics"] if o.which == "all" else [o.which]
    for name in chosen:
        t = time.monotonic()
        try:
            {"scheduler": bench_scheduler, "transport": bench_transport, "scaling": bench_scaling,
             "metrics": bench_metrics}[name](b)
        except (farm.FarmError, OSError, subprocess.SubprocessError) as e:
            b.suite.fail(f"{name} benchmark did not complete", f"{type(e).__name__}: {e}")
        except Exception as e:  # a bug here must not hide the other benchmarks' results
            traceback.print_exc()
            b.suite.fail(f"{name} benchmark raised", f"{type(e).__name__}: {e}")
        say(f"{name}: {time.monotonic() - t:.0f} s")
    for d in b.cleanup:
        shutil.rmtree(d, ignore_errors=True)
    if b.results:
        table("targets", ["benchmark", "target", "measured", "met"], b.results)
    say(f"total {time.monotonic() - t0:.0f} s; size: {'--full' if o.full else 'default (short)'}; "
        f"farm directories under {tempfile.gettempdir()}; {os.cpu_count()} CPUs")
    sys.exit(0 if b.suite.failed == 0 else 1)


if __name__ == "__main__":
    main()
