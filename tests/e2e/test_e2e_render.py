#!/usr/bin/env python3
"""test_e2e_render — a job goes through the whole farm and comes out whole.

Real Redis, a real coordinator and three workers. A 300-frame synthetic job
(160x288, 24 fps, segments of 48 overlapping by 8, MP4/H.264) must come out
with exactly 300 frames at the size and rate asked for, as read back by
libavformat/libavcodec (rf-vidprobe); the status API and the Redis record
must both say done with every frame stitched and every segment rendered;
all three workers must have rendered part of it. Then two more jobs of one
spec, in Matroska/FFV1 and YUV4MPEG2 at 30000/1001 fps, must decode to the
right frame count and, both being lossless, to the same pixels.
"""

import fractions
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import farm  # noqa: E402

suite = farm.Suite("test_e2e_render")


def check_job_record(f, job, frames, nseg, output):
    """Status API and Redis agree that the job is done and complete."""
    st = f.status(job)
    suite.equal(st.get("state"), "done", f"{job}: status state")
    suite.equal(st.get("engine"), "synthetic", f"{job}: status engine")
    suite.equal(st.get("frames"), frames, f"{job}: status frames")
    suite.equal(st.get("frames_stitched"), frames, f"{job}: status frames_stitched")
    suite.equal(st.get("segments"), nseg, f"{job}: status segments")
    suite.equal(st.get("segments_done"), st.get("segments"), f"{job}: status segments_done == segments")
    suite.equal(st.get("output"), output, f"{job}: status output is the absolute output path")
    suite.check(not st.get("error"), f"{job}: status has no error", repr(st.get("error")))
    created, finished = st.get("created_ms") or 0, st.get("finished_ms") or 0
    suite.check(created > 0 and finished >= created, f"{job}: created_ms > 0 and finished_ms >= created_ms",
                f"created_ms={created} finished_ms={finished}")

    key = f"{f.prefix}job:{job}"
    suite.equal(f.redis_cli("TYPE", key), "hash", f"redis {key} is a hash")
    suite.equal(f.redis_cli("HGET", key, "state"), "done", f"redis {key} state")
    suite.equal(f.redis_cli("HGET", key, "frames_stitched"), str(frames), f"redis {key} frames_stitched")
    suite.equal(f.redis_cli("HGET", key, "segments"), str(nseg), f"redis {key} segments")
    suite.equal(f.redis_cli("HGET", key, "segments_done"), str(nseg), f"redis {key} segments_done")
    seg_states = {k: f.redis_cli("HGET", f"{key}:seg:{k}", "state") for k in range(nseg)}
    suite.check(all(s == "done" for s in seg_states.values()),
                f"redis {key}:seg:0..{nseg - 1} all have state done", seg_states)


def test_render_mp4_three_workers():
    frames, width, height, fps, L, O = 300, 160, 288, 24, 48, 8
    segs = farm.expected_segments(frames, L, O)
    nseg = len(segs)
    print(f"   plan: {nseg} segments {segs}")
    with suite.farm(workers=3, capacity=1, name="render") as f:
        out = f.out("render.mp4")
        spec = farm.synthetic_spec("render-300", out, frames=frames, width=width, height=height,
                                   fps=fps, seed=42, disagreement=0.3, cost_ms=10,
                                   segment_frames=L, overlap_frames=O, blend="cosine",
                                   container="mp4", codec="h264", quality=23)
        job = f.submit(spec)
        suite.equal(job, "render-300", "submit prints the spec's id")
        suite.check(not os.path.exists(out), "no output file before the job is done")
        if not f.wait_done(job, timeout=90):
            return
        suite.check(os.path.isfile(out), "output file exists once done", out)
        info = farm.probe(out)
        print(f"   probe: {info}")
        suite.equal(info.get("frames"), frames, "mp4 decodes to exactly 300 frames")
        suite.equal((info.get("width"), info.get("height")), (width, height), "mp4 size")
        suite.equal(farm.fps_of(info), fractions.Fraction(fps), "mp4 frame rate")
        suite.equal(info.get("codec"), "h264", "mp4 codec")
        suite.check("mp4" in (info.get("format") or ""), "container is mp4", info.get("format"))
        suite.equal(info.get("pix_fmt"), "yuv420p", "mp4 pixel format")

        check_job_record(f, job, frames, nseg, out)

        # Who rendered what: the workers' own logs and the Redis segment records.
        by_log = f.worker_segments(job)
        print(f"   segments per worker (logs): {by_log}")
        for name, segs_done in sorted(by_log.items()):
            suite.check(len(segs_done) >= 1, f"worker {name} rendered at least one segment (log)",
                        f"no 'segment done' for {job} in its log or the coordinator's")
        union = sorted(set(k for s in by_log.values() for k in s))
        suite.equal(union, list(range(nseg)), "every segment appears in the 'segment done' logs")
        by_redis = f.redis_segment_workers(job, nseg)
        print(f"   worker per segment (redis): {by_redis}")
        suite.check(all(w in f.workers for w in by_redis.values()),
                    "every redis segment record names one of the workers", by_redis)
        suite.equal(sorted(set(by_redis.values())), sorted(f.workers),
                    "redis segment records name all three workers")

        # Second and third jobs: one spec, two lossless outputs, at once.
        mkv, y4m = f.out("second.mkv"), f.out("second.y4m")
        base = dict(frames=130, width=96, height=64, fps="30000/1001", seed=7, disagreement=0.5,
                    cost_ms=2, blend="linear")
        jobs = [f.submit(farm.synthetic_spec("second-mkv", mkv, container="mkv", codec="ffv1", **base)),
                f.submit(farm.synthetic_spec("second-y4m", y4m, container="y4m", codec="rawvideo", **base))]
        for j in jobs:
            f.wait_done(j, timeout=60)
        nseg2 = len(farm.expected_segments(130, 48, 8))
        for j, path, fmt, codec in ((jobs[0], mkv, "matroska", "ffv1"),
                                    (jobs[1], y4m, "yuv4mpegpipe", "rawvideo")):
            info = farm.probe(path)
            print(f"   probe: {info}")
            suite.equal(info.get("frames"), 130, f"{os.path.basename(path)} decodes to 130 frames")
            suite.equal((info.get("width"), info.get("height")), (96, 64), f"{os.path.basename(path)} size")
            suite.equal(info.get("codec"), codec, f"{os.path.basename(path)} codec")
            suite.check(fmt in (info.get("format") or ""), f"{os.path.basename(path)} container {fmt}",
                        info.get("format"))
            rate = farm.fps_of(info)
            want = fractions.Fraction(30000, 1001)
            if codec == "rawvideo":
                suite.equal(rate, want, "y4m frame rate is exactly 30000/1001")
            else:  # Matroska stores a duration in ns: the rate comes back rounded
                suite.check(rate is not None and abs(float(rate) - float(want)) < 1e-3,
                            "mkv frame rate ~ 30000/1001", rate)
            check_job_record(f, j, 130, nseg2, path)
        suite.equal(farm.probe(mkv).get("md5"), farm.probe(y4m).get("md5"),
                    "mkv/ffv1 and y4m of the same spec decode to the same pixels")

        st = f.status_all()
        ids = sorted(j.get("id") for j in st.get("jobs", []))
        suite.equal(ids, sorted(["render-300", "second-mkv", "second-y4m"]), "status --json lists all jobs")
        left = sorted(os.listdir(f.out_dir))
        suite.equal(left, sorted(["render.mp4", "second.mkv", "second.y4m"]),
                    "output directory holds the outputs and no temporary files")


suite.case(test_render_mp4_three_workers)
sys.exit(suite.finish())
