"""The torch side of bench_dit.py (run with a Python that has torch and
diffusers): makes a random-weight WanTransformer3DModel of the given shape,
writes its config, weights and inputs where rf-bench-dit reads them, and
times diffusers' forward pass on the CPU with the given thread count.

    python dit_torch.py --dir D --layers N --frames F --height H --width W
                        --text-len L --threads T --iters K

Prints one line of key=value pairs; writes D/torch_out.f32.
"""
import argparse
import os
import statistics
import time

import diffusers
import torch
from diffusers import WanTransformer3DModel
from safetensors.torch import save_file

ap = argparse.ArgumentParser()
for name, default in (("layers", 2), ("frames", 3), ("height", 32), ("width", 32),
                      ("text-len", 512), ("threads", 2), ("iters", 3), ("seed", 1)):
    ap.add_argument("--" + name, type=int, default=default)
ap.add_argument("--dir", required=True)
o = ap.parse_args()

torch.manual_seed(o.seed)
torch.set_num_threads(o.threads)
# Wan2.1-T2V-1.3B's transformer, fewer blocks: every block is the same work.
cfg = dict(patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128,
           in_channels=16, out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=8960,
           num_layers=o.layers, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
           eps=1e-6, image_dim=None, added_kv_proj_dim=None, rope_max_seq_len=1024)
model = WanTransformer3DModel(**cfg).eval()
with torch.no_grad():
    for p in model.parameters():  # every path matters: no zero-initialised tables
        p.copy_(torch.randn_like(p) * 0.02)
os.makedirs(o.dir, exist_ok=True)
model.save_config(o.dir)  # config.json, read by rf-bench-dit
save_file({k: v.contiguous() for k, v in model.state_dict().items()},
          os.path.join(o.dir, "weights.safetensors"))
x = torch.randn(1, 16, o.frames, o.height, o.width)
t = torch.tensor([500.0])
ctx = torch.randn(1, o.text_len, 4096)
save_file({"hidden_states": x, "timestep": t, "encoder_hidden_states": ctx},
          os.path.join(o.dir, "inputs.safetensors"))
# The files just written (the weights: about 4 bytes a parameter) would
# otherwise be written back to disk while the forwards below are timed,
# which made this first run of each benchmark the slowest by up to 30%.
os.sync()

times = []
with torch.inference_mode():
    for i in range(o.iters + 1):
        t0 = time.perf_counter()
        out = model(hidden_states=x, timestep=t, encoder_hidden_states=ctx, return_dict=False)[0]
        if i:
            times.append(time.perf_counter() - t0)
out.contiguous().numpy().astype("float32").tofile(os.path.join(o.dir, "torch_out.f32"))
print(f"torch={torch.__version__} diffusers={diffusers.__version__} threads={torch.get_num_threads()} "
      f"ms={statistics.median(times) * 1e3:.2f}")
