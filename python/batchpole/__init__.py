"""batchpole: batched CartPole-v1 on the CPU and the GPU, as Gymnasium environments.

    import batchpole, gymnasium
    envs = batchpole.VectorEnv(65536)                   # or gymnasium.make_vec("batchpole/CartPole-v1", ...)
    obs, info = envs.reset(seed=0)
    obs, reward, terminated, truncated, info = envs.step(envs.action_space.sample())

    summary = batchpole.train(algo="a2c", seed=1, quiet=True)   # the keys of `batchpole train`
    batchpole.evaluate(summary_dir + "/checkpoint.bin")

The environments step in the C++ engine (OpenMP/SIMD on the CPU, CUDA kernels on the GPU), with
Gymnasium 1.x's autoreset modes; see VectorEnv.
"""

from __future__ import annotations


def _check_cpu() -> None:
    # The library is compiled for a CPU level (AVX2 and FMA by default); a CPU without it would
    # die of an illegal instruction inside the module instead of saying why.
    import platform

    from . import _build

    if _build.MARCH != "x86-64-v3" or platform.machine().lower() not in ("x86_64", "amd64"):
        return
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = next((line.split(":", 1)[1].split() for line in f
                          if line.startswith("flags")), None)
    except OSError:
        return
    if flags is not None and not {"avx2", "fma"} <= set(flags):
        raise ImportError(
            "batchpole was built for x86-64-v3 (AVX2 and FMA), which this CPU lacks; rebuild "
            "it with: pip install . -Ccmake.define.BATCHPOLE_MARCH=x86-64-v2")


_check_cpu()

from ._batchpole import __version__  # noqa: E402
from ._batchpole import cuda_status  # noqa: E402
from ._train import evaluate, train, train_keys  # noqa: E402
from ._vector import CartPoleEnv, VectorEnv  # noqa: E402

ENV_ID = "batchpole/CartPole-v1"


def _register() -> None:
    import gymnasium

    if ENV_ID in gymnasium.registry:
        return
    # The spec's time limit, as Gymnasium's own CartPole-v1: make() wraps the single env in
    # TimeLimit(500), and make_vec passes max_episode_steps=500 to VectorEnv, whose engine
    # truncates itself.
    gymnasium.register(
        id=ENV_ID,
        entry_point="batchpole._vector:CartPoleEnv",
        vector_entry_point="batchpole._vector:VectorEnv",
        max_episode_steps=500,
        reward_threshold=475.0,
    )


_register()

__all__ = ["ENV_ID", "CartPoleEnv", "VectorEnv", "__version__", "cuda_status", "evaluate",
           "train", "train_keys"]
