#!/usr/bin/env python3
"""PyTorch side of `reflow-bench`: trains the same models as our engine and prints JSON.

Models (identical to Sources/reflow-bench):
  mlp:  x[256, 512] -> 4 x (Linear 512->512), SiLU between; MSE to a fixed target; AdamW.
  conv: x[64, 1, 28, 28] -> conv3x3 1->32, ResBlock(32), conv3x3 stride 2 32->64, ResBlock(64),
        mean over H, W, Linear 64->10; MSE to a fixed target; AdamW.
        ResBlock(c): h = conv3x3(SiLU(GN8(x))); h = conv3x3(SiLU(GN8(h))); x + h.
Usage: python3 scripts/bench_torch.py --model mlp --steps 50 --warmup 5 --threads 2
Prints one JSON line: {"model": ..., "steps_per_s": ..., "threads": ..., "torch": ...}
"""
import argparse
import json
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=["mlp", "conv"], required=True)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.model == "mlp":
        model, x, y = MLP(), torch.randn(256, 512), torch.randn(256, 512)
    else:
        model, x, y = ConvNet(), torch.randn(64, 1, 28, 28), torch.randn(64, 10)
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
    print(json.dumps({"model": a.model, "steps_per_s": a.steps / dt, "threads": a.threads,
                      "loss": float(loss.detach()), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
