#!/usr/bin/env python3
"""Checks the layout rules of ARCHITECTURE.md: no Swift file over 400 lines, no library target
over 1,500 lines (the op library, Autograd, may grow with its ops), and every `import` of a
package target names one of the importing target's declared dependencies (so no upward import).
Reads `swift package dump-package`. Exit status 1 with the offending items listed."""
import json, os, re, subprocess, sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pkg = json.loads(subprocess.run(["swift", "package", "dump-package"], cwd=root, check=True,
                                capture_output=True, text=True).stdout)
targets = {t["name"]: t for t in pkg["targets"]}
problems = []

def deps(t):
    out = set()
    for d in t["dependencies"]:
        for kind in ("byName", "target", "product"):
            if kind in d:
                out.add(d[kind][0])
    return out

for name, t in targets.items():
    path = t.get("path") or (("Tests/" if t["type"] == "test" else "Sources/") + name)
    files = [os.path.join(dp, f) for dp, _, fs in os.walk(os.path.join(root, path)) for f in fs if f.endswith(".swift")]
    total = 0
    allowed = deps(t)
    for f in files:
        text = open(f, encoding="utf-8").read()
        n = text.count("\n")
        total += n
        if n > 400:
            problems.append(f"{os.path.relpath(f, root)}: {n} lines (> 400)")
        for m in re.finditer(r"^(?:@testable )?import (\w+)", text, re.M):
            mod = m.group(1)
            if mod in targets and mod not in allowed:
                problems.append(f"{os.path.relpath(f, root)}: imports {mod}, not a dependency of {name}")
    if t["type"] == "regular" and name != "Autograd" and total > 1500:
        problems.append(f"target {name}: {total} lines (> 1500)")

for p in problems:
    print(p)
print(f"layout: {len(targets)} targets checked, {len(problems)} problems")
sys.exit(1 if problems else 0)
