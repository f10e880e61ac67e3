#!/usr/bin/env python3
"""test_e2e_dit — the native dit engine renders jobs through the farm.

A model directory is laid out in the farm's temporary directory as diffusers
saves a Wan2.1 pipeline, from the golden fixtures: the tiny random-weight
transformer tf_a, the VAE vae_a and the UniPC scheduler WanPipeline ran for
pipe_a, plus a safetensors file of pipe_a's prompt and negative-prompt
embeddings. On a coordinator and two workers:

- a 21-frame job cut into four overlapping segments of 9 frames (the dit
  engine's grid: segments start on multiples of 4 and hold 4n+1 frames),
  with the model split over two tensor-parallel ranks in each worker, comes
  out as an MP4 of 21 frames at the size asked for; both workers render,
  and a worker that renders a second segment reuses the model it loaded;
  the workers have OpenBLAS loaded and the coordinator has not;
- the same job rendered twice (one rank, YUV4MPEG2) gives the same bytes,
  and with two ranks it gives the same frames within a level of rounding;
- a job whose model directory does not exist fails with the path and the
  reason in its error; the workers carry on;
- a spec whose frames cannot be cut on the grid, or whose model path is
  relative, is refused at submission naming the field.
"""

import json
import os
import shutil
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import farm  # noqa: E402

suite = farm.Suite("test_e2e_dit")

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "dit", "fixtures")
FRAMES, W, H, L, O = 21, 64, 48, 9, 5


def read_safetensors(path):
    """{name: (dtype, shape, raw bytes)} of a safetensors file."""
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    base = 8 + n
    return {k: (v["dtype"], v["shape"], data[base + v["data_offsets"][0]:base + v["data_offsets"][1]])
            for k, v in header.items() if k != "__metadata__"}


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def make_model(root):
    """DIR/{transformer,vae,scheduler} and an embeddings file; returns both paths."""
    model = os.path.join(root, "wan-tiny")
    for sub, name in (("transformer", "tf_a"), ("vae", "vae_a")):
        os.makedirs(os.path.join(model, sub))
        shutil.copyfile(os.path.join(FIXTURES, f"{name}.config.json"),
                        os.path.join(model, sub, "config.json"))
        shutil.copyfile(os.path.join(FIXTURES, f"{name}.safetensors"),
                        os.path.join(model, sub, "diffusion_pytorch_model.safetensors"))
    os.makedirs(os.path.join(model, "scheduler"))
    with open(os.path.join(FIXTURES, "pipe_a.config.json")) as f:
        sched = json.load(f)["scheduler_config"]
    sched.pop("num_inference_steps", None)  # the fixture's addition, not a config key
    with open(os.path.join(model, "scheduler", "scheduler_config.json"), "w") as f:
        json.dump(sched, f, indent=2)
    io = read_safetensors(os.path.join(FIXTURES, "pipe_a.io.safetensors"))
    embeds = os.path.join(root, "prompt.safetensors")
    write_safetensors(embeds, {k: io[k] for k in ("prompt_embeds", "negative_prompt_embeds")})
    return model, embeds


def dit_spec(job_id, output, model, embeds, *, ranks=1, frames=FRAMES, seed=5):
    ext = os.path.splitext(output)[1].lstrip(".")
    codec = {"mp4": "h264", "y4m": "rawvideo"}[ext]
    spec = {
        "engine": "dit",
        "params": {"model": model, "prompt_embeds": embeds, "steps": 4, "guidance": 5.0,
                   "ranks": ranks},
        "prompt": "pipe_a's prompt, as embeddings",
        "seed": seed,
        "width": W,
        "height": H,
        "fps": 16,
        "frames": frames,
        "segment_frames": L,
        "overlap_frames": O,
        "blend": "cosine",
        "output": {"path": output, "container": ext, "codec": codec},
    }
    if job_id is not None:
        spec["id"] = job_id
    return spec


def y4m_frames(path):
    """The raw frames of a YUV4MPEG2 file, as bytes each."""
    with open(path, "rb") as f:
        data = f.read()
    parts = data.split(b"FRAME\n")[1:]
    size = W * H * 3 // 2
    return [p[:size] for p in parts]


def engine_lines(f, name):
    return [ln for ln in f.workers[name].log_text().splitlines() if "engine output" in ln]


def mapped_libs(proc):
    """File names of the shared objects mapped into a running process."""
    try:
        with open(f"/proc/{proc.pid}/maps") as m:
            return {os.path.basename(ln.split()[-1]) for ln in m if "/" in ln}
    except OSError:
        return set()


def check_blas_loaded_where_needed(f):
    # OpenBLAS is opened only when the dit engine multiplies (kernels/blas.h):
    # loaded, it brings libquadmath, whose printf handlers slow every printf.
    heavy = ("libopenblas", "libgfortran", "libquadmath")
    coord = sorted(n for n in mapped_libs(f.coordinator) if n.startswith(heavy))
    suite.check(not coord, "the coordinator has not loaded OpenBLAS, libgfortran or libquadmath",
                coord)
    workers = {w: any(n.startswith("libopenblas") for n in mapped_libs(p))
               for w, p in f.workers.items()}
    suite.check(all(workers.values()), "workers that ran the dit engine have OpenBLAS loaded",
                workers)


def test_dit_jobs():
    with suite.farm(workers=2, capacity=1, name="dit") as f:
        model, embeds = make_model(f.tmp)
        segs = farm.expected_segments(FRAMES, L, O)
        print(f"   plan: {len(segs)} segments {segs}")
        suite.check(all(a % 4 == 0 and (b - a) % 4 == 1 for a, b in segs),
                    "every segment starts on a multiple of 4 and holds 4n+1 frames", segs)

        # Four overlapping segments, two ranks per worker, MP4.
        out = f.out("dit.mp4")
        job = f.submit(dit_spec("dit-mp4", out, model, embeds, ranks=2))
        if f.wait_done(job, timeout=120):
            info = farm.probe(out)
            print(f"   probe: {info}")
            suite.equal(info.get("frames"), FRAMES, f"mp4 decodes to {FRAMES} frames")
            suite.equal((info.get("width"), info.get("height")), (W, H), "mp4 size")
            suite.equal(info.get("codec"), "h264", "mp4 codec")
            st = f.status(job)
            suite.equal((st.get("state"), st.get("engine"), st.get("segments_done")),
                        ("done", "dit", len(segs)), "status (state, engine, segments_done)")
            by_worker = f.worker_segments(job)
            print(f"   segments per worker: {by_worker}")
            suite.check(all(by_worker.get(w) for w in f.workers), "both workers rendered segments",
                        by_worker)
            lines = {w: engine_lines(f, w) for w in f.workers}
            check_blas_loaded_where_needed(f)
            suite.check(all(any("model loaded" in ln and "ranks=2" in ln for ln in ls)
                            for ls in lines.values()),
                        "each worker loaded the model once for two ranks", lines)
            busy = [w for w, s in by_worker.items() if len(s) > 1]
            suite.check(all(sum("model reused" in ln for ln in lines[w]) == len(by_worker[w]) - 1
                            and sum("model loaded" in ln for ln in lines[w]) == 1 for w in busy),
                        "a worker's later segments reuse the model it loaded",
                        {w: lines[w] for w in busy})

        # The same spec twice gives the same bytes; two ranks round alike.
        outs = {}
        for label, ranks in (("r1a", 1), ("r1b", 1), ("r2", 2)):
            outs[label] = f.out(f"dit-{label}.y4m")
            f.submit(dit_spec(f"dit-{label}", outs[label], model, embeds, ranks=ranks))
        for label in outs:
            f.wait_done(f"dit-{label}", timeout=120)
        if all(os.path.exists(p) for p in outs.values()):
            a, b, c = (y4m_frames(outs[k]) for k in ("r1a", "r1b", "r2"))
            suite.equal((len(a), len(b), len(c)), (FRAMES,) * 3, "y4m outputs hold 21 frames each")
            suite.check(a == b, "one spec rendered twice gives the same frames, byte for byte")
            diff = max((max(abs(x - y) for x, y in zip(fa, fc)) for fa, fc in zip(a, c)), default=-1)
            print(f"   ranks 2 vs 1: max |diff| {diff}")
            suite.check(0 <= diff <= 2, "two ranks give one rank's frames within rounding", diff)

        # A model that is not there: the job fails saying where and why.
        missing = os.path.join(f.tmp, "no-such-model")
        bad = f.submit(dit_spec("dit-missing", f.out("missing.mp4"), missing, embeds))
        rc, err = f.wait(bad, timeout=60)
        st = f.status(bad)
        error = st.get("error") or ""
        print(f"   rfarm wait {bad}: exit {rc}; job error: {error!r}")
        suite.equal((rc, st.get("state")), (1, "failed"), "a job with a missing model fails")
        suite.check(missing in error and "No such file or directory" in error,
                    "its error names the model path and the reason", error)

        # The workers carry on: a one-segment job after the failure.
        after = f.out("after.y4m")
        job = f.submit(dit_spec("dit-after", after, model, embeds, frames=5))
        if f.wait_done(job, timeout=60):
            suite.equal(len(y4m_frames(after)), 5, "a job after the failure renders its 5 frames")

        # Refused at submission.
        r = f.submit_raw(dit_spec(None, f.out("x.mp4"), model, embeds, frames=20))
        print(f"   frames=20: exit {r.returncode}; stderr: {r.stderr.strip()!r}")
        suite.check(r.returncode == 1 and "frames: the dit engine needs 4n+1 frames" in r.stderr,
                    "frames off the grid are refused naming frames", r.stderr)
        spec = dit_spec(None, f.out("x.mp4"), "models/wan", embeds)
        r = f.submit_raw(spec)
        suite.check(r.returncode == 1 and "params.model: must be an absolute path" in r.stderr,
                    "a relative model path is refused naming params.model", r.stderr)


suite.case(test_dit_jobs)
sys.exit(suite.finish())
