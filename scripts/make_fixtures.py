#!/usr/bin/env python3
"""Generates the PyTorch reference fixtures that the Swift tests compare against.

Run:  python3 scripts/make_fixtures.py   (needs torch==2.13.0+cpu and safetensors)
Writes Tests/AutogradTests/Fixtures/ops.safetensors, Tests/NNTests/Fixtures/optim.safetensors and
Tests/NNTests/Fixtures/modules.safetensors.

Each op case `c` stores its inputs `c.in0, c.in1, ...`, a projection `c.proj` (the checked scalar
is sum(out * proj)), the output `c.out` and the gradient of every input `c.grad0, ...`.
Parameters of the case (stride, axes, ...) are in the JSON metadata entry `cases`.
Everything is computed in float64 and stored as float32, so the fixtures carry no float32
rounding of their own; the Swift side computes in float32.
"""
import json
import os
import struct
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file


def save(tensors, path, metadata):
    """save_file, then rewrite the header with the metadata keys sorted: safetensors keeps the
    metadata in a Rust HashMap, so its key order (and the file's bytes) changes from run to run."""
    save_file(tensors, path, metadata=metadata)
    with open(path, "r+b") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
        text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
        assert len(text) <= n, "canonical header is longer than the original"
        f.seek(8)
        f.write(text + b" " * (n - len(text)))  # same length: the padding keeps the data aligned


torch.manual_seed(0)
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
tensors = {}
cases = {}


def rnd(*shape, scale=1.0, shift=0.0):
    return (torch.randn(*shape, dtype=torch.float64) * scale + shift)


def case(name, fn, inputs, params=None, grad_inputs=None):
    """Record fn(*inputs) with gradients for the inputs listed in grad_inputs (default: all)."""
    grad_inputs = list(range(len(inputs))) if grad_inputs is None else grad_inputs
    xs = []
    for i, x in enumerate(inputs):
        x = x.clone().to(torch.float32).to(torch.float64)  # exactly representable in float32
        if i in grad_inputs:
            x.requires_grad_(True)
        xs.append(x)
    out = fn(*xs)
    proj = torch.randn(out.shape, dtype=torch.float64).to(torch.float32).to(torch.float64)
    (out * proj).sum().backward()
    for i, x in enumerate(xs):
        tensors[f"{name}.in{i}"] = x.detach().float().contiguous()
        if i in grad_inputs:
            tensors[f"{name}.grad{i}"] = x.grad.float().contiguous()
    tensors[f"{name}.proj"] = proj.float().contiguous()
    tensors[f"{name}.out"] = out.detach().float().contiguous()
    cases[name] = {"inputs": len(xs), "grads": grad_inputs, **(params or {})}


# Elementwise binary with broadcasting
case("add", lambda a, b: a + b, [rnd(4, 3, 5), rnd(3, 1)])
case("sub", lambda a, b: a - b, [rnd(4, 3, 5), rnd(5)])
case("mul", lambda a, b: a * b, [rnd(2, 3, 4, 5), rnd(1, 3, 1, 1)])
case("div", lambda a, b: a / b, [rnd(6, 7), rnd(6, 1, scale=0.2, shift=2.0)])
case("neg", lambda a: -a, [rnd(3, 4)])
case("add_scalar", lambda a: a + 1.5, [rnd(3, 4)])
case("mul_scalar", lambda a: a * -2.5, [rnd(3, 4)])
case("rdiv_scalar", lambda a: 3.0 / a, [rnd(3, 4, scale=0.2, shift=2.0)])
# Unary (sizes above 16 and odd so the SIMD tails are covered)
case("exp", torch.exp, [rnd(5, 37, scale=3)])
case("log", torch.log, [rnd(5, 37, scale=0.5).abs() + 0.1])
case("sqrt", torch.sqrt, [rnd(5, 37).abs() + 0.1])
case("pow", lambda a: a ** 2.5, [rnd(5, 37).abs() + 0.1], {"p": 2.5})
case("square", lambda a: a * a, [rnd(5, 37)])
case("tanh", torch.tanh, [rnd(5, 37, scale=3)])
case("sigmoid", torch.sigmoid, [rnd(5, 37, scale=4)])
case("silu", F.silu, [rnd(5, 37, scale=4)])
case("gelu", F.gelu, [rnd(5, 37, scale=3)])
case("gelu_tanh", lambda a: F.gelu(a, approximate="tanh"), [rnd(5, 37, scale=3)])
case("relu", F.relu, [rnd(5, 37)])
# Reductions and shapes
case("sum_all", lambda a: a.sum(), [rnd(3, 4, 5)])
case("sum_axes", lambda a: a.sum(dim=(0, 2)), [rnd(3, 4, 5)], {"axes": [0, 2], "keep": False})
case("mean_keep", lambda a: a.mean(dim=-1, keepdim=True), [rnd(3, 4, 5)], {"axes": [-1], "keep": True})
case("reshape", lambda a: a.reshape(12, 5), [rnd(3, 4, 5)], {"shape": [12, 5]})
case("permute", lambda a: a.permute(0, 2, 3, 1), [rnd(2, 3, 4, 5)], {"axes": [0, 2, 3, 1]})
case("transpose", lambda a: a.transpose(0, 2), [rnd(2, 3, 4)], {"a": 0, "b": 2})
case("slice", lambda a: a[:, 1:4], [rnd(3, 6, 2)], {"axis": 1, "lo": 1, "hi": 4})
case("concat", lambda a, b: torch.cat([a, b], dim=1), [rnd(2, 3, 4), rnd(2, 5, 4)], {"axis": 1})
case("pad", lambda a: F.pad(a, (1, 2, 0, 1)), [rnd(2, 3, 4)], {"pads": [[0, 0], [0, 1], [1, 2]]})
# Matrix products
case("matmul", lambda a, b: a @ b, [rnd(9, 17), rnd(17, 6)])
case("matmul3d", lambda a, b: a @ b, [rnd(2, 5, 17), rnd(17, 6)])
case("bmm", torch.bmm, [rnd(3, 5, 7), rnd(3, 7, 4)])
case("bmm_t", lambda a, b: torch.bmm(a, b.transpose(1, 2)), [rnd(3, 5, 7), rnd(3, 4, 7)])
# The fused linear op (added later): drawn from a saved RNG state that is then restored, so every
# case after it keeps the values it had before. The first is large enough for the split sgemm.
_rng = torch.get_rng_state()
case("linear", F.linear, [rnd(2, 20, 96), rnd(144, 96, scale=0.1), rnd(144)])
case("linear_nobias", F.linear, [rnd(3, 5, 16), rnd(8, 16, scale=0.3)])
torch.set_rng_state(_rng)
# Convolution, pooling, upsampling
case("conv3x3", lambda x, w, b: F.conv2d(x, w, b, stride=1, padding=1),
     [rnd(2, 3, 9, 8), rnd(5, 3, 3, 3, scale=0.3), rnd(5)], {"stride": 1, "padding": 1})
case("conv3x3_s2", lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1),
     [rnd(2, 4, 9, 10), rnd(6, 4, 3, 3, scale=0.3), rnd(6)], {"stride": 2, "padding": 1})
case("conv1x1", lambda x, w: F.conv2d(x, w), [rnd(2, 6, 5, 5), rnd(4, 6, 1, 1, scale=0.3)],
     {"stride": 1, "padding": 0})
# Two conv2d paths (added later; a saved RNG state keeps every later case's values). One output
# channel at stride 1, the direct path: padded rows of 30 floats, so 32-position blocks span rows.
_rng = torch.get_rng_state()
case("conv3x3_out1", lambda x, w, b: F.conv2d(x, w, b, stride=1, padding=1),
     [rnd(2, 6, 9, 28), rnd(1, 6, 3, 3, scale=0.3), rnd(1)], {"stride": 1, "padding": 1})
# 8+ channels in and out, 3x3, stride 1: the Winograd path (odd sizes: the last tile row and
# column are cut).
case("conv3x3_winograd", lambda x, w, b: F.conv2d(x, w, b, stride=1, padding=1),
     [rnd(2, 8, 9, 11), rnd(10, 8, 3, 3, scale=0.2), rnd(10)], {"stride": 1, "padding": 1})
torch.set_rng_state(_rng)
case("avgpool", lambda x: F.avg_pool2d(x, 2), [rnd(2, 3, 8, 6)], {"kernel": 2})
case("upsample", lambda x: F.interpolate(x, scale_factor=2, mode="nearest"), [rnd(2, 3, 4, 5)], {"scale": 2})
# Normalisation
case("groupnorm", lambda x, w, b: F.group_norm(x, 4, w, b, eps=1e-5),
     [rnd(3, 8, 5, 6, scale=2, shift=1), rnd(8, shift=1), rnd(8)], {"groups": 4})
# The fused GroupNorm + SiLU (added later; a saved RNG state keeps every later case's values).
_rng = torch.get_rng_state()
case("groupnorm_silu", lambda x, w, b: F.silu(F.group_norm(x, 4, w, b, eps=1e-5)),
     [rnd(3, 8, 7, 7, scale=2, shift=1), rnd(8, shift=1), rnd(8)], {"groups": 4})
torch.set_rng_state(_rng)
# The fused FiLM modulation x * (1 + scale) + shift, scale and shift the halves of [N, 2C]
# (added later; a saved RNG state keeps every later case's values).
_rng = torch.get_rng_state()
case("film", lambda x, ss: x * (1 + ss[:, :5, None, None]) + ss[:, 5:, None, None],
     [rnd(3, 5, 6, 7), rnd(3, 10, scale=0.5)])
torch.set_rng_state(_rng)
case("layernorm", lambda x, w, b: F.layer_norm(x, (24,), w, b, eps=1e-5),
     [rnd(4, 7, 24, scale=2, shift=1), rnd(24, shift=1), rnd(24)])
case("softmax", lambda x: torch.softmax(x, dim=-1), [rnd(4, 5, 19, scale=3)], {"axis": -1})
case("softmax_axis1", lambda x: torch.softmax(x, dim=1), [rnd(4, 5, 3, scale=3)], {"axis": 1})
case("log_softmax", lambda x: torch.log_softmax(x, dim=-1), [rnd(6, 11, scale=3)], {"axis": -1})
idx = torch.tensor([[3, 0, 7, 3], [1, 9, 9, 2]])
case("embedding", lambda w: F.embedding(idx, w), [rnd(10, 6)],
     {"indices": idx.flatten().tolist(), "index_shape": list(idx.shape)})
mask = torch.zeros(2, 1, 6, dtype=torch.float64)
mask[1, 0, 4:] = -1e9  # the second item's last two keys are padding
case("attention", lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
     [rnd(2, 5, 8), rnd(2, 6, 8), rnd(2, 6, 4)], {"mask": "second item keys 4..5 masked"})
tensors["attention.mask"] = mask.float()
case("mse", lambda a, b: F.mse_loss(a, b), [rnd(4, 9), rnd(4, 9)])


# Composites, written functionally so every parameter is an input with a checked gradient.
# Linear layers use torch's layout: weight [out, in], y = x @ W^T + b.
def mlp_block(x, w1, b1, w2, b2):
    return x + F.linear(F.silu(F.linear(x, w1, b1)), w2, b2)


case("mlp_block", mlp_block, [rnd(6, 16), rnd(32, 16, scale=0.25), rnd(32, scale=0.1),
                              rnd(16, 32, scale=0.18), rnd(16, scale=0.1)])


def conv_block(x, g1, be1, w1, c1, g2, be2, w2, c2):
    h = F.conv2d(F.silu(F.group_norm(x, 2, g1, be1)), w1, c1, padding=1)
    h = F.conv2d(F.silu(F.group_norm(h, 2, g2, be2)), w2, c2, padding=1)
    return x + h


case("conv_block", conv_block, [rnd(2, 4, 7, 6), rnd(4, shift=1, scale=0.1), rnd(4, scale=0.1),
                                rnd(4, 4, 3, 3, scale=0.3), rnd(4, scale=0.1),
                                rnd(4, shift=1, scale=0.1), rnd(4, scale=0.1),
                                rnd(4, 4, 3, 3, scale=0.3), rnd(4, scale=0.1)], {"groups": 2})


def attn_block(x, ctx, lw, lb, wq, wk, wv, wo, bo):
    heads = 2
    B, L, D = x.shape
    h = F.layer_norm(x, (D,), lw, lb)
    q, k, v = F.linear(h, wq), F.linear(ctx, wk), F.linear(ctx, wv)

    def split(t):
        b, n, _ = t.shape
        return t.reshape(b, n, heads, D // heads).permute(0, 2, 1, 3).reshape(b * heads, n, D // heads)
    a = F.scaled_dot_product_attention(split(q), split(k), split(v))
    a = a.reshape(B, heads, L, D // heads).permute(0, 2, 1, 3).reshape(B, L, D)
    return x + F.linear(a, wo, bo)


case("attn_block", attn_block, [rnd(2, 5, 8), rnd(2, 3, 8), rnd(8, shift=1, scale=0.1), rnd(8, scale=0.1),
                                rnd(8, 8, scale=0.35), rnd(8, 8, scale=0.35), rnd(8, 8, scale=0.35),
                                rnd(8, 8, scale=0.35), rnd(8, scale=0.1)], {"heads": 2})

out_dir = os.path.join(ROOT, "Tests", "AutogradTests", "Fixtures")
os.makedirs(out_dir, exist_ok=True)
meta = {"cases": json.dumps(cases, sort_keys=True), "torch": torch.__version__,
        "generator": "scripts/make_fixtures.py"}
save(tensors, os.path.join(out_dir, "ops.safetensors"), meta)
print(f"wrote {len(cases)} op cases, {len(tensors)} tensors to {out_dir}/ops.safetensors")


# Optimizer fixtures: two AdamW steps and two EMA updates on fixed parameters and gradients.
opt = {}
p0 = rnd(5, 7).float()
g1, g2 = rnd(5, 7).float(), rnd(5, 7).float()
param = torch.nn.Parameter(p0.clone())
adamw = torch.optim.AdamW([param], lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05)
opt["param0"] = p0.clone()
for i, g in enumerate([g1, g2], start=1):
    param.grad = g.clone()
    adamw.step()
    opt[f"grad{i}"] = g.clone()
    opt[f"param{i}"] = param.detach().clone()
st = adamw.state[param]
opt["exp_avg"] = st["exp_avg"].clone()
opt["exp_avg_sq"] = st["exp_avg_sq"].clone()
ema = p0.clone()
w1, w2 = rnd(5, 7).float(), rnd(5, 7).float()
opt["ema_w1"], opt["ema_w2"] = w1, w2
for i, w in enumerate([w1, w2], start=1):
    ema.lerp_(w, 1 - 0.99)  # ema = 0.99 * ema + 0.01 * w, as torch.optim.swa_utils / timm do it
    opt[f"ema{i}"] = ema.clone()
opt_dir = os.path.join(ROOT, "Tests", "NNTests", "Fixtures")
os.makedirs(opt_dir, exist_ok=True)
save(opt, os.path.join(opt_dir, "optim.safetensors"),
     {"lr": "0.01", "betas": "0.9,0.999", "eps": "1e-8", "weight_decay": "0.05",
      "ema_decay": "0.99", "torch": torch.__version__, "generator": "scripts/make_fixtures.py"})
print(f"wrote optimizer fixtures to {opt_dir}/optim.safetensors")


# Module fixtures: torch.nn layers whose state_dict names our NN layers share. Module `m` stores
# its state_dict as `m.<param>` (load it with a "m." prefix filter), and `io.m.input`,
# `io.m.output`, `io.m.proj`, `io.m.grad.input`, `io.m.grad.<param>` for the checked scalar
# sum(output * proj). The constructor arguments are in the JSON metadata entry `modules`.
# Parameters are drawn at random (norm affines included, whose defaults 1 / 0 would hide a swap),
# stored as float32; the reference runs in float64 on those exact values.
# nn.MultiheadAttention is left out: its packed in_proj_weight does not match our q/k/v_proj names.
torch.manual_seed(1)  # own seed: the sections above stay byte-identical when this one changes
mods = {}
mod_tensors = {}


def module_case(name, module, config, input_shape):
    for pname, p in module.named_parameters():
        with torch.no_grad():  # norm scales around 1, everything else around 0
            p.copy_(torch.randn(p.shape) * 0.5 + (1.0 if pname == "weight" and "Norm" in config["type"] else 0.0))
    x = torch.randn(*input_shape)
    sd = {k: v.detach().clone().contiguous() for k, v in module.state_dict().items()}
    ref = module.double()
    xd = x.double().requires_grad_(True)
    out = ref(xd)
    proj = torch.randn(out.shape, dtype=torch.float64).float().double()
    (out * proj).sum().backward()
    for k, v in sd.items():
        mod_tensors[f"{name}.{k}"] = v
    mod_tensors[f"io.{name}.input"] = x.contiguous()
    mod_tensors[f"io.{name}.output"] = out.detach().float().contiguous()
    mod_tensors[f"io.{name}.proj"] = proj.float().contiguous()
    mod_tensors[f"io.{name}.grad.input"] = xd.grad.float().contiguous()
    for k, p in ref.named_parameters():
        mod_tensors[f"io.{name}.grad.{k}"] = p.grad.float().contiguous()
    mods[name] = config


module_case("linear", torch.nn.Linear(16, 24), {"type": "Linear", "in": 16, "out": 24, "bias": True}, (3, 5, 16))
module_case("linear_nobias", torch.nn.Linear(16, 8, bias=False),
            {"type": "Linear", "in": 16, "out": 8, "bias": False}, (7, 16))
module_case("conv", torch.nn.Conv2d(3, 8, 3, padding=1),
            {"type": "Conv2d", "in": 3, "out": 8, "kernel": 3, "stride": 1, "padding": 1, "bias": True}, (2, 3, 10, 9))
module_case("conv_s2", torch.nn.Conv2d(4, 6, 3, stride=2, padding=1),
            {"type": "Conv2d", "in": 4, "out": 6, "kernel": 3, "stride": 2, "padding": 1, "bias": True}, (2, 4, 9, 10))
module_case("conv1x1_nobias", torch.nn.Conv2d(6, 5, 1, bias=False),
            {"type": "Conv2d", "in": 6, "out": 5, "kernel": 1, "stride": 1, "padding": 0, "bias": False}, (2, 6, 4, 5))
module_case("groupnorm", torch.nn.GroupNorm(4, 8, eps=1e-5),
            {"type": "GroupNorm", "groups": 4, "channels": 8, "eps": 1e-5}, (2, 8, 5, 6))
module_case("layernorm", torch.nn.LayerNorm(24, eps=1e-5), {"type": "LayerNorm", "dim": 24, "eps": 1e-5}, (3, 5, 24))
save(mod_tensors, os.path.join(opt_dir, "modules.safetensors"),
     {"modules": json.dumps(mods, sort_keys=True), "torch": torch.__version__, "generator": "scripts/make_fixtures.py"})
print(f"wrote {len(mods)} module cases, {len(mod_tensors)} tensors to {opt_dir}/modules.safetensors")
