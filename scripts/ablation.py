#!/usr/bin/env python3
"""Recipe ablation (issue 15): the chain of one config, once per recipe option, at equal steps
and batch size, and one table of the 2-RF and student rows.

    python3 scripts/ablation.py --config experiments/quickstart.yaml --base runs/quickstart \
        [--only NAME ...] [--out docs/ablation_digits.md]

--base is a finished run of the same config (`reflow --config ...`): the baseline variant starts
from copies of its files (re-running what this version of the chain considers out of date), and
every other variant from copies of the baseline's stages that its option does not change (the chain re-runs a stage only when its
config hash differs), so a reflow option retrains the 2-RF and everything after it, a
distillation option only the students. Variants run in runs/abl-<name>; re-running skips what is
done. Each row: mean +- half the range over the config's eval seeds.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

# name, overrides, the stages it changes (what is NOT copied from the base run), cost note.
VARIANTS = [
    ("baseline", [], "none", ""),
    ("flow-guided-0.5", ["distill.flow_guided_weight=0.5"], "distill", "+1 student and 1 2-RF pass per step (~2x)"),
    ("flow-guided-0.5-half-steps", ["distill.flow_guided_weight=0.5", "distill.steps=HALF"], "distill", "equal compute"),
    ("perceptual", ["distill.loss=perceptual"], "distill", "+1 perceptual-net pass per step"),
    ("u-shaped-t", ["reflow.time_sampling=u-shaped"], "reflow", ""),
    ("weighted-huber", ["reflow.flow_loss=weighted-huber"], "reflow", ""),
    ("2x-pairs", ["pairs.count=DOUBLE"], "pairs", "2x teacher pairs"),
    ("u-shaped+huber", ["reflow.time_sampling=u-shaped", "reflow.flow_loss=weighted-huber"], "reflow", ""),
]
# Every variant is scored on the rows the table shows only (one step), without the teacher's
# guidance sweep or straightness: the same for all, and most of the evaluation's cost.
EVAL = ["eval.steps=[1]", "eval.teacher_guidance_sweep=[]", "eval.straightness_steps=0"]

def run_variant(args, name, sets, changes, cfg):
    run = os.path.join("runs", "abl-" + name)
    os.makedirs(os.path.join(run, "pairs"), exist_ok=True)
    copy = {"none": ["teacher.safetensors", "pairs/teacher.h5", "reflow.safetensors", "pairs/reflow.h5",
                     "distill.safetensors", "direct-distill.safetensors"],
            "distill": ["teacher.safetensors", "pairs/teacher.h5", "reflow.safetensors", "pairs/reflow.h5"],
            "reflow": ["teacher.safetensors", "pairs/teacher.h5"],
            "pairs": ["teacher.safetensors"]}[changes]
    for f in copy:
        dst = os.path.join(run, f)
        if not os.path.exists(dst):
            shutil.copyfile(os.path.join(args.base, f), dst)
    sets = [s.replace("HALF", str(cfg["distill_steps"] // 2)).replace("DOUBLE", str(2 * cfg["pairs_count"])) for s in sets]
    cmd = [args.reflow, "--config", args.config, "--set", "name=abl-" + name] + sum([["--set", s] for s in sets + EVAL], [])
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return json.load(open(os.path.join(run, "results.json"))), sets

def spread(v, digits=3, pct=False):
    m = sum(v) / len(v)
    h = (max(v) - min(v)) / 2
    return f"{100*m:.1f} ± {100*h:.1f}%" if pct else f"{m:.{digits}f} ± {h:.{digits}f}"

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--base", required=True)
    ap.add_argument("--reflow", default=".build/release/reflow")
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--out")
    args = ap.parse_args()
    for f in ["teacher.safetensors", "pairs/teacher.h5", "reflow.safetensors", "pairs/reflow.h5"]:
        if not os.path.exists(os.path.join(args.base, f)):
            sys.exit(f"error: {args.base}/{f} is missing: run the chain first (reflow --config {args.config})")
    # The two settings the variants scale, from the base run's resolved config (the chain writes it).
    cfg = {"distill_steps": None, "pairs_count": None}
    section = None
    for line in open(os.path.join(args.base, "config.yaml")):
        line = line.rstrip("\n")
        if line and not line.startswith(" "):
            section = line.split(":")[0]
        elif section == "distill" and line.startswith("  steps:"):
            cfg["distill_steps"] = int(line.split(":")[1])
        elif section == "pairs" and line.startswith("  count:"):
            cfg["pairs_count"] = int(line.split(":")[1])
    if None in cfg.values():
        sys.exit(f"error: could not read distill.steps and pairs.count from {args.base}/config.yaml")
    lines = ["| variant | overrides | 2-RF 1 step FD (conv3) | student acc. | student FD (conv3) | student FD (vgg) | student precision | student recall | direct distill FD (conv3) | cost |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    floor = None
    for name, sets, changes, cost in VARIANTS:
        if args.only and name not in args.only:
            continue
        r, used = run_variant(args, name, sets, changes, cfg)
        if name == "baseline":
            # The others start from the baseline's copies: made by this version of the chain, so
            # their config hashes match what it expects (a base run from an older version may not).
            args.base = os.path.join("runs", "abl-baseline")
        rows = {(x["model"], x["steps"]): x for x in r["rows"]}
        s, rf, dd = rows[("2-RF + distill", 1)], rows[("2-RF", 1)], rows[("teacher + direct distill", 1)]
        floor = r.get("floor") or floor
        lines.append(f"| {name} | {' '.join('`'+u+'`' for u in used) or '–'} | {spread(rf['fdFeatures'])} | "
                     f"{spread(s['promptAccuracy'], pct=True)} | {spread(s['fdFeatures'])} | {spread(s['fdSecond'])} | "
                     f"{spread(s['precision'])} | {spread(s['recall'])} | {spread(dd['fdFeatures'])} | {cost} |")
    if floor:
        lines.insert(2, f"| data (floor) | – | {spread(floor['fdFeatures'])} | {spread(floor['promptAccuracy'], pct=True)} | "
                        f"{spread(floor['fdFeatures'])} | {spread(floor['fdSecond'])} | {spread(floor['precision'])} | "
                        f"{spread(floor['recall'])} | | |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")

if __name__ == "__main__":
    main()
