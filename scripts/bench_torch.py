#!/usr/bin/env python3
"""PyTorch side of `reflow-bench`: runs the same work as our engine and prints JSON.

Models (identical to Sources/reflow-bench):
  mlp:  x[256, 512] -> 4 x (Linear 512->512), SiLU between; MSE to a fixed target; AdamW.
  conv: x[64, 1, 28, 28] -> conv3x3 1->32, ResBlock(32), conv3x3 stride 2 32->64, ResBlock(64),
        mean over H, W, Linear 64->10; MSE to a fixed target; AdamW.
        ResBlock(c): h = conv3x3(SiLU(GN8(x))); h = conv3x3(SiLU(GN8(h))); x + h.
  unet-train / unet-sample / unet-pairs: the chain's own model (python/reflow_model.py) with the
        weights, inputs and settings reflow-bench wrote to --chain-dir (model.safetensors,
        inputs.safetensors); its outputs are first checked against ours (written there too).
Usage: python3 scripts/bench_torch.py --model mlp --steps 50 --warmup 5 --threads 2 [--profile]
       python3 scripts/bench_torch.py --model unet-train --chain-dir DIR --steps 6 --warmup 1 --threads 2
       python3 scripts/bench_torch.py --ops 20 --threads 2   (per-op forward/backward times)
Prints one JSON line: {"model": ..., "rate": ..., "unit": ..., "threads": ..., "torch": ..., "params": ...}
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class ResBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.n1, self.c1 = nn.GroupNorm(8, c), nn.Conv2d(c, c, 3, padding=1)
        self.n2, self.c2 = nn.GroupNorm(8, c), nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        h = self.c1(F.silu(self.n1(x)))
        return x + self.c2(F.silu(self.n2(h)))


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 32, 3, padding=1)
        self.b1 = ResBlock(32)
        self.down = nn.Conv2d(32, 64, 3, stride=2, padding=1)
        self.b2 = ResBlock(64)
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        h = self.b2(self.down(self.b1(self.stem(x))))
        return self.head(h.mean(dim=(2, 3)))


class MLP(nn.Module):
    def __init__(self, width=512, layers=4):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(width, width) for _ in range(layers)])

    def forward(self, x):
        for i, l in enumerate(self.layers):
            x = l(x)
            if i < len(self.layers) - 1:
                x = F.silu(x)
        return x


def op_cases():
    """The per-op rows of `reflow-bench --ops` (same names, shapes and order as OpBench.swift)."""
    def inp(*shape, grad=True):
        return torch.randn(*shape, requires_grad=grad)

    def conv(name, n, c, o, hw, stride, input_grad):
        layer, x = nn.Conv2d(c, o, 3, stride=stride, padding=1), inp(n, c, hw, hw, grad=input_grad)
        return name, (lambda: layer(x)), list(layer.parameters()) + [x]

    def gn(name, shape):
        layer, x = nn.GroupNorm(8, shape[1]), inp(*shape)
        return name, (lambda: layer(x)), list(layer.parameters()) + [x]

    def silu(name, shape):
        x = inp(*shape)
        return name, (lambda: F.silu(x)), [x]

    a, b = inp(64, 32, 28, 28), inp(64, 32, 28, 28)
    xm = inp(64, 64, 14, 14)
    lin, xl = nn.Linear(512, 512), inp(256, 512)
    return [
        conv("conv 1->32 28x28 (stem)", 64, 1, 32, 28, 1, False),
        conv("conv 32->32 28x28", 64, 32, 32, 28, 1, True),
        conv("conv 32->64 s2 28x28", 64, 32, 64, 28, 2, True),
        conv("conv 64->64 14x14", 64, 64, 64, 14, 1, True),
        gn("groupnorm8 [64,32,28,28]", (64, 32, 28, 28)),
        gn("groupnorm8 [64,64,14,14]", (64, 64, 14, 14)),
        silu("silu [64,32,28,28]", (64, 32, 28, 28)),
        silu("silu [64,64,14,14]", (64, 64, 14, 14)),
        ("add [64,32,28,28]", lambda: a + b, [a, b]),
        ("mean(2,3) [64,64,14,14]", lambda: xm.mean(dim=(2, 3)), [xm]),
        ("linear 512->512 b256", lambda: lin(xl), list(lin.parameters()) + [xl]),
        silu("silu [256,512]", (256, 512)),
    ]


def run_ops(iters):
    """Median forward / backward milliseconds per op, then AdamW.step per model."""
    rows = []
    for name, fwd, leaves in op_cases():
        f, b = [], []
        for i in range(iters + 3):
            for p in leaves:  # no gradient accumulation inside the timed backward
                p.grad = None
            t0 = time.perf_counter()
            y = fwd()
            t1 = time.perf_counter()
            seed = torch.ones_like(y)
            t2 = time.perf_counter()
            y.backward(seed)
            t3 = time.perf_counter()
            if i >= 3:
                f.append(t1 - t0)
                b.append(t3 - t2)
        rows.append({"op": name, "fwd_ms": statistics.median(f) * 1e3, "bwd_ms": statistics.median(b) * 1e3})
    for kind in ("mlp", "conv"):
        model, x, y = make_model(kind)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        F.mse_loss(model(x), y).backward()
        s = []
        for _ in range(iters + 3):
            t0 = time.perf_counter()
            opt.step()
            s.append(time.perf_counter() - t0)
        rows.append({"op": f"adamw step ({kind} params)", "fwd_ms": statistics.median(s[3:]) * 1e3, "bwd_ms": 0.0})
    return rows


def make_model(kind):
    if kind == "mlp":
        return MLP(), torch.randn(256, 512), torch.randn(256, 512)
    return ConvNet(), torch.randn(64, 1, 28, 28), torch.randn(64, 10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=["mlp", "conv", "unet-train", "unet-sample", "unet-pairs"])
    ap.add_argument("--chain-dir", help="folder with model.safetensors and inputs.safetensors (unet rows)")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--profile", action="store_true",
                    help="also print torch.profiler's per-op table (self CPU time) before the JSON line")
    ap.add_argument("--ops", type=int, default=0, metavar="ITERS",
                    help="instead of training, time each op's forward and backward (median of ITERS) and print one JSON line")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.ops:
        print(json.dumps({"ops": run_ops(a.ops), "threads": a.threads, "torch": torch.__version__}))
        return
    if a.model is None:
        ap.error("--model is required (unless --ops)")
    if a.model.startswith("unet"):
        if not a.chain_dir:
            ap.error("--chain-dir is required for the unet rows")
        from bench_chain import run_chain
        print(json.dumps(run_chain(a.model, a.chain_dir, a.steps, a.warmup, a.threads, a.profile)))
        return
    model, x, y = make_model(a.model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        return loss

    for _ in range(a.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    dt = time.perf_counter() - t0
    if a.profile:
        # A separate profiled run, so the timing above stays free of profiler overhead.
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            for _ in range(a.steps):
                step()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
    print(json.dumps({"model": a.model, "rate": a.steps / dt, "unit": "steps/s", "threads": a.threads,
                      "loss": float(loss.detach()), "torch": torch.__version__,
                      "params": sum(p.numel() for p in model.parameters())}))


if __name__ == "__main__":
    main()
