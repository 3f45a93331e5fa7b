#!/usr/bin/env python3
"""Writes Tests/FlowTests/Fixtures/diffusion.json, the reference for the Swift VP schedule and
the DDIM / DPM-Solver++(2M) samplers (Sources/Flow/VPSchedule.swift, DDIM.swift,
DPMSolver.swift), computed with diffusers' own schedulers:

  - alphas_cumprod of the "scaled_linear" (Stable Diffusion), "linear" and
    "squaredcos_cap_v2" (cosine) schedules, 1000 train steps;
  - the timesteps DDIMScheduler and DPMSolverMultistepScheduler pick for N steps under each
    timestep_spacing;
  - whole trajectories of both schedulers, Stable Diffusion 1.5's scheduler config, for an
    analytic model with classifier-free guidance (two branches), epsilon and v prediction.

The analytic model is the exact denoiser of per-element Gaussian data N(mu, c^2): with
x_s = alpha x0 + sigma eps and D = alpha^2 c^2 + sigma^2,
    eps(x, s) = sigma (x - alpha mu) / D
    v(x, s)   = sigma (alpha (1 - c^2) (x - alpha mu) / D - mu)
with alpha, sigma from diffusers' float32 alphas_cumprod (stored here, so the Swift test feeds
its samplers the same model outputs). "cond" and "uncond" have their own (mu, c); guidance
combines them as diffusers' pipelines do: out = uncond + w (cond - uncond).

Usage (torch CPU and diffusers in a venv; no network needed for torch's CPU wheel):
    python3 -m venv /work/venv-diff
    /work/venv-diff/bin/pip install "torch==2.13.0+cpu" diffusers safetensors numpy
    /work/venv-diff/bin/python scripts/make_diffusion_fixtures.py
"""
import json
import os

import diffusers
import numpy as np
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "FlowTests", "Fixtures", "diffusion.json")

# runwayml/stable-diffusion-v1-5, scheduler/scheduler_config.json (a PNDMScheduler config; the
# keys a DDIM or DPM-Solver scheduler does not know are ignored by from_config). It names no
# timestep_spacing, so each scheduler keeps its default: "leading" for DDIM, "linspace" for
# DPM-Solver; no prediction_type, so "epsilon".
SD15 = {
    "_class_name": "PNDMScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
    "clip_sample": False,
}
SCHEDULES = {"scaled_linear": (0.00085, 0.012), "linear": (0.0001, 0.02), "squaredcos_cap_v2": (0.0001, 0.02)}
GUIDANCE = 2.0
SHAPE = (2, 2, 2, 2)


def f32(values):
    """float32 values as JSON numbers with 9 significant digits (enough to round-trip)."""
    return [float(f"{v:.9g}") for v in np.asarray(values, dtype=np.float32).reshape(-1)]


def make(kind, schedule, prediction="epsilon", **overrides):
    config = dict(SD15, beta_schedule=schedule, prediction_type=prediction, **overrides)
    cls = DDIMScheduler if kind == "ddim" else DPMSolverMultistepScheduler
    return cls.from_config(config)


def schedules():
    out = {}
    for name, (b0, b1) in SCHEDULES.items():
        s = DDIMScheduler(num_train_timesteps=1000, beta_start=b0, beta_end=b1, beta_schedule=name)
        out[name] = {"beta_start": b0, "beta_end": b1, "alphas_cumprod": f32(s.alphas_cumprod.numpy())}
    return out


def timesteps():
    cases = []
    for kind in ("ddim", "dpm"):
        for spacing in ("leading", "linspace", "trailing"):
            for n in (1, 2, 3, 7, 8, 25, 50, 100, 500):
                s = make(kind, "scaled_linear", timestep_spacing=spacing)
                s.set_timesteps(n)
                cases.append({"sampler": kind, "spacing": spacing, "steps_offset": 1, "steps": n,
                              "timesteps": [int(t) for t in s.timesteps]})
    return cases


def model_params():
    g = torch.Generator().manual_seed(11)
    per_item = SHAPE[1:]
    def uniform(lo, hi):
        return lo + (hi - lo) * torch.rand(per_item, generator=g)
    params = {"cond": {"mu": uniform(-0.8, 0.8), "std": uniform(0.2, 0.6)},
              "uncond": {"mu": uniform(-0.3, 0.3), "std": uniform(0.4, 0.8)}}
    x_T = torch.randn(SHAPE, generator=g)
    return params, x_T


def branch(x, alpha, sigma, p, prediction):
    mu, c = p["mu"], p["std"]
    d = alpha * alpha * c * c + sigma * sigma
    centred = x - alpha * mu
    if prediction == "epsilon":
        return sigma * centred / d
    return sigma * (alpha * (1 - c * c) * centred / d - mu)


def trajectories(params, x_T):
    cases = []
    for kind in ("ddim", "dpm"):
        for schedule in ("scaled_linear", "squaredcos_cap_v2"):
            for prediction in ("epsilon", "v_prediction"):
                for n in (1, 2, 8, 25):
                    s = make(kind, schedule, prediction)
                    s.set_timesteps(n)
                    acp = s.alphas_cumprod
                    x = x_T.clone()
                    states, seen = [f32(x)], []
                    for t in s.timesteps:
                        alpha, sigma = acp[int(t)].sqrt(), (1 - acp[int(t)]).sqrt()
                        u = branch(x, alpha, sigma, params["uncond"], prediction)
                        c = branch(x, alpha, sigma, params["cond"], prediction)
                        out = u + GUIDANCE * (c - u)
                        step = s.step(out, t, x) if kind == "dpm" else s.step(out, t, x, eta=0.0)
                        x = step.prev_sample
                        states.append(f32(x))
                        seen.append(int(t))
                    cases.append({"sampler": kind, "schedule": schedule, "prediction": prediction, "steps": n,
                                  "model_timesteps": seen, "states": states})
    return cases


def main():
    torch.set_num_threads(1)
    params, x_T = model_params()
    doc = {
        "generator": "scripts/make_diffusion_fixtures.py",
        "versions": {"diffusers": diffusers.__version__, "torch": torch.__version__, "numpy": np.__version__},
        "sd15_scheduler_config": SD15,
        "schedules": schedules(),
        "timesteps": timesteps(),
        "model": {"shape": list(SHAPE), "guidance": GUIDANCE, "x_T": f32(x_T),
                  "cond": {k: f32(v) for k, v in params["cond"].items()},
                  "uncond": {k: f32(v) for k, v in params["uncond"].items()}},
        "trajectories": trajectories(params, x_T),
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
