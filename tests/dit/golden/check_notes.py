#!/usr/bin/env python3
"""Checks NOTES.md against the fixtures with a second, independent model.

This is NOTES.md written as numpy (float64) and nothing else: no torch, no
diffusers. If it reproduces every fixture, the notes describe what diffusers
computes closely enough to implement the C engine from them. It also shows
the computations in one short, readable place.

    /tmp/golden-venv/bin/python tests/dit/golden/check_notes.py [fixture dir]

Prints the relative L2 error of each fixture and exits non-zero when one is
above 1e-5.
"""

import json
import math
import pathlib
import sys

import numpy as np
from safetensors.numpy import load_file

LIMIT = 1e-5


def rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


# ---------------------------------------------------------- transformer --


def linear(x, w, b):
    return x @ w.T + b


def layer_norm(x, eps, w=None, b=None):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    y = (x - mu) / np.sqrt(var + eps)
    return y * w + b if w is not None else y


def rms_norm(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def silu(x):
    return x / (1 + np.exp(-x))


def softmax(x):
    x = x - x.max(-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(-1, keepdims=True)


def rope_tables(d, fp, hp, wp):
    dh = dw = 2 * (d // 6)
    dt = d - dh - dw
    parts = []
    for m, n, axis in ((dt, fp, 0), (dh, hp, 1), (dw, wp, 2)):
        theta = 1.0 / 10000 ** (np.arange(0, m, 2) / m)
        ang = np.outer(np.arange(n), theta)              # [n, m/2]
        ang = np.repeat(ang, 2, axis=1)                  # each value twice
        shape = [1, 1, 1, m]
        shape[axis] = n
        parts.append(np.broadcast_to(ang.reshape(shape), (fp, hp, wp, m)))
    ang = np.concatenate(parts, -1).reshape(fp * hp * wp, d)
    return np.cos(ang), np.sin(ang)


def rope(x, cos, sin):                                   # x [N, heads, d]
    c, s = cos[:, None, 0::2], sin[:, None, 0::2]
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = x1 * c - x2 * s
    out[..., 1::2] = x1 * s + x2 * c
    return out


def attention(q, k, v, heads):
    n, dmod = q.shape
    d = dmod // heads
    q, k, v = (t.reshape(t.shape[0], heads, d).transpose(1, 0, 2) for t in (q, k, v))
    o = softmax(q @ k.transpose(0, 2, 1) / math.sqrt(d)) @ v
    return o.transpose(1, 0, 2).reshape(n, dmod)


def transformer(W, cfg, hs, t, enc):
    heads, d, eps = cfg["num_attention_heads"], cfg["attention_head_dim"], cfg["eps"]
    pt, ph, pw = cfg["patch_size"]
    D = heads * d
    _, cin, F, H, Wd = hs.shape
    fp, hp, wp = F // pt, H // ph, Wd // pw
    # patch embedding: (c, kt, kh, kw) flattening, tokens f-major
    x = hs[0].reshape(cin, fp, pt, hp, ph, wp, pw).transpose(1, 3, 5, 0, 2, 4, 6)
    x = x.reshape(fp * hp * wp, -1) @ W["patch_embedding.weight"].reshape(D, -1).T + W["patch_embedding.bias"]
    # timestep: cos first, downscale_freq_shift 0
    half = cfg["freq_dim"] // 2
    freq = np.exp(-math.log(10000) * np.arange(half, dtype=np.float32) / half).astype(np.float32)
    a = (np.float32(t) * freq).astype(np.float64)
    sinus = np.concatenate([np.cos(a), np.sin(a)])
    ce = "condition_embedder."
    temb = linear(silu(linear(sinus, W[ce + "time_embedder.linear_1.weight"], W[ce + "time_embedder.linear_1.bias"])),
                  W[ce + "time_embedder.linear_2.weight"], W[ce + "time_embedder.linear_2.bias"])
    tproj = linear(silu(temb), W[ce + "time_proj.weight"], W[ce + "time_proj.bias"]).reshape(6, D)
    ctx = linear(gelu_tanh(linear(enc[0], W[ce + "text_embedder.linear_1.weight"], W[ce + "text_embedder.linear_1.bias"])),
                 W[ce + "text_embedder.linear_2.weight"], W[ce + "text_embedder.linear_2.bias"])
    cos, sin = rope_tables(d, fp, hp, wp)

    for i in range(cfg["num_layers"]):
        p = f"blocks.{i}."
        sh, sc, g, csh, csc, cg = W[p + "scale_shift_table"][0] + tproj

        def L(name, y):
            return linear(y, W[p + name + ".weight"], W[p + name + ".bias"])

        n = layer_norm(x, eps) * (1 + sc) + sh
        q = rms_norm(L("attn1.to_q", n), W[p + "attn1.norm_q.weight"], eps)
        k = rms_norm(L("attn1.to_k", n), W[p + "attn1.norm_k.weight"], eps)
        v = L("attn1.to_v", n)
        q = rope(q.reshape(-1, heads, d), cos, sin).reshape(-1, D)
        k = rope(k.reshape(-1, heads, d), cos, sin).reshape(-1, D)
        x = x + L("attn1.to_out.0", attention(q, k, v, heads)) * g

        n = layer_norm(x, eps, W[p + "norm2.weight"], W[p + "norm2.bias"])
        q = rms_norm(L("attn2.to_q", n), W[p + "attn2.norm_q.weight"], eps)
        k = rms_norm(L("attn2.to_k", ctx), W[p + "attn2.norm_k.weight"], eps)
        v = L("attn2.to_v", ctx)
        x = x + L("attn2.to_out.0", attention(q, k, v, heads))

        n = layer_norm(x, eps) * (1 + csc) + csh
        x = x + L("ffn.net.2", gelu_tanh(L("ffn.net.0.proj", n))) * cg

    shift, scale = W["scale_shift_table"][0] + temb
    y = linear(layer_norm(x, eps) * (1 + scale) + shift, W["proj_out.weight"], W["proj_out.bias"])
    cout = y.shape[1] // (pt * ph * pw)
    y = y.reshape(fp, hp, wp, pt, ph, pw, cout).transpose(6, 0, 3, 1, 4, 2, 5)
    return y.reshape(1, cout, F, H, Wd)


# ------------------------------------------------------------------ vae --


def conv3d_causal(x, w, b):
    """x [C, T, H, W]; 2 zero frames before (kernel 3), zero pad 1 in H, W."""
    co, ci, kt, kh, kw = w.shape
    pt_, ph_, pw_ = kt - 1, kh // 2, kw // 2
    xp = np.pad(x, ((0, 0), (pt_, 0), (ph_, ph_), (pw_, pw_)))
    T, H, Wd = x.shape[1:]
    out = np.zeros((co, T, H, Wd)) + b[:, None, None, None]
    for a in range(kt):
        for i in range(kh):
            for j in range(kw):
                out += np.einsum("oc,cthw->othw", w[:, :, a, i, j], xp[:, a:a + T, i:i + H, j:j + Wd])
    return out


def vrms(x, gamma):
    nrm = np.sqrt((x * x).sum(0, keepdims=True))
    return x / np.maximum(nrm, 1e-12) * math.sqrt(x.shape[0]) * gamma.reshape(-1, 1, 1, 1)


def resblock(W, p, x):
    h = conv3d_causal(x, W[p + "conv_shortcut.weight"], W[p + "conv_shortcut.bias"]) \
        if p + "conv_shortcut.weight" in W else x
    x = conv3d_causal(silu(vrms(x, W[p + "norm1.gamma"])), W[p + "conv1.weight"], W[p + "conv1.bias"])
    x = conv3d_causal(silu(vrms(x, W[p + "norm2.gamma"])), W[p + "conv2.weight"], W[p + "conv2.bias"])
    return x + h


def attnblock(W, p, x):
    C, T, H, Wd = x.shape
    n = vrms(x, W[p + "norm.gamma"])
    qkv = np.einsum("oc,cthw->othw", W[p + "to_qkv.weight"][:, :, 0, 0], n) + W[p + "to_qkv.bias"][:, None, None, None]
    out = np.empty_like(x)
    for t in range(T):
        q, k, v = (qkv[s * C:(s + 1) * C, t].reshape(C, -1).T for s in range(3))
        o = softmax(q @ k.T / math.sqrt(C)) @ v                       # [HW, C]
        out[:, t] = o.T.reshape(C, H, Wd)
    proj = np.einsum("oc,cthw->othw", W[p + "proj.weight"][:, :, 0, 0], out) + W[p + "proj.bias"][:, None, None, None]
    return x + proj


def upsample(W, p, x, temporal):
    C = x.shape[0]
    if temporal:
        # frame 0 passes; the rest go through time_conv as their own causal sequence
        rest = conv3d_causal(x[:, 1:], W[p + "time_conv.weight"], W[p + "time_conv.bias"])
        two = np.stack([rest[:C], rest[C:]], axis=2).reshape(C, -1, *x.shape[2:])
        x = np.concatenate([x[:, :1], two], axis=1)
    x = x.repeat(2, axis=2).repeat(2, axis=3)
    # a Conv2d per frame is a 3D conv with a time kernel of 1
    return conv3d_causal(x, W[p + "resample.1.weight"][:, :, None], W[p + "resample.1.bias"])


def vae_decode(W, cfg, lat):
    z = cfg["z_dim"]
    mean = np.asarray(cfg["latents_mean"], np.float32).reshape(z, 1, 1, 1)
    inv = (np.float32(1.0) / np.asarray(cfg["latents_std"], np.float32)).reshape(z, 1, 1, 1)
    x = (lat[0] / inv + mean).astype(np.float64)
    x = conv3d_causal(x, W["post_quant_conv.weight"], W["post_quant_conv.bias"])
    d = "decoder."
    x = conv3d_causal(x, W[d + "conv_in.weight"], W[d + "conv_in.bias"])
    x = resblock(W, d + "mid_block.resnets.0.", x)
    x = attnblock(W, d + "mid_block.attentions.0.", x)
    x = resblock(W, d + "mid_block.resnets.1.", x)
    tup = cfg["temperal_downsample"][::-1]
    nb = len(cfg["dim_mult"])
    for i in range(nb):
        for j in range(cfg["num_res_blocks"] + 1):
            x = resblock(W, f"{d}up_blocks.{i}.resnets.{j}.", x)
        if i != nb - 1:
            x = upsample(W, f"{d}up_blocks.{i}.upsamplers.0.", x, tup[i])
    x = silu(vrms(x, W[d + "norm_out.gamma"]))
    x = conv3d_causal(x, W[d + "conv_out.weight"], W[d + "conv_out.bias"])
    return np.clip(x, -1, 1)[None]


# ----------------------------------------------------------- schedulers --


def unipc_sigmas(cfg, n):
    s = np.linspace(1, 1 / cfg["num_train_timesteps"], n + 1)[:-1]
    sh = cfg["flow_shift"]
    s = sh * s / (1 + (sh - 1) * s)
    if abs(s[0] - 1) < 1e-6:
        s[0] -= 1e-6
    ts = (s * cfg["num_train_timesteps"]).astype(np.int64)
    return ts, np.concatenate([s, [0]]).astype(np.float32)


def unipc_run(cfg, n, x, outs):
    ts, sig = unipc_sigmas(cfg, n)
    sig = sig.astype(np.float64)

    def lam(s):
        return math.inf if s == 0 else math.log(1 - s) - math.log(s)

    def coeffs(s_to, s_from):
        h = lam(s_to) - lam(s_from)
        hh = -h
        phi1 = math.expm1(hh)
        return h, hh, phi1, phi1                          # bh2: B = expm1(hh)

    m, samples = [], []
    last, prev_order = None, None
    for i in range(n):
        mi = x - sig[i] * outs[i]
        if i > 0:                                         # corrector
            h, hh, phi1, B = coeffs(sig[i], sig[i - 1])
            a = 1 - sig[i]
            base = sig[i] / sig[i - 1] * last - a * phi1 * m[-1]
            if prev_order == 1:
                x = base - a * B * 0.5 * (mi - m[-1])
            else:
                r = (lam(sig[i - 2]) - lam(sig[i - 1])) / h
                D = (m[-2] - m[-1]) / r
                g1 = phi1 / hh - 1
                g2 = g1 / hh - 0.5
                rho = np.linalg.solve([[1, 1], [r, 1]], [g1 / B, 2 * g2 / B])
                x = base - a * B * (rho[0] * D + rho[1] * (mi - m[-1]))
        m.append(mi)
        order = min(cfg["solver_order"], n - i, i + 1)
        last, prev_order = x, order
        if sig[i + 1] == 0:
            x = mi.copy()
        else:
            h, hh, phi1, B = coeffs(sig[i + 1], sig[i])
            a = 1 - sig[i + 1]
            x = sig[i + 1] / sig[i] * x - a * phi1 * mi
            if order == 2:
                r = (lam(sig[i - 1]) - lam(sig[i])) / h
                x = x - a * B * 0.5 * (m[-2] - m[-1]) / r
        samples.append(x)
    return ts, sig, samples


def euler_run(cfg, n, x, outs):
    sh, N = cfg["shift"], cfg["num_train_timesteps"]
    smin = np.float32(sh * (1 / N) / (1 + (sh - 1) * (1 / N)))
    t = np.linspace(1.0 * N, float(smin) * N, n)
    s = t / N
    s = (sh * s / (1 + (sh - 1) * s)).astype(np.float32)
    sig = np.concatenate([s, [0]]).astype(np.float32)
    samples = []
    for i in range(n):
        x = (x + (sig[i + 1] - sig[i]) * outs[i]).astype(np.float32)
        samples.append(x)
    return sig[:n] * np.float32(N), sig, samples


# ----------------------------------------------------------------- main --


def main():
    fx = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent.parent / "fixtures")
    errs = {}
    for name in ("tf_a", "tf_b"):
        cfg = json.loads((fx / f"{name}.config.json").read_text())
        W = {k: v.astype(np.float64) for k, v in load_file(fx / f"{name}.safetensors").items()}
        io = load_file(fx / f"{name}.io.safetensors")
        y = transformer(W, cfg, io["hidden_states"].astype(np.float64), io["timestep"][0],
                        io["encoder_hidden_states"].astype(np.float64))
        errs[name] = rel(y, io["output"])
    for name in ("vae_a", "vae_b"):
        cfg = json.loads((fx / f"{name}.config.json").read_text())
        W = {k: v.astype(np.float64) for k, v in load_file(fx / f"{name}.safetensors").items()}
        io = load_file(fx / f"{name}.io.safetensors")
        errs[name] = rel(vae_decode(W, cfg, io["latents"]), io["video"])
    for f in sorted(fx.glob("sched_*.config.json")):
        name = f.name.split(".")[0]
        cfg = json.loads(f.read_text())
        io = load_file(fx / f"{name}.io.safetensors")
        n = cfg["num_inference_steps"]
        outs = [io[f"model_output_{i}"].astype(np.float64) for i in range(n)]
        run = unipc_run if cfg["_class_name"] == "UniPCMultistepScheduler" else euler_run
        ts, sig, samples = run(cfg, n, io["sample_init"].astype(np.float64), outs)
        e = max(rel(samples[i], io[f"sample_{i}"]) for i in range(n))
        e = max(e, rel(np.asarray(ts, np.float64), io["timesteps"]), rel(np.asarray(sig, np.float64), io["sigmas"]))
        errs[name] = e
    if (fx / "pipe_a.io.safetensors").exists():
        cfg = json.loads((fx / "pipe_a.config.json").read_text())
        tcfg = json.loads((fx / "tf_a.config.json").read_text())
        W = {k: v.astype(np.float64) for k, v in load_file(fx / "tf_a.safetensors").items()}
        io = load_file(fx / "pipe_a.io.safetensors")
        n, g = cfg["num_inference_steps"], cfg["guidance_scale"]
        scfg = cfg["scheduler_config"]
        ts, _ = unipc_sigmas(scfg, n)
        x = io["latents_init"].astype(np.float64)
        pe, npe = io["prompt_embeds"].astype(np.float64), io["negative_prompt_embeds"].astype(np.float64)
        # the scheduler needs every model output up front in unipc_run, so
        # run it one step longer each time (n is tiny)
        outs = []
        for i in range(n):
            xi = x if i == 0 else unipc_run(scfg, n, x, outs + [np.zeros_like(x)] * (n - i))[2][i - 1]
            c = transformer(W, tcfg, xi, float(ts[i]), pe)
            u = transformer(W, tcfg, xi, float(ts[i]), npe)
            outs.append(u + g * (c - u))
        final = unipc_run(scfg, n, x, outs)[2][-1]
        errs["pipe_a"] = rel(final, io["latents_final"])
        vcfg = json.loads((fx / "vae_a.config.json").read_text())
        VW = {k: v.astype(np.float64) for k, v in load_file(fx / "vae_a.safetensors").items()}
        errs["pipe_a.video"] = rel(vae_decode(VW, vcfg, io["latents_final"]), io["video"])
    bad = 0
    for k, v in errs.items():
        flag = "ok" if v < LIMIT else "FAIL"
        bad += v >= LIMIT
        print(f"{k:16s} rel_l2={v:.2e} {flag}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
