#!/usr/bin/env bash
# Installs the system packages the build needs on a fresh Debian machine:
# LightGBM (built from source by lightgbm3) wants cmake >= 3.28 and libclang
# for bindgen; the object-storage tests want the s3s-fs server. Safe to run
# again; it installs only what is missing.
set -euo pipefail

need_apt=()
for pkg in libclang1-14 libclang-common-14-dev; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

cmake_ok() {
    command -v cmake >/dev/null 2>&1 || return 1
    local v
    v=$(cmake --version | awk 'NR==1 {print $3}')
    [ "$(printf '%s\n3.28\n' "$v" | sort -V | head -n1)" = "3.28" ]
}
if ! cmake_ok; then
    python3 -m pip install -q 'cmake>=3.28'
    hash -r
fi
cmake_ok || { echo "cmake >= 3.28 not found on PATH after install" >&2; exit 1; }
echo "system packages ready: $(cmake --version | head -n1), libclang 14"

# The S3-protocol server the object-storage tests start (zeekml-testkit):
# s3s-fs 0.14.1, the last release this toolchain builds (about 2 minutes).
if ! command -v s3s-fs >/dev/null 2>&1 && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs" ]; then
    cargo install s3s-fs --version 0.14.1 --features binary --locked
fi
echo "S3 test server ready: $(command -v s3s-fs || echo "${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs")"
