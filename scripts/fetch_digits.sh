#!/usr/bin/env bash
# Re-creates datasets/digits/digits.csv.gz from the scikit-learn 1.9.1 wheel and checks its
# SHA-256 against datasets/digits/README.md. The file is committed; this script documents (and
# re-checks) where it came from.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
expected="09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

python3 -m pip download --no-deps --only-binary=:all: scikit-learn==1.9.1 -d "$tmp" >/dev/null
wheel="$(ls "$tmp"/scikit_learn-1.9.1-*.whl | head -n 1)"
# The wheel is a zip; any platform's wheel carries the same data file.
python3 - "$wheel" "$tmp/digits.csv.gz" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    data = z.read("sklearn/datasets/data/digits.csv.gz")
open(sys.argv[2], "wb").write(data)
PY
got="$(sha256sum "$tmp/digits.csv.gz" | cut -d' ' -f1)"
if [ "$got" != "$expected" ]; then
    echo "fetch_digits: sha256 mismatch: got $got, expected $expected" >&2
    exit 1
fi
mkdir -p "$root/datasets/digits"
cp "$tmp/digits.csv.gz" "$root/datasets/digits/digits.csv.gz"
echo "datasets/digits/digits.csv.gz: ok ($got)"
