#!/usr/bin/env python3
"""test_e2e_exec — the exec engine runs an operator's real command.

A job on the exec engine runs a command per segment; the segment's
parameters reach it as RFARM_* environment variables and it writes
YUV4MPEG2 on stdout. Here the command is FFmpeg's testsrc2 source trimmed
to the segment's absolute frames, so neighbouring segments render their
overlap identically and the stitched output must be exactly what FFmpeg
renders for the whole job in one go (frame by frame, decoded md5).

A command that fails (`exit 3` after writing to stderr) must fail the job
with a reason a person can read: `rfarm wait` exits 1, and the job's error
holds the command's stderr and its exit status. The workers survive it and
render the next job.
"""

import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import farm  # noqa: E402

suite = farm.Suite("test_e2e_exec")

FFMPEG_CMD = ("ffmpeg -v error -f lavfi -i testsrc2=size=${RFARM_WIDTH}x${RFARM_HEIGHT}:rate=${RFARM_FPS} "
              "-vf trim=start_frame=${RFARM_FIRST_FRAME}:end_frame=$((RFARM_FIRST_FRAME+RFARM_FRAMES)),"
              "setpts=PTS-STARTPTS -pix_fmt yuv420p -f yuv4mpegpipe -")
FAIL_CMD = "echo boom-from-command >&2; exit 3"
FRAMES, W, H, FPS = 100, 128, 96, 25


def exec_spec(job_id, path, command, frames=FRAMES):
    return {
        "id": job_id,
        "engine": "exec",
        "params": {"command": command, "timeout_s": 60},
        "prompt": "testsrc2",
        "seed": 1,
        "width": W,
        "height": H,
        "fps": FPS,
        "frames": frames,
        "segment_frames": 48,
        "overlap_frames": 8,
        "blend": "linear",
        "output": {"path": path, "container": "y4m", "codec": "rawvideo"},
    }


def reference(tmp, frames):
    """What the command renders for the whole job at once, run by us."""
    path = os.path.join(tmp, "reference.y4m")
    env = dict(os.environ, RFARM_WIDTH=str(W), RFARM_HEIGHT=str(H), RFARM_FPS=str(FPS),
               RFARM_FIRST_FRAME="0", RFARM_FRAMES=str(frames))
    with open(path, "wb") as out:
        subprocess.run(["/bin/sh", "-c", FFMPEG_CMD], stdin=subprocess.DEVNULL, stdout=out,
                       env=env, check=True, timeout=60)
    return path


def test_exec_engine():
    have_ffmpeg = shutil.which("ffmpeg") is not None
    if not have_ffmpeg:
        print("   SKIP the ffmpeg part: ffmpeg is not installed (scripts/setup.sh installs it)")
    with suite.farm(workers=2, name="exec") as f:
        if have_ffmpeg:
            out = f.out("testsrc2.y4m")
            job = f.submit(exec_spec("exec-ffmpeg", out, FFMPEG_CMD))
            if f.wait_done(job, timeout=90):
                st = f.status(job)
                nseg = len(farm.expected_segments(FRAMES, 48, 8))
                suite.equal((st.get("state"), st.get("engine"), st.get("frames_stitched"), st.get("segments_done")),
                            ("done", "exec", FRAMES, nseg),
                            "exec job status (state, engine, frames_stitched, segments_done)")
                info = farm.probe(out, frame_md5=True)
                suite.equal(info.get("frames"), FRAMES, f"exec output decodes to {FRAMES} frames")
                suite.equal((info.get("width"), info.get("height")), (W, H), "exec output size")
                ref = farm.probe(reference(f.tmp, FRAMES), frame_md5=True)
                got, want = info.get("frame_md5") or [], ref.get("frame_md5") or []
                bad = [i for i in range(min(len(got), len(want))) if got[i] != want[i]]
                suite.check(len(got) == len(want) == FRAMES and not bad,
                            "exec output equals ffmpeg's own rendering of the whole job, frame by frame",
                            f"{len(got)} vs {len(want)} frames; differing frames {bad[:20]}")
                print(f"   segments per worker: {f.worker_segments(job)}")

        # A command that fails.
        bad_out = f.out("boom.y4m")
        job = f.submit(exec_spec("exec-boom", bad_out, FAIL_CMD, frames=20))
        rc, err = f.wait(job, timeout=60)
        print(f"   rfarm wait exec-boom: exit {rc}, stderr: {err.strip()!r}")
        suite.equal(rc, 1, "rfarm wait on a failing command exits 1")
        suite.check(err.strip() != "", "rfarm wait says why the job failed on stderr")
        st = f.status(job)
        error = st.get("error") or ""
        print(f"   job error: {error!r}")
        suite.equal(st.get("state"), "failed", "failing job's state is failed")
        suite.check("boom-from-command" in error, "job error holds the command's stderr", repr(error))
        suite.check("status 3" in error, "job error holds the command's exit status ('status 3')", repr(error))
        suite.check(not os.path.exists(bad_out), "a failed job leaves no output file")
        suite.equal(f.redis_cli("HGET", f"{f.prefix}job:{job}", "state"), "failed",
                    "redis record of the failing job says failed")
        logs = f.cli("logs", job)
        suite.check(logs.returncode == 0 and "engine seg 0 attempt 1" in logs.stdout
                    and "boom-from-command" in logs.stdout,
                    "rfarm logs shows the engine's stderr line by line", logs.stdout[-400:])
        suite.check(re.search(r"^\S+Z job failed: segment 0 failed after", logs.stdout, re.M),
                    "rfarm logs ends with the job's failure", logs.stdout[-400:])

        # The farm carries on.
        after = f.out("after.y4m")
        if have_ffmpeg:
            job = f.submit(exec_spec("exec-after", after, FFMPEG_CMD, frames=30))
        else:
            job = f.submit(farm.synthetic_spec("exec-after", after, frames=30, width=W, height=H))
        if f.wait_done(job, timeout=60):
            suite.equal(farm.probe(after).get("frames"), 30, "a job after the failure renders 30 frames")


suite.case(test_exec_engine)
sys.exit(suite.finish())
