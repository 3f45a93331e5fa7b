#!/usr/bin/env python3
"""Pixel statistics of reflow-sample grids of 8x8 gray images (the digits; reflow-sample draws
them upscaled 4x with 1 px padding), with the Python standard library alone.
  scripts/lora_effect.py stats GRID.png N      -> mean pixel value in [-1, 1] of the N tiles, and
                                                  the fraction of tiles whose mean is above 0
                                                  (drawn inverted: dark strokes on white)
  scripts/lora_effect.py compare A.png B.png N -> per-pixel RMS of A + B (0: A is B inverted) and
                                                  of A - B (0: A is B), over the N tiles: grids of
                                                  the same noise and prompts, with and without a LoRA
  scripts/lora_effect.py stack OUT.png A.png B.png ...  -> the grids one above the other
A first argument --tile T:U reads grids of TxT images drawn U times larger (fashion-mnist: 28:2;
the default 8:4 is the digits'). Used by scripts/lora_transfer.py (README, "LoRA")."""
import struct, sys, zlib

TILE, UP, PAD = 8, 4, 1

def read_png(path):
    b = open(path, "rb").read()
    assert b[:8] == b"\x89PNG\r\n\x1a\n", f"{path}: not a PNG"
    pos, idat, w = 8, b"", None
    while pos < len(b):
        n, kind = struct.unpack(">I4s", b[pos:pos + 8])
        data = b[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", data[:10])
            assert depth == 8 and ctype in (0, 2), f"{path}: need 8-bit gray or RGB"
            ch = 1 if ctype == 0 else 3
        elif kind == b"IDAT":
            idat += data
        pos += 12 + n
    raw, stride = zlib.decompress(idat), w * ch
    rows, prev = [], bytearray(stride)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - ch] if i >= ch else 0
            up, c = prev[i], prev[i - ch] if i >= ch else 0
            if f == 1: line[i] = (line[i] + a) & 255
            elif f == 2: line[i] = (line[i] + up) & 255
            elif f == 3: line[i] = (line[i] + (a + up) // 2) & 255
            elif f == 4:
                p = a + up - c
                pa, pb, pc = abs(p - a), abs(p - up), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else up if pb <= pc else c)) & 255
        rows.append(bytes(line[::ch]))  # first channel (gray)
        prev = line
    return w, h, rows

def tiles(path, n):
    w, h, rows = read_png(path)
    cols = (w - PAD) // (TILE * UP + PAD)
    out = []
    for k in range(n):
        ox, oy = PAD + (k % cols) * (TILE * UP + PAD), PAD + (k // cols) * (TILE * UP + PAD)
        out.append([rows[oy + y * UP][ox + x * UP] / 255 * 2 - 1 for y in range(TILE) for x in range(TILE)])
    return out

def write_png(path, w, h, rows):
    raw = b"".join(b"\x00" + r for r in rows)
    def chunk(k, d): return struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d))
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                           + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))

if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--tile":
        TILE, UP = (int(v) for v in sys.argv[2].split(":"))
        del sys.argv[1:3]
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    if sys.argv[1] == "stats":
        t = tiles(sys.argv[2], int(sys.argv[3]))
        means = [sum(v) / len(v) for v in t]
        print(f"{sum(means) / len(means):.4f} {sum(m > 0 for m in means) / len(means):.4f}")
    elif sys.argv[1] == "compare":
        n = int(sys.argv[4])
        a = [p for t in tiles(sys.argv[2], n) for p in t]
        b = [p for t in tiles(sys.argv[3], n) for p in t]
        rms = lambda v: (sum(x * x for x in v) / len(v)) ** 0.5
        print(f"{rms([x + y for x, y in zip(a, b)]):.4f} {rms([x - y for x, y in zip(a, b)]):.4f}")
    elif sys.argv[1] == "stack":
        grids = [read_png(p) for p in sys.argv[3:]]
        w = max(g[0] for g in grids)
        rows = [r + b"\xff" * (w - len(r)) for g in grids for r in g[2]]
        write_png(sys.argv[2], w, len(rows), rows)
    else:
        sys.exit(__doc__)
