#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build, test and run the toolkit.
# Idempotent: skips apt when every package is already present.
set -euo pipefail
PKGS="libopenblas-dev libhdf5-dev libpng-dev zlib1g-dev pkg-config hdf5-tools unifont dataset-fashion-mnist libopenmpi-dev openmpi-bin"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "setup: installing$missing" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi
# h5py lets one test open our triplet files the way a Python user would (the test skips without it).
python3 -c "import h5py" 2>/dev/null || pip install -q h5py >/dev/null 2>&1 || echo "setup: h5py not installed; its test will be skipped" >&2
