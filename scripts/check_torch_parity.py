"""PyTorch runs our checkpoints: the same outputs as our engine, within 1e-4 relative.

For each checkpoint, reflow-bench (our engine) writes a real batch of the config's dataset, noise,
prompts and its own outputs on them to a folder (inputs.safetensors); this script loads the
*checkpoint file itself* with python/reflow_model.py and compares, on the same inputs:
  velocity      v(x_t, t, caption) on a training batch (caption dropout as in training)
  one-step      x0 + v(x0, 0, prompt): what a one-step student generates
  guided step   the first step of the pairs solver under guidance (both branches)
Relative error = max |ours - torch| / max |ours|; it must be below --tolerance (1e-4).

  python3 scripts/check_torch_parity.py runs/fashion/teacher.safetensors runs/fashion/distill.safetensors \
      --config experiments/fashion.yaml
"""
import argparse
import os
import subprocess
import sys
import tempfile

import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
sys.path.insert(0, os.path.join(here, "..", "python"))
from bench_chain import guided, load_inputs, solve  # noqa: E402
from reflow_model import load_checkpoint  # noqa: E402


def relative(ours, theirs):
    return float((ours - theirs).abs().max()) / max(float(ours.abs().max()), 1e-12)


def check(checkpoint, config, bench, tolerance):
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([bench, "--model", "unet-sample", "--config", config, "--checkpoint", checkpoint,
                        "--chain-dir", d, "--no-torch", "--repeats", "1", "--steps", "1", "--warmup", "0", "--json"],
                       check=True, stdout=subprocess.DEVNULL)
        inp, meta = load_inputs(os.path.join(d, "inputs.safetensors"))
    import json
    model, _ = load_checkpoint(checkpoint)
    captions, prompts = json.loads(meta["captions"]), json.loads(meta["sample_prompts"])
    x0, x1, t, noise = inp["x0"], inp["x1"], inp["t"], inp["sample_noise"]
    w, kind, total = float(meta["guidance"]), meta["solver"], int(meta["solver_steps"])
    model.eval()
    with torch.inference_mode():
        b = (lambda s: s[:, None, None, None])
        xt = b(t) * x1 + b(1 - t) * x0
        rows = [
            ("velocity", relative(inp["velocity"], model.velocity(xt, t, model.encode(captions))), len(captions)),
            ("one-step", relative(inp["one_step"],
                                  noise + model.velocity(noise, torch.zeros(noise.shape[0]), model.encode(prompts))), len(prompts)),
            (f"guided {kind} step (w={w:g})", relative(inp["pairs_first_step"],
                                                        solve(guided(model, prompts, w), noise, 1, total, kind)), len(prompts)),
        ]
    ok = True
    for what, err, n in rows:
        good = err <= tolerance
        ok &= good
        print(f"{os.path.basename(checkpoint)}  {what:28s} batch {n:4d}  relative error {err:.2e}  {'ok' if good else 'FAIL'}")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--config", default="experiments/fashion.yaml", help="config whose dataset makes the inputs")
    ap.add_argument("--bench", default=".build/release/reflow-bench")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    a = ap.parse_args()
    torch.set_num_threads(2)
    results = [check(c, a.config, a.bench, a.tolerance) for c in a.checkpoints]
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
