#!/usr/bin/env python3
"""LoRA transfer (README, "LoRA"): a LoRA trained on the teacher to draw one class inverted is
applied, unchanged, to the 2-RF and the one-step student. Samples that class and the nine other
classes (the control) from each model without and with the LoRA, on the same noise over three
seeds; prints the mean pixel value in [-1, 1] (inverted images are mostly white: it rises), the
fraction of images drawn inverted, and each LoRA's effect as a fraction of the teacher's; writes a
figure (rows: see the README).
  scripts/lora_transfer.py [BIN_DIR]                     the quickstart chain (experiments/quickstart-lora.yaml:
                                                         teacher 25 Euler steps at guidance 1.5, class 3, and the
                                                         student's own LoRAs as the ceiling) -> docs/lora_transfer.png
  scripts/lora_transfer.py --chain fashion-diffusion [BIN_DIR]
                                                         the fashion chain from a diffusion teacher
                                                         (experiments/fashion-diffusion-adapters.yaml: teacher 25
                                                         DPM-Solver++ steps at guidance 2, class 1 = trousers)
                                                         -> docs/lora_transfer_fashion.png
BIN_DIR defaults to .build/release; run from the repository root."""
import os, statistics, subprocess, sys

args = sys.argv[1:]
CHAIN = "quickstart"
if args[:1] == ["--chain"]:
    CHAIN, args = args[1], args[2:]
BIN = args[0] if args else ".build/release"
SEEDS = [0, 1, 2]
if CHAIN == "quickstart":
    RUN, LORA = "runs/quickstart", "runs/quickstart-lora"
    WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    def captions(d): return [f"a handwritten digit {WORDS[d]}", f"the number {d}", f"digit {d}", f"a handwritten {d}", f"the digit {WORDS[d]}"]
    CLASS, PER, OTHER_PER, TILE = 3, 40, 8, "8:4"
    TEACHER = ["--steps", "25", "--solver", "euler", "--guidance", "1.5"]
    FIGURE, FIGURE_PROMPTS = "docs/lora_transfer.png", [f"the number {d}" for d in range(10)]
elif CHAIN == "fashion-diffusion":
    RUN, LORA = "runs/fashion-diffusion", "runs/fashion-diffusion-adapters"
    NOUNS = ["t-shirt", "pair of trousers", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]
    def art(n): return "an" if n[0] in "aeiou" else "a"
    def captions(d): return [f"a photo of {art(NOUNS[d])} {NOUNS[d]}", f"{art(NOUNS[d])} {NOUNS[d]}", f"a small image of {art(NOUNS[d])} {NOUNS[d]}"]
    CLASS, PER, OTHER_PER, TILE = 1, 40, 8, "28:2"
    TEACHER = ["--steps", "25", "--sampler", "dpmsolver++", "--guidance", "2"]
    FIGURE, FIGURE_PROMPTS = "docs/lora_transfer_fashion.png", [f"a photo of {art(n)} {n}" for n in NOUNS]
else:
    sys.exit(f"unknown --chain {CHAIN}: quickstart or fashion-diffusion")
OUT = f"{LORA}/transfer"
os.makedirs(OUT, exist_ok=True)
PROMPTS = {"class": (captions(CLASS), PER), "others": ([c for d in range(10) if d != CLASS for c in captions(d)], OTHER_PER)}
for name, (ps, _) in PROMPTS.items():
    open(f"{OUT}/{name}.txt", "w").write("\n".join(ps) + "\n")
ONE_STEP = ["--steps", "1", "--solver", "euler", "--guidance", "1"]
MODELS = {"teacher": (f"{RUN}/teacher.safetensors", TEACHER), "2-RF": (f"{RUN}/reflow.safetensors", ONE_STEP),
          "student": (f"{RUN}/distill.safetensors", ONE_STEP)}
LT, LS = f"{LORA}/lora-teacher.safetensors", f"{LORA}/lora-student.safetensors"
LP = f"{LORA}/lora-student-tpairs.safetensors"  # the student's own, distilled on pairs from teacher + LoRA
ROWS = [("teacher", None), ("teacher", LT), ("2-RF", None), ("2-RF", LT), ("student", None), ("student", LT)]
ROWS += [("student", f) for f in (LS, LP) if os.path.exists(f)]  # the ceiling, where trained

def sample(model, lora, prompts, per, seed, out, columns=10):
    ckpt, how = MODELS[model]
    cmd = [f"{BIN}/reflow-sample", ckpt, "--prompts", prompts, "--per-prompt", str(per)] + how + [
           "--seed", str(seed), "--columns", str(columns), "--output", out, "--quiet"]
    if lora: cmd += ["--lora", lora]  # the 2-RF and student descend from the LoRA's base: no flag needed
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)

def compare(a, b, n):
    r = subprocess.run([sys.executable, "scripts/lora_effect.py", "--tile", TILE, "compare", a, b, str(n)], check=True, capture_output=True, text=True)
    return [float(v) for v in r.stdout.split()]

def stats(png, n):
    r = subprocess.run([sys.executable, "scripts/lora_effect.py", "--tile", TILE, "stats", png, str(n)], check=True, capture_output=True, text=True)
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
teacher_effect = effect("teacher", "lora-teacher", "class")
print(f"| model (steps, guidance) | LoRA | class {CLASS}: mean pixel | drawn inverted | effect (mean pixel change) | fraction of the teacher's effect | RMS from the base's image inverted | other classes: mean pixel (change) | drawn inverted | RMS change |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for model, lora in ROWS:
    tag = os.path.basename(lora).replace(".safetensors", "") if lora else "base"
    how = MODELS[model][1]
    steps, w = how[how.index("--steps") + 1], float(how[how.index("--guidance") + 1])
    m3, f3, inv3, _, _ = res[(model, tag, "class")]
    mo, fo, _, cho, _ = res[(model, tag, "others")]
    e = effect(model, tag, "class") if lora else 0.0
    frac = f"{e / teacher_effect:.2f}" if lora else "-"
    name = {None: "none", LT: "teacher's", LS: f"student's own (2-RF pairs, {CLASS} inverted)", LP: "student's own (teacher + LoRA pairs)"}[lora]
    print(f"| {model} ({steps}, {w:g}) | {name} | {m3:+.3f} | {f3:.0%} | {e:+.3f} | {frac} | {inv3:.3f} | "
          f"{mo:+.3f} ({(effect(model, tag, 'others') if lora else 0):+.3f}) | {fo:.0%} | {cho:.3f} |")
print(f"\nmedians over seeds {SEEDS}; class {CLASS}: {len(PROMPTS['class'][0]) * PROMPTS['class'][1]} images per seed, others: "
      f"{len(PROMPTS['others'][0]) * PROMPTS['others'][1]}; per seed (mean pixel, inverted fraction, RMS(x + base), RMS(x - base)):")
for k, v in res.items(): print(f"  {k}: {[tuple(round(a, 4) for a in t) for t in v[4]]}")

# The figure: one row per ROWS entry, one prompt per class, two images each (seed 0).
grid = f"{OUT}/figure.txt"
open(grid, "w").write("\n".join(FIGURE_PROMPTS) + "\n")
rows = []
for model, lora in ROWS:
    tag = os.path.basename(lora).replace(".safetensors", "") if lora else "base"
    png = f"{OUT}/figure-{model}-{tag}.png"
    sample(model, lora, grid, 2, 0, png, columns=20)
    rows.append(png)
subprocess.run([sys.executable, "scripts/lora_effect.py", "--tile", TILE, "stack", FIGURE] + rows, check=True)
print(f"\nwrote {FIGURE}")
