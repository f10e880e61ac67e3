#!/usr/bin/env python3
"""test_e2e_spool — workers beside the coordinator write frames into its spool.

A worker that finds the coordinator's spool key (Welcome.spool) in the
spool's .spool-key file writes each frame straight into the segment's spool
file and sends only a small message; others send pixels over the socket.
The same job must come out byte for byte the same either way:

- a farm whose workers send every frame over the socket (the reference);
- a farm with one worker sharing the spool and one not: the coordinator
  says which worker shares it, the sharing worker's segments had every frame
  written into the spool (its `frames_in_spool=` per segment), the other's
  none, and the output equals the reference;
- a worker that reads a different key in .spool-key (another spool under
  the same path, as on another machine) does not share it, sends its frames
  over the socket, and the output still equals the reference.
"""

import hashlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import farm  # noqa: E402

suite = farm.Suite("test_e2e_spool")

FRAMES, W, H, L, O = 90, 96, 64, 24, 6


def spec(job, out):
    return farm.synthetic_spec(job, out, frames=FRAMES, width=W, height=H, seed=7,
                               disagreement=0.3, cost_ms=2, segment_frames=L, overlap_frames=O)


def md5(path):
    with open(path, "rb") as f:
        return hashlib.md5(f.read()).hexdigest()


def spool_frames(w, job):
    """{segment: frames_in_spool} from a worker's `segment finished` lines."""
    out = {}
    for line in w.log_text().splitlines():
        if "segment finished" in line:
            f = farm.log_fields(line)
            if f.get("job") == job:
                out[int(f["seg"])] = int(f.get("frames_in_spool", "-1"))
    return out


def render(f, job):
    out = f.out(f"{job}.y4m")
    j = f.submit(spec(job, out))
    if not f.wait_done(j, timeout=60):
        return None
    return md5(out)


def test_shared_and_socket_agree():
    segs = farm.expected_segments(FRAMES, L, O)
    with suite.farm(workers=2, capacity=2, name="socket") as f:
        ref = render(f, "ref")
        for name, w in f.workers.items():
            suite.check("not sharing the coordinator's spool" in w.log_text(),
                        f"socket farm: {name} with --share-spool off does not share the spool")
    if ref is None:
        return

    with suite.farm(workers=0, capacity=2, name="mixed") as f:
        shared = f.add_worker("w0", share_spool=True)
        f.add_worker("w1", share_spool=False)
        shared.wait_for_line(r"sharing the coordinator's spool dir=/", 10)
        f.coordinator.wait_for_line(r"worker shares the spool worker=w0", 10)
        suite.check("worker shares the spool worker=w1" not in f.coordinator.log_text(),
                    "the coordinator does not think w1 shares the spool")
        got = render(f, "mixed")
        suite.equal(got, ref, "mixed farm: output bytes equal the all-socket farm's")
        by = {name: spool_frames(w, "mixed") for name, w in f.workers.items()}
        print(f"   frames_in_spool per worker and segment: {by}")
        suite.equal(sorted(list(by["w0"]) + list(by["w1"])), list(range(len(segs))),
                    "every segment finished once, on one of the two workers")
        suite.check(len(by["w0"]) > 0 and len(by["w1"]) > 0, "both workers rendered", by)
        suite.check(all(n == segs[k][1] - segs[k][0] for k, n in by["w0"].items()),
                    "w0 (sharing) wrote every frame of its segments into the spool", by["w0"])
        suite.check(all(n == 0 for n in by["w1"].values()),
                    "w1 (not sharing) wrote none", by["w1"])
        suite.check(not any("sending frames instead" in w.log_text() for w in f.workers.values()),
                    "no worker fell back to the socket")

        # Another spool under the same path: the key differs.
        key_file = os.path.join(f.spool, ".spool-key")
        with open(key_file) as kf:
            key = kf.read()
        with open(key_file, "w") as kf:
            kf.write("spool-not-this-one\n")
        f.stop_worker("w0")
        f.stop_worker("w1")
        w2 = f.add_worker("w2", share_spool=True)
        w2.wait_for_line(r"not sharing the coordinator's spool", 10)
        got = render(f, "other-key")
        suite.equal(got, ref, "a worker reading another key: output equals the reference")
        frames = spool_frames(w2, "other-key")
        suite.check(frames and all(n == 0 for n in frames.values()),
                    "the worker that read another key sent every frame over the socket", frames)
        with open(key_file, "w") as kf:
            kf.write(key)


suite.case(test_shared_and_socket_agree)
sys.exit(suite.finish())
