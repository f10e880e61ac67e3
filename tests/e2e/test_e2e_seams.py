#!/usr/bin/env python3
"""test_e2e_seams — stitched overlaps hide where segments meet.

With disagreement 1.0 the synthetic engine's neighbouring segments render
their shared frames differently, as independently sampled segments of a
real model would. The stitcher blends the overlap so that the change from
one segment to the next is spread over the overlap instead of landing on
one frame.

Measure: the luma mean absolute difference between consecutive frames
(rf-vidprobe --mad; value i compares frames i-1 and i). For the overlap
between segments k and k+1, frames [s, e) with s = start of k+1 and e = end
of k, the differences at indices s .. e (from the first blended frame
through the first frame after the overlap) must all stay within 1.5 x the
median difference inside segments, away from any overlap. That must hold
for linear and raised-cosine blends. The same job with overlap 0 must
break the bound at its cut points: that proves the measure can see a seam,
so the first result means something.
"""

import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import farm  # noqa: E402

suite = farm.Suite("test_e2e_seams")

FRAMES, W, H, L = 240, 160, 288, 48
BOUND = 1.5
MARGIN = 2  # interior indices keep this distance from any seam window


def seam_windows(frames, seg_len, overlap):
    """[(lo, hi)] inclusive MAD index ranges across each joint."""
    segs = farm.expected_segments(frames, seg_len, overlap)
    return [(segs[k + 1][0], segs[k][1]) for k in range(len(segs) - 1)]


def analyse(mad, frames, seg_len, overlap):
    """Returns (median interior MAD, [(window, max MAD in window)])."""
    at = {i: mad[i - 1] for i in range(1, frames)}  # at[i]: frames i-1 -> i
    windows = seam_windows(frames, seg_len, overlap)
    near = set()
    for lo, hi in windows:
        near.update(range(lo - MARGIN, hi + MARGIN + 1))
    interior = [at[i] for i in at if i not in near]
    med = statistics.median(interior)
    return med, [((lo, hi), max(at[i] for i in range(lo, hi + 1) if i in at)) for lo, hi in windows]


def test_seams():
    runs = [("linear", 8), ("cosine", 8), ("cut", 0)]
    with suite.farm(workers=3, capacity=1, name="seams") as f:
        jobs = {}
        for label, overlap in runs:
            blend = "linear" if label == "cut" else label
            spec = farm.synthetic_spec(f"seams-{label}", f.out(f"seams-{label}.y4m"), frames=FRAMES,
                                       width=W, height=H, fps=24, seed=99, disagreement=1.0,
                                       cost_ms=0, segment_frames=L, overlap_frames=overlap,
                                       blend=blend)
            jobs[label] = f.submit(spec)
        results = {}
        for label, overlap in runs:
            job = jobs[label]
            if not f.wait_done(job, timeout=90):
                continue
            info = farm.probe(f.out(f"seams-{label}.y4m"), mad=True)
            mad = info.get("mad") or []
            if not suite.equal((info.get("frames"), len(mad)), (FRAMES, FRAMES - 1),
                               f"{label}: {FRAMES} frames and {FRAMES - 1} MAD values"):
                continue
            med, seams = analyse(mad, FRAMES, L, overlap)
            results[label] = (med, seams)
            print(f"   {label} (overlap {overlap}): interior median MAD {med:.3f}, bound "
                  f"{BOUND * med:.3f}")
            for (lo, hi), m in seams:
                window = " ".join(f"{mad[i - 1]:.2f}" for i in range(lo, hi + 1))
                print(f"     seam indices {lo}..{hi}: max {m:.3f} ({m / med if med else float('inf'):.2f}x)"
                      f"  [{window}]")

    for label in ("linear", "cosine"):
        if label not in results:
            continue
        med, seams = results[label]
        suite.check(med > 0, f"{label}: the video moves (interior median MAD > 0)", med)
        worst = max(m for _, m in seams)
        suite.check(worst <= BOUND * med,
                    f"{label} blend, overlap 8: every seam's max MAD <= {BOUND} x interior median",
                    f"worst {worst:.3f} > {BOUND * med:.3f}; seams "
                    + ", ".join(f"{lo}..{hi}={m:.2f}" for (lo, hi), m in seams))
    if "cut" in results:
        med, seams = results["cut"]
        worst = max(m for _, m in seams)
        suite.check(worst > BOUND * med,
                    f"overlap 0: the cut points break the {BOUND} x median bound (the measure sees seams)",
                    f"worst cut {worst:.3f} <= {BOUND * med:.3f}: disagreement 1.0 made no visible seam")


suite.case(test_seams)
sys.exit(suite.finish())
