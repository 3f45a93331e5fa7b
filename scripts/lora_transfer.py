#!/usr/bin/env python3
"""LoRA transfer on the quickstart chain (README, "LoRA"; experiments/quickstart-lora.yaml says
how the two LoRAs are trained). Samples class 3 (the class the LoRAs invert) and the nine other
classes (the control) from the teacher (25 Euler steps, guidance 1.5, as the quickstart samples
it), the 2-RF and the one-step student (1 step, no guidance), each without and with a LoRA, on
the same noise over three seeds (the student also with its own LoRAs: the ceiling); prints the mean pixel value in [-1, 1] (inverted digits are
mostly white: it rises), the fraction of images drawn inverted, and each LoRA's effect as a
fraction of the teacher's. Also writes docs/lora_transfer.png (rows: see the README).
Usage: scripts/lora_transfer.py [BIN_DIR]   (default .build/release), from the repository root."""
import os, statistics, subprocess, sys

BIN = sys.argv[1] if len(sys.argv) > 1 else ".build/release"
RUN, LORA = "runs/quickstart", "runs/quickstart-lora"
OUT = f"{LORA}/transfer"
os.makedirs(OUT, exist_ok=True)
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
def captions(d): return [f"a handwritten digit {WORDS[d]}", f"the number {d}", f"digit {d}", f"a handwritten {d}", f"the digit {WORDS[d]}"]
PROMPTS = {"three": (captions(3), 40), "others": ([c for d in range(10) if d != 3 for c in captions(d)], 8)}
for name, (ps, _) in PROMPTS.items():
    open(f"{OUT}/{name}.txt", "w").write("\n".join(ps) + "\n")
MODELS = {"teacher": (f"{RUN}/teacher.safetensors", 25, 1.5), "2-RF": (f"{RUN}/reflow.safetensors", 1, 1.0),
          "student": (f"{RUN}/distill.safetensors", 1, 1.0)}
LT, LS = f"{LORA}/lora-teacher.safetensors", f"{LORA}/lora-student.safetensors"
LP = f"{LORA}/lora-student-tpairs.safetensors"  # the student's own, distilled on pairs from teacher + LoRA
ROWS = [("teacher", None), ("teacher", LT), ("2-RF", None), ("2-RF", LT), ("student", None), ("student", LT), ("student", LS), ("student", LP)]
SEEDS = [0, 1, 2]

def sample(model, lora, prompts, per, seed, out, columns=10):
    ckpt, steps, w = MODELS[model]
    cmd = [f"{BIN}/reflow-sample", ckpt, "--prompts", prompts, "--per-prompt", str(per), "--steps", str(steps),
           "--solver", "euler", "--guidance", str(w), "--seed", str(seed), "--columns", str(columns), "--output", out, "--quiet"]
    if lora: cmd += ["--lora", lora, "--allow-lora-transfer"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)

def compare(a, b, n):
    r = subprocess.run([sys.executable, "scripts/lora_effect.py", "compare", a, b, str(n)], check=True, capture_output=True, text=True)
    return [float(v) for v in r.stdout.split()]

def stats(png, n):
    r = subprocess.run([sys.executable, "scripts/lora_effect.py", "stats", png, str(n)], check=True, capture_output=True, text=True)
    m, f = r.stdout.split()
    return float(m), float(f)

res = {}
for model, lora in ROWS:
    tag = os.path.basename(lora).replace(".safetensors", "") if lora else "base"
    for cls, (ps, per) in PROMPTS.items():
        vals = []
        for s in SEEDS:
            png = f"{OUT}/{model}-{tag}-{cls}-{s}.png"
            sample(model, lora, f"{OUT}/{cls}.txt", per, s, png)
            n = len(ps) * per
            # RMS of (this + base) and (this - base), on the same noise: 0 = the base inverted / unchanged.
            vals.append(tuple(stats(png, n)) + tuple(compare(png, f"{OUT}/{model}-base-{cls}-{s}.png", n)))
        res[(model, tag, cls)] = [statistics.median(v[i] for v in vals) for i in range(4)] + [vals]

def effect(model, tag, cls, i=0): return res[(model, tag, cls)][i] - res[(model, "base", cls)][i]
teacher_effect = effect("teacher", "lora-teacher", "three")
print("| model (steps, guidance) | LoRA | class 3: mean pixel | drawn inverted | effect (mean pixel change) | fraction of the teacher's effect | RMS from the base's image inverted | other classes: mean pixel (change) | drawn inverted | RMS change |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for model, lora in ROWS:
    tag = os.path.basename(lora).replace(".safetensors", "") if lora else "base"
    _, steps, w = MODELS[model]
    m3, f3, inv3, _, _ = res[(model, tag, "three")]
    mo, fo, _, cho, _ = res[(model, tag, "others")]
    e = effect(model, tag, "three") if lora else 0.0
    frac = f"{e / teacher_effect:.2f}" if lora else "-"
    name = {None: "none", LT: "teacher's", LS: "student's own (2-RF pairs, 3 inverted)", LP: "student's own (teacher + LoRA pairs)"}[lora]
    print(f"| {model} ({steps}, {w:g}) | {name} | {m3:+.3f} | {f3:.0%} | {e:+.3f} | {frac} | {inv3:.3f} | "
          f"{mo:+.3f} ({(effect(model, tag, 'others') if lora else 0):+.3f}) | {fo:.0%} | {cho:.3f} |")
print(f"\nmedians over seeds {SEEDS}; class 3: {len(PROMPTS['three'][0]) * PROMPTS['three'][1]} images per seed, others: "
      f"{len(PROMPTS['others'][0]) * PROMPTS['others'][1]}; per seed (mean pixel, inverted fraction, RMS(x + base), RMS(x - base)):")
for k, v in res.items(): print(f"  {k}: {[tuple(round(a, 4) for a in t) for t in v[4]]}")

# The figure: one row per ROWS entry, "the number 0".."the number 9", two images each (seed 0).
grid = f"{OUT}/digits.txt"
open(grid, "w").write("\n".join(f"the number {d}" for d in range(10)) + "\n")
rows = []
for model, lora in ROWS:
    tag = os.path.basename(lora).replace(".safetensors", "") if lora else "base"
    png = f"{OUT}/figure-{model}-{tag}.png"
    sample(model, lora, grid, 2, 0, png, columns=20)
    rows.append(png)
subprocess.run([sys.executable, "scripts/lora_effect.py", "stack", "docs/lora_transfer.png"] + rows, check=True)
print("\nwrote docs/lora_transfer.png")
