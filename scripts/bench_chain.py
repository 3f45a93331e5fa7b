"""The chain rows of `reflow-bench` on the PyTorch side (imported by bench_torch.py).

reflow-bench writes, to one folder: model.safetensors (the config's model, a reflow checkpoint),
inputs.safetensors (a training batch x0, x1, t; the sampling noise; our outputs: the velocity
at x_t, the one-step images, the state after the first guided solver step) with the captions,
prompts and optimizer/solver settings in its metadata. This side rebuilds the model with
python/reflow_model.py, checks its outputs against ours, then times the same work:
  unet-train:  encode, x_t, velocity, MSE to x1 - x0, backward, clip, AdamW, zero grads, EMA
  unet-sample: x0 + v(x0, 0) for the whole noise batch (inference mode)
  unet-pairs:  the guided solver (both guidance branches in one doubled batch), `steps` of its
               steps timed and scaled to the whole batch, as on our side.
"""
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from reflow_model import load_checkpoint  # noqa: E402


def load_inputs(path):
    from safetensors import safe_open
    with safe_open(path, "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def guided(model, prompts, w):
    """v = v_u + w (v_c - v_u), conditional and unconditional rows in one batch."""
    n = len(prompts)
    text = model.encode(list(prompts) + [""] * n)

    def v(x, t):
        v2 = model.velocity(torch.cat([x, x]), torch.cat([t, t]), text)
        vc, vu = v2[:n], v2[n:]
        return vu + (vc - vu) * w
    return v


def solve(v, x, steps, total, kind):
    """The first `steps` steps of a `total`-step grid on [0, 1] (RK4, Heun or Euler)."""
    n = x.shape[0]
    for i in range(steps):
        t, tn = i / total, (i + 1) / total
        h = tn - t
        tt = lambda s: torch.full((n,), s, dtype=torch.float32)  # noqa: E731
        if kind == "euler":
            x = x + h * v(x, tt(t))
        elif kind == "heun":
            d1 = v(x, tt(t))
            d2 = v(x + h * d1, tt(tn))
            x = x + h / 2 * (d1 + d2)
        elif kind == "rk4":
            k1 = v(x, tt(t))
            k2 = v(x + h / 2 * k1, tt(t + h / 2))
            k3 = v(x + h / 2 * k2, tt(t + h / 2))
            k4 = v(x + h * k3, tt(tn))
            x = x + h / 6 * k1 + h / 3 * k2 + h / 3 * k3 + h / 6 * k4
        else:
            raise SystemExit(f"bench_chain: solver {kind!r} is not ported (euler, heun, rk4 are)")
    return x


def max_diff(a, b):
    return float((a - b).abs().max()), float(b.abs().max())


def run_chain(row, folder, steps, warmup, threads, profile):
    torch.set_num_threads(threads)
    model, _ = load_checkpoint(os.path.join(folder, "model.safetensors"))
    inp, meta = load_inputs(os.path.join(folder, "inputs.safetensors"))
    captions, prompts = json.loads(meta["captions"]), json.loads(meta["sample_prompts"])
    x0, x1, t, noise = inp["x0"], inp["x1"], inp["t"], inp["sample_noise"]
    w, kind, total = float(meta["guidance"]), meta["solver"], int(meta["solver_steps"])
    params = list(model.parameters())

    # Outputs first: the same model on the same inputs must give our numbers.
    with torch.inference_mode():
        b = (lambda s: s[:, None, None, None])
        xt = b(t) * x1 + b(1 - t) * x0
        dv = max_diff(model.velocity(xt, t, model.encode(captions)), inp["velocity"])
        if row == "unet-sample":
            dout = max_diff(noise + model.velocity(noise, torch.zeros(noise.shape[0]), model.encode(prompts)), inp["one_step"])
            what = "one-step images"
        elif row == "unet-pairs":
            dout = max_diff(solve(guided(model, prompts, w), noise, 1, total, kind), inp["pairs_first_step"])
            what = f"first {kind} step, guidance {w:g}"
        else:
            dout = None
    check = f"velocity max |diff| {dv[0]:.1e} (max |v| {dv[1]:.2f})"
    if dout:
        check += f"; {what} max |diff| {dout[0]:.1e} (max |x| {dout[1]:.2f})"
    worst = max(dv[0] / max(dv[1], 1e-6), (dout[0] / max(dout[1], 1e-6)) if dout else 0)
    if worst > 1e-3:
        raise SystemExit(f"bench_chain: the PyTorch port disagrees with ours ({check}); not timing a different model")

    if row == "unet-train":
        model.train()
        opt = torch.optim.AdamW(params, lr=float(meta["lr"]), betas=(0.9, 0.999), eps=1e-8,
                                weight_decay=float(meta["weight_decay"]))
        clip, decay = float(meta["grad_clip"]), float(meta["ema_decay"])
        ema = [p.detach().clone() for p in params]
        ids, padding = model.tokenizer.batch(captions)

        def one():
            text = model.encode_ids(ids, padding)
            xt = t[:, None, None, None] * x1 + (1 - t)[:, None, None, None] * x0
            loss = F.mse_loss(model.velocity(xt, t, text), x1 - x0)
            loss.backward()
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(params, clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            with torch.no_grad():
                torch._foreach_lerp_(ema, params, 1 - decay)
            return loss
        items = 1
    elif row == "unet-sample":
        def one():
            with torch.inference_mode():
                return noise + model.velocity(noise, torch.zeros(noise.shape[0]), model.encode(prompts))
        items = noise.shape[0]
    else:
        def one(k=1):
            with torch.inference_mode():
                return solve(guided(model, prompts, w), noise, k, total, kind)

    if row == "unet-pairs":
        if warmup:
            one(1)
        t0 = time.perf_counter()
        one(steps)
        per_step = (time.perf_counter() - t0) / steps
        rate, unit = noise.shape[0] / (per_step * total), "pairs/s"
    else:
        for _ in range(warmup):
            one()
        t0 = time.perf_counter()
        for _ in range(steps):
            one()
        rate = steps * items / (time.perf_counter() - t0)
        unit = "steps/s" if row == "unet-train" else "images/s"
    if profile:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            one()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
    return {"model": row, "rate": rate, "unit": unit, "threads": threads, "torch": torch.__version__,
            "params": sum(p.numel() for p in params), "check": check}
