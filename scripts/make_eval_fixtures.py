#!/usr/bin/env python3
"""Writes Tests/EvaluationTests/Fixtures/eval_metrics.safetensors: feature sets and what numpy
and scipy make of them, for the Swift tests of Fréchet distance and improved precision/recall
(Kynkäänniemi et al. 2019). Needs numpy and scipy only (the safetensors file is written by hand,
so no torch or safetensors package is needed). Deterministic: the same bytes on every run.

    python3 scripts/make_eval_fixtures.py
"""
import json
import os
import struct

import numpy as np
import scipy.linalg

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "Tests/EvaluationTests/Fixtures/eval_metrics.safetensors")
rng = np.random.default_rng(20261201)


def frechet(a, b):
    """||mu_a - mu_b||^2 + Tr(Ca + Cb - 2 sqrtm(Ca Cb)), covariances with ddof = 1, as
    pytorch-fid and clean-fid compute it."""
    mu1, mu2 = a.mean(0), b.mean(0)
    c1, c2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    s = scipy.linalg.sqrtm(c1 @ c2)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(c1 + c2 - 2 * s.real))


def sqdist(x, y):
    return ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)


def precision_recall(real, fake, k):
    """The k-NN manifold estimate: a point's ball reaches its k-th nearest neighbour in its own
    set (itself excluded: after sorting, index 0 is the point itself). Returns the counts of
    covered points (exact integers: precision = count / len(fake), recall = count / len(real))."""
    r_radii = np.sort(sqdist(real, real), axis=1)[:, k]
    f_radii = np.sort(sqdist(fake, fake), axis=1)[:, k]
    precision = (sqdist(fake, real) <= r_radii[None, :]).any(axis=1).sum()
    recall = (sqdist(real, fake) <= f_radii[None, :]).any(axis=1).sum()
    return int(precision), int(recall)


tensors = {}
expected = {}
# Fréchet distance: correlated Gaussians of different means and covariances.
d = 6
A = rng.normal(size=(d, d))
B = rng.normal(size=(d, d)) * 0.7
fd_real = (rng.normal(size=(400, d)) @ A).astype(np.float32)
fd_fake = (rng.normal(size=(300, d)) @ B + 0.5).astype(np.float32)
tensors["fd_real"], tensors["fd_fake"] = fd_real, fd_fake
expected["fd"] = frechet(fd_real.astype(np.float64), fd_fake.astype(np.float64))
expected["fd_self"] = frechet(fd_real.astype(np.float64), fd_real.astype(np.float64))

# Precision and recall: the fake set is shifted, squeezed along one axis, and partly collapsed,
# so that neither number is 0 or 1.
pr_real = rng.normal(size=(300, 5)).astype(np.float32)
fake = rng.normal(size=(200, 5))
fake[:, 0] = fake[:, 0] * 0.3 + 0.8
fake[:60] = fake[:60] * 0.2 + 1.5
pr_fake = fake.astype(np.float32)
tensors["pr_real"], tensors["pr_fake"] = pr_real, pr_fake
for k in (1, 3, 5):
    p, r = precision_recall(pr_real.astype(np.float64), pr_fake.astype(np.float64), k)
    expected[f"precision_count_k{k}"], expected[f"recall_count_k{k}"] = p, r

# A canonical safetensors file: sorted keys, F32 little-endian, metadata as JSON strings.
header, blobs, offset = {}, [], 0
for name in sorted(tensors):
    t = np.ascontiguousarray(tensors[name], dtype="<f4")
    header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + t.nbytes]}
    blobs.append(t.tobytes())
    offset += t.nbytes
header["__metadata__"] = {"expected": json.dumps(expected, sort_keys=True),
                          "made_by": "scripts/make_eval_fixtures.py (numpy %s, scipy %s)" % (np.__version__, scipy.__version__)}
text = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
text += b" " * (-len(text) % 8)
os.makedirs(os.path.dirname(OUT), exist_ok=True)
with open(OUT, "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
print(OUT, json.dumps(expected, indent=1, sort_keys=True))
