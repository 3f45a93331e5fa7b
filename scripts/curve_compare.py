#!/usr/bin/env python3
"""One-step students against the teacher's guidance curve, at equal prompt accuracy.

Reads a chain's results.json (runs/<name>/results.json, written by `reflow` / `reflow table`)
and prints, for each one-step student row, its prompt accuracy and FD in both evaluators beside
the multi-step teacher's FD at the same accuracy, read off the teacher's guidance sweep (the
`teacher` rows at the most steps, one per guidance weight). Then the reflow-then-distill vs
direct-distill FD gap against three times the seed spread.

The teacher's FD at accuracy a is the best (lowest) FD the teacher reaches at accuracy a or
above: linear interpolation on each segment between adjacent guidance weights whose accuracies
bracket a, and every sweep point whose accuracy is already >= a. So the comparison never
favours the student.

    python3 scripts/curve_compare.py runs/fashion/results.json
"""
import argparse
import json
import sys


def mean(v):
    return sum(v) / len(v)


def half_range(v):
    return (max(v) - min(v)) / 2


def teacher_fd_at(points, acc):
    """points: [(guidance, accuracy, fd)] sorted by guidance. None if no point reaches acc."""
    best = None
    for _, a, f in points:
        if a >= acc:
            best = f if best is None else min(best, f)
    for (_, a0, f0), (_, a1, f1) in zip(points, points[1:]):
        lo, hi = min(a0, a1), max(a0, a1)
        if lo <= acc <= hi and hi > lo:
            f = f0 + (acc - a0) / (a1 - a0) * (f1 - f0)
            best = f if best is None else min(best, f)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="+", help="results.json of a chain run (several: their rows are pooled)")
    args = ap.parse_args()
    rows, floor = [], None
    for path in args.results:
        try:
            with open(path) as f:
                d = json.load(f)
        except (OSError, ValueError) as e:
            sys.exit(f"curve_compare: cannot read {path}: {e}")
        if "rows" not in d:
            sys.exit(f"curve_compare: {path} has no 'rows' (not a chain table's results.json)")
        rows += d["rows"]
        floor = floor or d.get("floor")
    teachers = [r for r in rows if r["model"] == "teacher"]
    if not teachers:
        sys.exit("curve_compare: no 'teacher' rows")
    steps = max(r["steps"] for r in teachers)
    sweep = sorted({r["guidance"]: r for r in teachers if r["steps"] == steps}.values(), key=lambda r: r["guidance"])
    if len(sweep) < 2:
        sys.exit(f"curve_compare: the teacher has one guidance weight at {steps} steps; sweep it (eval.teacher_guidance_sweep)")
    curves = {k: [(r["guidance"], mean(r["promptAccuracy"]), mean(r[k])) for r in sweep] for k in ("fdFeatures", "fdSecond")}
    students = [r for r in rows if "distill" in r["model"] and r["steps"] == 1]

    print(f"Teacher curve: {steps} steps at guidance " + ", ".join(f"{r['guidance']:g}" for r in sweep))
    print()
    print("| one-step model | pairs at | prompt acc. | FD (conv3) | FD (vgg) | teacher at the same accuracy, FD (conv3 / vgg) | model / teacher (conv3 / vgg) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    if floor:
        print(f"| data (floor) | | {100 * mean(floor['promptAccuracy']):.1f}% | {mean(floor['fdFeatures']):.3f} | {mean(floor['fdSecond']):.3f} | | |")
    for r in students:
        acc = mean(r["promptAccuracy"])
        t1, t2 = teacher_fd_at(curves["fdFeatures"], acc), teacher_fd_at(curves["fdSecond"], acc)
        f1, f2 = mean(r["fdFeatures"]), mean(r["fdSecond"])
        ref = "beyond the teacher's accuracy" if t1 is None else f"{t1:.3f} / {t2:.3f}"
        ratio = "" if t1 is None else f"{f1 / t1:.2f}x / {f2 / t2:.2f}x"
        pairs = r.get("pairsGuidance")
        print(f"| {r['model']} | {'' if pairs is None else f'w = {pairs:g}'} | {100 * acc:.1f} ± {100 * half_range(r['promptAccuracy']):.1f}% "
              f"| {f1:.3f} ± {half_range(r['fdFeatures']):.3f} | {f2:.3f} ± {half_range(r['fdSecond']):.3f} | {ref} | {ratio} |")

    reflow = [r for r in students if r["model"] == "2-RF + distill"]
    direct = [r for r in students if r["model"] == "teacher + direct distill"]
    if reflow and direct:
        print()
        for key, name in (("fdFeatures", "conv3"), ("fdSecond", "vgg")):
            a, b = reflow[0][key], direct[0][key]
            gap, spread = mean(b) - mean(a), max(half_range(a), half_range(b))
            verdict = "larger" if abs(gap) > 3 * spread else "not larger"
            print(f"reflow-then-distill vs direct distill, FD ({name}): {mean(a):.3f} vs {mean(b):.3f}, gap {gap:+.3f}; "
                  f"3x the seed spread {3 * spread:.3f}: the gap is {verdict}")


if __name__ == "__main__":
    main()
