#!/usr/bin/env python3
"""Golden data for rfarm's native `dit` engine (issue #5), made with diffusers.

Run by hand, never in CI (see README.md next to this file). It writes into
tests/dit/fixtures/:

  tf_a, tf_b          WanTransformer3DModel, random weights, one forward pass
  vae_a, vae_b        AutoencoderKLWan, random weights, latents -> video the
                      way WanPipeline decodes them
  sched_*             UniPCMultistepScheduler (flow settings, as Wan2.1 ships
                      it) and FlowMatchEulerDiscreteScheduler, step by step
  pipe_a              WanPipeline itself: tf_a + UniPC + guidance, then the
                      vae_a decode
  wan21_t2v_1.3b/     configs and tensor names/shapes of the published
                      Wan2.1-T2V-1.3B diffusers checkpoint, rebuilt on the meta
                      device (no weights)

Why every parameter is overwritten: diffusers initialises some parameters to
zero or one (norm gammas, biases, ...). A C implementation that forgot such a
term would still match. Here every tensor gets random values of a sensible
scale so that each term changes the output.

Everything is float32 on the CPU with fixed seeds; running the script twice
gives the same bytes on the same machine and library versions.
"""

import argparse
import json
import os
import pathlib
import tempfile

import numpy as np
import torch
from safetensors.torch import save_file

import diffusers
from diffusers import (
    AutoencoderKLWan,
    FlowMatchEulerDiscreteScheduler,
    UniPCMultistepScheduler,
    WanTransformer3DModel,
)

HERE = pathlib.Path(__file__).resolve().parent
DEFAULT_OUT = HERE.parent / "fixtures"

# ---------------------------------------------------------------- configs --

# tf_a: the small case. head_dim 16 splits as t/h/w = 8/4/4, so a RoPE that
# mixes up the order of the three parts fails.
TF_A = dict(
    config=dict(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=16,
        in_channels=4, out_channels=4, text_dim=32, freq_dim=32, ffn_dim=64,
        num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
        eps=1e-6, rope_max_seq_len=1024,
    ),
    frames=3, height=8, width=8, text_len=7, timestep=637.5, seed=1001,
)
# tf_b: deeper, 4 heads (3 ranks must split them unevenly), head_dim 20
# (t/h/w = 8/6/6), out_channels != in_channels, non-square frame, odd token
# counts everywhere.
TF_B = dict(
    config=dict(
        patch_size=(1, 2, 2), num_attention_heads=4, attention_head_dim=20,
        in_channels=6, out_channels=5, text_dim=24, freq_dim=16, ffn_dim=96,
        num_layers=3, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
        eps=1e-6, rope_max_seq_len=1024,
    ),
    frames=5, height=6, width=10, text_len=11, timestep=123.25, seed=1002,
)

# vae_a: two temporal+spatial upsamplers (x4 in time and space).
VAE_A = dict(
    config=dict(
        base_dim=8, z_dim=4, dim_mult=[1, 2, 2], num_res_blocks=1,
        attn_scales=[], temperal_downsample=[True, True], dropout=0.0,
        scale_factor_temporal=4, scale_factor_spatial=4,
    ),
    frames=3, height=4, width=6, seed=2001,
)
# vae_b: Wan2.1's own layout ([1,2,4,4], [False,True,True], 2 res blocks)
# with a tiny base width: upsample3d, upsample3d, upsample2d, conv_shortcut.
VAE_B = dict(
    config=dict(
        base_dim=4, z_dim=4, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
        attn_scales=[], temperal_downsample=[False, True, True], dropout=0.0,
        scale_factor_temporal=4, scale_factor_spatial=8,
    ),
    frames=2, height=4, width=6, seed=2002,
)

# WanPipeline's scheduler for Wan2.1 T2V: diffusers' conversion script
# (scripts/convert_wan_to_diffusers.py) builds exactly this, everything else
# left at the class defaults.
def wan_unipc(flow_shift):
    return UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True,
        num_train_timesteps=1000, flow_shift=flow_shift,
    )


SCHEDS = {
    "sched_unipc_a": dict(make=lambda: wan_unipc(3.0), steps=8, seed=3001),
    "sched_unipc_b": dict(make=lambda: wan_unipc(5.0), steps=12, seed=3002),
    # two steps: both are first-order (warm-up, then lower_order_final), and
    # shift 1.0 leaves the sigmas unshifted
    "sched_unipc_c": dict(make=lambda: wan_unipc(1.0), steps=2, seed=3003),
    "sched_euler_a": dict(
        make=lambda: FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0),
        steps=6, seed=3004,
    ),
}
SCHED_SHAPE = (1, 4, 3, 4, 4)

PIPE_A = dict(steps=4, guidance=5.0, shift=3.0, frames=3, height=8, width=8,
              text_len=7, seed=4001)

# Published checkpoint: Wan-AI/Wan2.1-T2V-1.3B-Diffusers. The transformer
# arguments are those of get_transformer_config("Wan-T2V-1.3B") in diffusers'
# conversion script; the VAE is AutoencoderKLWan() with its defaults, which
# are Wan2.1's VAE (the script builds it that way).
WAN21_T2V_13B_TRANSFORMER = dict(
    added_kv_proj_dim=None, attention_head_dim=128, cross_attn_norm=True,
    eps=1e-06, ffn_dim=8960, freq_dim=256, in_channels=16,
    num_attention_heads=12, num_layers=30, out_channels=16,
    patch_size=[1, 2, 2], qk_norm="rms_norm_across_heads", text_dim=4096,
)

# ---------------------------------------------------------------- helpers --


def randomise(module, gen, weight_gain=1.0):
    """Overwrite every parameter with random values (see the module doc).

    Matrices and convolution kernels: N(0, 1/fan_in) times weight_gain, which
    keeps activations of order one through the layers. Norm scales (1-D
    `weight` / `gamma`): 1 + N(0, 0.2^2), away from one. Biases: N(0, 0.1^2).
    Anything else (the modulation tables): N(0, 0.3^2).
    """
    with torch.no_grad():
        for name, p in module.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "gamma" or (leaf == "weight" and p.ndim == 1):
                v = 1.0 + 0.2 * torch.randn(p.shape, generator=gen)
            elif leaf == "bias":
                v = 0.1 * torch.randn(p.shape, generator=gen)
            elif leaf == "weight":
                fan_in = int(np.prod(p.shape[1:]))
                v = torch.randn(p.shape, generator=gen) * (weight_gain / fan_in**0.5)
            else:
                v = 0.3 * torch.randn(p.shape, generator=gen)
            p.copy_(v)


def state_dict_f32(module):
    return {k: v.detach().to(torch.float32).contiguous().clone() for k, v in module.state_dict().items()}


def save_tensors(path, tensors):
    save_file({k: v.detach().to(torch.float32).contiguous() for k, v in tensors.items()},
              str(path), metadata={"format": "pt"})


def save_model_config(model, path):
    """The config exactly as diffusers' save_config writes it."""
    with tempfile.TemporaryDirectory() as d:
        model.save_config(d)
        text = (pathlib.Path(d) / "config.json").read_text()
    pathlib.Path(path).write_text(text)


def write_json(path, obj):
    pathlib.Path(path).write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def rel_l2(a, b):
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


# ------------------------------------------------------------ transformer --


def make_transformer(spec):
    gen = torch.Generator().manual_seed(spec["seed"])
    torch.manual_seed(spec["seed"])
    model = WanTransformer3DModel(**spec["config"]).eval()
    randomise(model, gen)
    return model, gen


def gen_transformer(out, name, spec):
    model, gen = make_transformer(spec)
    cfg = spec["config"]
    hs = torch.randn(1, cfg["in_channels"], spec["frames"], spec["height"], spec["width"], generator=gen)
    enc = torch.randn(1, spec["text_len"], cfg["text_dim"], generator=gen)
    ts = torch.tensor([spec["timestep"]], dtype=torch.float32)
    with torch.no_grad():
        y = model(hidden_states=hs, timestep=ts, encoder_hidden_states=enc, return_dict=False)[0]
    save_model_config(model, out / f"{name}.config.json")
    save_tensors(out / f"{name}.safetensors", state_dict_f32(model))
    save_tensors(out / f"{name}.io.safetensors",
                 {"hidden_states": hs, "timestep": ts, "encoder_hidden_states": enc, "output": y})
    print(f"{name}: output {tuple(y.shape)} rms={y.pow(2).mean().sqrt():.4f}")
    return model


# -------------------------------------------------------------------- vae --


def make_vae(spec):
    gen = torch.Generator().manual_seed(spec["seed"])
    torch.manual_seed(spec["seed"])
    z = spec["config"]["z_dim"]
    mean = (0.5 * torch.randn(z, generator=gen)).tolist()
    std = (0.5 + torch.rand(z, generator=gen)).tolist()
    vae = AutoencoderKLWan(**spec["config"], latents_mean=mean, latents_std=std).eval()
    # decode() clamps to [-1, 1]; at this weight scale a few percent of the
    # values reach the clamp (printed as at_clamp), so the clamp is tested
    # while most values still carry information.
    randomise(vae, gen)
    return vae, gen


def wan_decode(vae, latents):
    """Sampler latents -> video, the way WanPipeline does it after the loop."""
    latents = latents.to(vae.dtype)
    mean = torch.tensor(vae.config.latents_mean).view(1, vae.config.z_dim, 1, 1, 1).to(latents.device, latents.dtype)
    inv_std = 1.0 / torch.tensor(vae.config.latents_std).view(1, vae.config.z_dim, 1, 1, 1).to(
        latents.device, latents.dtype)
    latents = latents / inv_std + mean
    return vae.decode(latents, return_dict=False)[0]


def gen_vae(out, name, spec):
    vae, gen = make_vae(spec)
    z = spec["config"]["z_dim"]
    lat = torch.randn(1, z, spec["frames"], spec["height"], spec["width"], generator=gen)
    with torch.no_grad():
        video = wan_decode(vae, lat)
    clamped = float(((video == 1.0) | (video == -1.0)).float().mean())
    save_model_config(vae, out / f"{name}.config.json")
    save_tensors(out / f"{name}.safetensors", state_dict_f32(vae))
    save_tensors(out / f"{name}.io.safetensors", {"latents": lat, "video": video})
    print(f"{name}: video {tuple(video.shape)} rms={video.pow(2).mean().sqrt():.4f} at_clamp={clamped:.3f}")
    return vae


# -------------------------------------------------------------- schedulers --


def sched_config(sched, steps):
    cfg = json.loads(sched.to_json_string())
    cfg["num_inference_steps"] = steps
    return cfg


def gen_sched(out, name, spec):
    gen = torch.Generator().manual_seed(spec["seed"])
    sched = spec["make"]()
    n = spec["steps"]
    sched.set_timesteps(n)
    timesteps = sched.timesteps.clone()
    tensors = {
        # UniPC's timesteps are int64 in diffusers; stored as float32, which
        # holds these integers exactly.
        "timesteps": timesteps.to(torch.float32),
        "sigmas": sched.sigmas.clone().to(torch.float32),
    }
    x = torch.randn(*SCHED_SHAPE, generator=gen)
    tensors["sample_init"] = x.clone()
    for i, t in enumerate(timesteps):
        mo = torch.randn(*SCHED_SHAPE, generator=gen)
        x = sched.step(mo, t, x, return_dict=False)[0]
        tensors[f"model_output_{i}"] = mo
        tensors[f"sample_{i}"] = x.clone()
    write_json(out / f"{name}.config.json", sched_config(sched, n))
    save_tensors(out / f"{name}.io.safetensors", tensors)
    print(f"{name}: {n} steps timesteps={[round(float(v), 3) for v in timesteps]}")


# --------------------------------------------------------------- pipeline --


def gen_pipe(out, transformer, vae):
    """WanPipeline itself (prompt embeddings given, no text encoder), then
    the same loop written out by hand as a cross-check of how the pipeline
    calls the transformer and the scheduler."""
    from diffusers import WanPipeline

    spec = PIPE_A
    gen = torch.Generator().manual_seed(spec["seed"])
    cin = transformer.config.in_channels
    lat0 = torch.randn(1, cin, spec["frames"], spec["height"], spec["width"], generator=gen)
    pe = torch.randn(1, spec["text_len"], transformer.config.text_dim, generator=gen)
    npe = torch.randn(1, spec["text_len"], transformer.config.text_dim, generator=gen)

    sched = wan_unipc(spec["shift"])
    pipe = WanPipeline(tokenizer=None, text_encoder=None, transformer=transformer, vae=vae, scheduler=sched)
    pipe.set_progress_bar_config(disable=True)
    sf = vae.config.scale_factor_spatial
    with torch.no_grad():
        final = pipe(
            prompt_embeds=pe, negative_prompt_embeds=npe, latents=lat0.clone(),
            height=spec["height"] * sf, width=spec["width"] * sf,
            num_frames=(spec["frames"] - 1) * vae.config.scale_factor_temporal + 1,
            num_inference_steps=spec["steps"], guidance_scale=spec["guidance"],
            output_type="latent", return_dict=False,
        )[0]

    # The hand-written loop: also yields the per-step tensors for debugging.
    sched2 = wan_unipc(spec["shift"])
    sched2.set_timesteps(spec["steps"])
    sched2.set_begin_index(0)
    x = lat0.clone()
    steps = {}
    with torch.no_grad():
        for i, t in enumerate(sched2.timesteps):
            ts = t.expand(x.shape[0])
            cond = transformer(hidden_states=x, timestep=ts, encoder_hidden_states=pe, return_dict=False)[0]
            unc = transformer(hidden_states=x, timestep=ts, encoder_hidden_states=npe, return_dict=False)[0]
            noise = unc + spec["guidance"] * (cond - unc)
            x = sched2.step(noise, t, x, return_dict=False)[0]
            steps[f"noise_pred_{i}"] = noise
            steps[f"latents_{i}"] = x.clone()
        video = wan_decode(vae, final)
    diff = rel_l2(x, final)
    if diff > 1e-6:
        raise SystemExit(f"pipe_a: hand-written loop differs from WanPipeline (rel L2 {diff:.3g})")

    cfg = dict(
        transformer="tf_a", vae="vae_a", scheduler="UniPCMultistepScheduler",
        scheduler_config=sched_config(sched2, spec["steps"]),
        num_inference_steps=spec["steps"], guidance_scale=spec["guidance"], flow_shift=spec["shift"],
        height=spec["height"] * sf, width=spec["width"] * sf,
        num_frames=(spec["frames"] - 1) * vae.config.scale_factor_temporal + 1,
        timestep_dtype="int64 (passed to the transformer as the integer value)",
    )
    write_json(out / "pipe_a.config.json", cfg)
    save_tensors(out / "pipe_a.io.safetensors", dict(
        latents_init=lat0, prompt_embeds=pe, negative_prompt_embeds=npe, latents_final=final,
        timesteps=sched2.timesteps.to(torch.float32), video=video, **steps))
    print(f"pipe_a: latents_final {tuple(final.shape)} video {tuple(video.shape)} loop-vs-pipeline {diff:.2g}")


# ---------------------------------------------------- published checkpoint --


def dtype_tag(dtype):
    return {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16"}[dtype]


def write_tensor_list(model, path, dtype):
    lines = []
    for k, v in model.state_dict().items():
        lines.append(" ".join([k, dtype_tag(dtype)] + [str(d) for d in v.shape]))
    pathlib.Path(path).write_text("\n".join(lines) + "\n")
    return len(lines), sum(int(np.prod(v.shape)) for v in model.state_dict().values())


def gen_published(out):
    d = out / "wan21_t2v_1.3b"
    d.mkdir(parents=True, exist_ok=True)
    with torch.device("meta"):
        tf = WanTransformer3DModel(**WAN21_T2V_13B_TRANSFORMER)
        vae = AutoencoderKLWan()
    save_model_config(tf, d / "transformer.config.json")
    save_model_config(vae, d / "vae.config.json")
    # The conversion script saves the transformer with its default
    # --dtype fp32 and never converts the VAE: both are float32 (README).
    nt, pt = write_tensor_list(tf, d / "transformer.tensors.txt", torch.float32)
    nv, pv = write_tensor_list(vae, d / "vae.tensors.txt", torch.float32)
    print(f"wan21_t2v_1.3b: transformer {nt} tensors {pt} params ({pt * 4 / 1e9:.3f} GB in F32); "
          f"vae {nv} tensors {pv} params ({pv * 4 / 1e6:.1f} MB in F32)")


# ------------------------------------------------------------------- main --


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="fixture directory (default: %(default)s)")
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    torch.set_grad_enabled(False)
    torch.set_default_dtype(torch.float32)
    print(f"diffusers {diffusers.__version__} torch {torch.__version__} numpy {np.__version__}")

    tf_a = gen_transformer(out, "tf_a", TF_A)
    gen_transformer(out, "tf_b", TF_B)
    vae_a = gen_vae(out, "vae_a", VAE_A)
    gen_vae(out, "vae_b", VAE_B)
    for name, spec in SCHEDS.items():
        gen_sched(out, name, spec)
    gen_pipe(out, tf_a, vae_a)
    gen_published(out)

    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"fixtures: {total / 1e6:.2f} MB in {out}")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
