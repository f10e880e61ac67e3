#!/usr/bin/env python3
"""test_e2e_segmentation — segmentation is invisible in the output.

Design rule 2 and 4: the result depends only on the job spec, never on how
it was cut up or which worker ran what. With disagreement 0 the synthetic
engine's segments agree exactly on their overlaps, so a job cut into
segments of 48 overlapping by 8 and spread over three workers must give
the same bytes, in lossless formats (Matroska/FFV1 and YUV4MPEG2), as one
worker rendering the job as a single segment.

With disagreement 0.8 the segments no longer agree and the blend shows in
the pixels; the output must still be the same bytes whether one worker or
three rendered it (same spec, segmented), and it must differ from the
disagreement-0 output, which proves the knob does something and that the
comparison above could have failed.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import farm  # noqa: E402

suite = farm.Suite("test_e2e_segmentation")

FRAMES, W, H = 200, 64, 112
L, O = 48, 8


def spec(job_id, path, disagreement, segment_frames):
    return farm.synthetic_spec(job_id, path, frames=FRAMES, width=W, height=H, fps=24, seed=1234,
                               disagreement=disagreement, cost_ms=5, segment_frames=segment_frames,
                               overlap_frames=O, blend="cosine")


# (job id, output name, disagreement, segment_frames in the 1-worker run,
#  segment_frames in the 3-worker run)
JOBS = [
    ("d0-mkv", "d0.mkv", 0.0, FRAMES, L),
    ("d0-y4m", "d0.y4m", 0.0, FRAMES, L),
    ("d08-mkv", "d08.mkv", 0.8, L, L),
    ("d08-y4m", "d08.y4m", 0.8, L, L),
]


def run_farm(workers, which):
    """Render every job of JOBS on a farm of `workers` workers; returns
    {job id: (sha256 of the file, probe)}."""
    results = {}
    with suite.farm(workers=workers, capacity=1, name=f"seg{workers}") as f:
        ids = []
        for job_id, name, dis, seg1, seg3 in JOBS:
            seg = seg1 if which == 1 else seg3
            ids.append(f.submit(spec(job_id, f.out(name), dis, seg)))
        for job_id, name, dis, seg1, seg3 in JOBS:
            if not f.wait_done(job_id, timeout=90):
                continue
            seg = seg1 if which == 1 else seg3
            st = f.status(job_id)
            nseg = len(farm.expected_segments(FRAMES, seg, O))
            suite.equal((st.get("state"), st.get("segments"), st.get("segments_done"), st.get("frames_stitched")),
                        ("done", nseg, nseg, FRAMES),
                        f"{workers}-worker {job_id}: (state, segments, segments_done, frames_stitched)")
            path = f.out(name)
            info = farm.probe(path)
            suite.equal(info.get("frames"), FRAMES, f"{workers}-worker {name} decodes to {FRAMES} frames")
            suite.equal((info.get("width"), info.get("height")), (W, H), f"{workers}-worker {name} size")
            results[job_id] = (farm.sha256(path), info)
            print(f"   {workers}-worker {job_id}: segments={nseg} sha256={results[job_id][0][:16]} "
                  f"md5={info.get('md5')}")
        if workers > 1:
            by_log = f.worker_segments("d0-mkv")
            print(f"   3-worker d0-mkv segments per worker: {by_log}")
            busy = [w for w, s in by_log.items() if s]
            suite.check(len(busy) >= 2, "3-worker run: the segmented job was spread over >= 2 workers",
                        by_log)
    return results


def test_segmentation_is_invisible():
    one = run_farm(1, 1)
    three = run_farm(3, 3)
    for job_id, name, dis, seg1, seg3 in JOBS:
        if job_id not in one or job_id not in three:
            suite.fail(f"{job_id}: both runs produced an output")
            continue
        what = (f"disagreement {dis}: {name} of 3 workers (segments of {seg3}) vs 1 worker "
                f"(segments of {seg1})")
        suite.equal(three[job_id][0], one[job_id][0], f"{what}: identical file bytes")
        suite.equal(three[job_id][1].get("md5"), one[job_id][1].get("md5"), f"{what}: identical decoded md5")
    if all(j in one for j in ("d0-mkv", "d0-y4m", "d08-mkv", "d08-y4m")):
        suite.equal(one["d0-mkv"][1].get("md5"), one["d0-y4m"][1].get("md5"),
                    "disagreement 0: mkv and y4m decode to the same pixels")
        suite.equal(one["d08-mkv"][1].get("md5"), one["d08-y4m"][1].get("md5"),
                    "disagreement 0.8: mkv and y4m decode to the same pixels")
        suite.check(one["d08-mkv"][1].get("md5") != one["d0-mkv"][1].get("md5"),
                    "disagreement 0.8 output differs from disagreement 0 (the knob does something)",
                    f"both decode to md5 {one['d0-mkv'][1].get('md5')}")


suite.case(test_segmentation_is_invisible)
sys.exit(suite.finish())
