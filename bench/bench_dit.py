#!/usr/bin/env python3
"""bench_dit — the Wan transformer's forward pass in C beside diffusers on
torch and beside OpenBLAS sgemm, in one run on this machine (issue #5).

Shape: Wan2.1-T2V-1.3B's transformer (dim 1536, 12 heads, ffn 8960, text
dim 4096, patch 1x2x2) with fewer blocks (--layers, default 2: every block
is the same work), latents of --frames x --height x --width (default
3 x 32 x 32: 768 tokens, a 9-frame 256x256 clip), 512 text tokens (what
WanPipeline pads prompts to), random weights. torch writes the weights and
inputs; rf-bench-dit (bench/bench_dit.c) reads the same files, so both run
the same model on the same input, and their outputs are compared.

    python3 bench/bench_dit.py --bin build [--threads 2] [--layers 2] [--iters 3]
                               [--venv DIR]

torch and diffusers come from a venv (--venv; made with
tests/dit/golden/requirements.txt when it lacks them: a large download).
Runs alternate C, torch, C, torch... (--rounds) so a drift of the machine
hits both. GFLOP/s counts the multiply-adds of linear layers, the patch
embedding and attention (2 flops each) for both: the same count.

The C model keeps each prompt's text side (text MLP, every block's
cross-attention k and v) between forwards; a sampler reuses it on every
step after the first, diffusers recomputes it. The plain C rows turn that
cache off, so every forward does the same work as torch's; the "text
cached" rows time forwards that take the text side from the cache, and
their GFLOP count leaves out the work skipped. The target compares the
uncached rows only.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ensure_venv(path):
    py = os.path.join(path, "bin", "python")
    ok = os.path.exists(py) and subprocess.run(
        [py, "-c", "import torch, diffusers, numpy"], capture_output=True).returncode == 0
    if not ok:
        print(f"bench_dit: making {path} (torch, diffusers from PyPI: a large download)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", path], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q", "-r",
                        os.path.join(ROOT, "tests", "dit", "golden", "requirements.txt")], check=True)
    return py


def fields(line):
    return dict(kv.split("=", 1) for kv in line.split() if "=" in kv)


def run(argv, what):
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"bench_dit: {what} failed:\n{r.stdout}{r.stderr}")
    return r.stdout.strip().splitlines()[-1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", required=True, help="build directory with rf-bench-dit")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for both (all CPUs)")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--height", type=int, default=32)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--text-len", type=int, default=512)
    ap.add_argument("--iters", type=int, default=3, help="forwards timed per run (median)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternated runs of each; the median, so one disturbed run does not move it")
    ap.add_argument("--venv", default=os.path.join(tempfile.gettempdir(), "rfarm-bench-venv"))
    o = ap.parse_args()
    tool = os.path.join(os.path.abspath(o.bin), "rf-bench-dit")
    if not os.access(tool, os.X_OK):
        sys.exit(f"bench_dit: {tool} missing (build the project first)")
    py = ensure_venv(o.venv)
    work = tempfile.mkdtemp(prefix="rfarm-bench-dit-")
    shape = ["--layers", o.layers, "--frames", o.frames, "--height", o.height, "--width",
             o.width, "--text-len", o.text_len]
    shape = [str(x) for x in shape]
    files = ["--config", os.path.join(work, "config.json"),
             "--weights", os.path.join(work, "weights.safetensors"),
             "--inputs", os.path.join(work, "inputs.safetensors")]
    env_note = f"{os.cpu_count()} CPUs, {o.threads} threads each"
    print(f"bench_dit: {o.layers} Wan2.1-1.3B blocks, latents {o.frames}x{o.height}x{o.width}, "
          f"{o.text_len} text tokens; {env_note}; work dir {work}", flush=True)
    c_ms, c_ranks_ms, t_ms, c_line, t_line = [], [], [], None, None
    cc_ms, cc_ranks_ms, cc_line = [], [], None
    sg_ms, sg_rate = [], []
    for rnd in range(o.rounds):
        # torch first in round 0: it writes the weights and inputs.
        t_line = run([py, os.path.join(ROOT, "bench", "dit_torch.py"), "--dir", work,
                      "--threads", str(o.threads), "--iters", str(o.iters)] + shape, "torch")
        t_ms.append(float(fields(t_line)["ms"]))
        c_line = run([tool] + files + ["--threads", str(o.threads), "--iters", str(o.iters),
                                       "--out", os.path.join(work, "c_out.f32")], "rf-bench-dit")
        c_ms.append(float(fields(c_line)["ms"]))
        cc_line = run([tool] + files + ["--threads", str(o.threads), "--iters", str(o.iters),
                                        "--text-cache", "1",
                                        "--out", os.path.join(work, "c_cached_out.f32")],
                      "rf-bench-dit text cached")
        cc_ms.append(float(fields(cc_line)["ms"]))
        # the peak reference in every round too, so a disturbed moment does
        # not set it: the feed-forward's first product at this token count
        tokens = int(fields(c_line)["tokens"])
        sg = fields(run([tool, "--sgemm", f"{tokens},8960,1536", "--threads", str(o.threads),
                         "--iters", str(o.iters)], "sgemm"))
        sg_ms.append(float(sg["ms"]))
        sg_rate.append(float(sg["gflop_s"]))
        if o.threads > 1:
            line = run([tool] + files + ["--threads", "1", "--ranks", str(o.threads),
                                         "--iters", str(o.iters)], "rf-bench-dit ranks")
            c_ranks_ms.append(float(fields(line)["ms"]))
            line = run([tool] + files + ["--threads", "1", "--ranks", str(o.threads),
                                         "--iters", str(o.iters), "--text-cache", "1"],
                       "rf-bench-dit ranks text cached")
            cc_ranks_ms.append(float(fields(line)["ms"]))
    cf = fields(c_line)
    gflops = float(cf["gflops"])
    gflops_cached = float(fields(cc_line)["gflops"])
    tokens = int(cf["tokens"])
    sg = {"ms": statistics.median(sg_ms), "gflop_s": statistics.median(sg_rate)}
    err = subprocess.run(
        [py, "-c", "import numpy as np, sys; a=np.fromfile(sys.argv[1], np.float32); "
                   "b=np.fromfile(sys.argv[2], np.float32); "
                   "print(float(np.linalg.norm(a-b)/np.linalg.norm(a)))",
         os.path.join(work, "torch_out.f32"), os.path.join(work, "c_out.f32")],
        capture_output=True, text=True, check=True).stdout.strip()
    tf = fields(t_line)
    rows = [
        ["OpenBLAS sgemm (feed-forward shape, peak ref)", o.threads, float(sg["ms"]),
         float(sg["gflop_s"]), 100.0, "-"],
        [f"diffusers {tf['diffusers']} on torch {tf['torch']} (baseline)", o.threads,
         statistics.median(t_ms), gflops / statistics.median(t_ms) * 1e3,
         gflops / statistics.median(t_ms) * 1e3 / float(sg["gflop_s"]) * 100, "1.00"],
        ["rfarm C (1 rank)", o.threads, statistics.median(c_ms),
         gflops / statistics.median(c_ms) * 1e3,
         gflops / statistics.median(c_ms) * 1e3 / float(sg["gflop_s"]) * 100,
         f"{statistics.median(t_ms) / statistics.median(c_ms):.2f}"],
    ]
    if c_ranks_ms:
        m = statistics.median(c_ranks_ms)
        rows.append([f"rfarm C ({o.threads} ranks x 1 thread, tensor-parallel)", o.threads, m,
                     gflops / m * 1e3, gflops / m * 1e3 / float(sg["gflop_s"]) * 100,
                     f"{statistics.median(t_ms) / m:.2f}"])
    cached = [("rfarm C (1 rank), text cached (every step after the first)", cc_ms)]
    if cc_ranks_ms:
        cached.append((f"rfarm C ({o.threads} ranks x 1 thread), text cached (every step after "
                       "the first)", cc_ranks_ms))
    for name, ms in cached:
        m = statistics.median(ms)
        rows.append([name, o.threads, m, gflops_cached / m * 1e3,
                     gflops_cached / m * 1e3 / float(sg["gflop_s"]) * 100,
                     f"{statistics.median(t_ms) / m:.2f}"])
    head = ["implementation", "threads", "ms/forward", "GFLOP/s", "% of sgemm", "x torch"]
    widths = [max(len(str(h)), *(len(f"{r[i]:.2f}" if isinstance(r[i], float) else str(r[i]))
                                 for r in rows)) for i, h in enumerate(head)]
    fmt = lambda v: f"{v:.2f}" if isinstance(v, float) else str(v)  # noqa: E731
    print("\n" + "  ".join(h.ljust(w) for h, w in zip(head, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(fmt(v).ljust(w) for v, w in zip(r, widths)))
    print(f"\n{gflops:.1f} GFLOP per forward ({tokens} video tokens); medians of {o.rounds} runs x "
          f"{o.iters} forwards; runs: C {', '.join(f'{x:.0f}' for x in c_ms)} ms, torch "
          f"{', '.join(f'{x:.0f}' for x in t_ms)} ms")
    print(f"text cached: {gflops_cached:.1f} GFLOP per forward (text MLP and cross-attention "
          f"k/v skipped); runs: 1 rank {', '.join(f'{x:.0f}' for x in cc_ms)} ms"
          + (f", {o.threads} ranks {', '.join(f'{x:.0f}' for x in cc_ranks_ms)} ms"
             if cc_ranks_ms else ""))
    print(f"C output vs torch output: relative L2 {float(err):.2e}")
    with open(os.path.join(work, "c_out.f32"), "rb") as a, \
            open(os.path.join(work, "c_cached_out.f32"), "rb") as b:
        same = a.read() == b.read()
    print(f"C output with the text cached equals the uncached output bit for bit: "
          f"{'yes' if same else 'NO'}")
    best = min([statistics.median(c_ms)] + ([statistics.median(c_ranks_ms)] if c_ranks_ms else []))
    met = best < statistics.median(t_ms)
    print(f"target: faster than torch at the same threads, text not cached: "
          f"{'met' if met else 'NOT met'} ({statistics.median(t_ms) / best:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
