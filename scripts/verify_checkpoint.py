#!/usr/bin/env python3
"""Verifies the content checksum (metadata key `content_sha256`) of reflow safetensors files with
the Python standard library alone, as ARCHITECTURE.md ("Checkpoints") defines it:
SHA-256 over the data section, then per tensor sorted by name (UTF-8 byte order): name, dtype,
shape (comma-separated), begin, end; then per metadata entry except the checksum, sorted by key:
key, value; each field UTF-8 followed by one 0x00 byte.
Usage: scripts/verify_checkpoint.py FILE...   Exit status 1 when a file does not match."""
import hashlib, json, struct, sys

def verify(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8:8 + n])
    meta = header.pop("__metadata__", {})
    want = meta.pop("content_sha256", None)
    if want is None:
        return f"{path}: no content_sha256 (not written by reflow): not checked"
    h = hashlib.sha256(b[8 + n:])
    fields = []
    for name in sorted(header, key=lambda k: k.encode()):
        e = header[name]
        fields += [name, e["dtype"], ",".join(map(str, e["shape"])), str(e["data_offsets"][0]), str(e["data_offsets"][1])]
    for k in sorted(meta, key=lambda k: k.encode()):
        fields += [k, meta[k]]
    h.update(b"".join(f.encode() + b"\0" for f in fields))
    if h.hexdigest() != want:
        raise SystemExit(f"{path}: DAMAGED (content hashes to {h.hexdigest()}, content_sha256 says {want})")
    return f"{path}: ok ({len(header)} tensors)"

if __name__ == "__main__":
    for p in sys.argv[1:]:
        print(verify(p))
