#!/usr/bin/env bash
# GPU check of the Python module: its pytest suite with a GPU required (the CUDA tests must run,
# a skipped one fails), then step through Python on the GPU and the CPU.
#
# The GPU machines have Python 3.12 with NumPy, PyTorch and pytest, but no Gymnasium, no
# OpenBLAS and no network, so the check runs in two halves, like scripts/gpu-check.sh:
#
#   here (CPU machine):  scripts/gpu-check-python.sh --prepare
#       builds a CPython 3.12 wheel with the CUDA plugin (sm_90) with pyenv's python3.12 (or
#       $PYTHON312), and packs it, Gymnasium's wheels and the shared libraries the module loads
#       (OpenBLAS, libgomp, ...) into gpu-bundle-py/ (git-ignored, about 45 MB);
#   there (device tool): bash scripts/gpu-check-python.sh    with carry ["gpu-bundle-py"]
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=gpu-bundle-py

prepare() {
  local py=${PYTHON312:-python3.12}
  if ! "$py" -c '' 2>/dev/null; then  # pyenv's shim refuses a version that is not selected
    py=$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12 2>/dev/null | tail -1)
    [ -n "$py" ] || { echo "no Python 3.12 here: set PYTHON312" >&2; exit 2; }
  fi
  rm -rf "$bundle"
  mkdir -p "$bundle/wheels" "$bundle/lib" "$bundle/unpacked"
  PATH=/usr/local/cuda/bin:$PATH CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) BATCHPOLE_CUDA=ON \
    "$py" -m pip wheel -q --no-deps -w "$bundle/wheels" .
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_17_x86_64 -d "$bundle/wheels" \
    gymnasium==1.4.0 farama-notifications cloudpickle typing-extensions
  python3 -m zipfile -e "$bundle"/wheels/batchpole-*.whl "$bundle/unpacked"
  # Every shared library the module and its plugin load, except the C and C++ runtimes, the
  # loader, Python's own and CUDA's: the GPU machine has them, and PyTorch there needs its own
  # (newer) libstdc++, which ours must not shadow.
  ldd "$bundle"/unpacked/batchpole/*.so | awk '/=> \// {print $3}' | sort -u |
    grep -v -E '/(libc|libm|libpthread|libdl|librt|libstdc\+\+|libgcc_s|libpython[^/]*|ld-linux[^/]*)\.so|libcu(blas|dart)' |
    while read -r lib; do cp -L "$lib" "$bundle/lib/"; done
  rm -rf "$bundle/unpacked"
  git rev-parse --short HEAD >"$bundle/commit"
  du -sh "$bundle"
  echo "prepared $bundle/ for commit $(cat "$bundle/commit"): now run" \
       "'bash scripts/gpu-check-python.sh' through the device tool with carry [\"$bundle\"]"
}

run() {
  [ -d "$bundle/wheels" ] || { echo "no $bundle/: run $0 --prepare first" >&2; exit 2; }
  echo "== commit $(cat "$bundle/commit"), $(date -u +%FT%TZ)"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/bp-site "$bundle"/wheels/*.whl
  local cuda_lib=/usr/local/cuda/lib64
  command -v nvcc >/dev/null && cuda_lib=$(dirname "$(command -v nvcc)")/../lib64
  export PYTHONPATH=/tmp/bp-site PYTHONUNBUFFERED=1 BATCHPOLE_REQUIRE_GPU=1
  export LD_LIBRARY_PATH="$PWD/$bundle/lib:$cuda_lib:${LD_LIBRARY_PATH:-}"
  local status=0
  python3 -c "import batchpole, json; print(json.dumps(batchpole.cuda_status()))" || status=1
  echo "== pytest (GPU required)"
  timeout 200 python3 -m pytest -q -rs -p no:cacheprovider python/tests || status=1
  echo "== step through Python, f32, NEXT_STEP, int32 actions on the env's device"
  timeout 120 python3 - <<'EOF' || status=1
import time

import numpy as np
import torch

import batchpole

for device, sizes in (("cuda", (65536, 1 << 20, 1 << 24)), ("cpu", (65536, 1 << 20))):
    for n in sizes:
        env = batchpole.VectorEnv(n, device=device)
        env.reset(seed=0)
        gen = torch.Generator(device=device).manual_seed(0)
        acts = torch.randint(0, 2, (16, n), dtype=torch.int32, device=device, generator=gen)
        for i in range(20):
            env.step(acts[i % 16])
        rates = []
        for _ in range(5):
            k = max(10, min(2000, (1 << 27) // n))
            t0 = time.perf_counter()
            for i in range(k):
                env.step(acts[i % 16])
            rates.append(n * k / (time.perf_counter() - t0))
        print(f"{device:4s} {n:>9d} envs: {np.median(rates) / 1e6:10.1f}M env steps/s "
              f"(median of 5; {env.device_description})")
        env.close()
EOF
  echo "== $([ $status = 0 ] && echo PASS || echo FAIL)"
  return $status
}

case "${1:-}" in
  --prepare) prepare ;;
  -h|--help) sed -n '2,13p' "$0" ;;
  *) run "$@" ;;
esac
