"""Training and evaluation from Python: the library's training run, as `batchpole train` runs it."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Callable

from . import _batchpole


class _ProgressLine:
    """A one-line progress display on stderr, redrawn at most every half second."""

    def __init__(self) -> None:
        self._last = 0.0
        self._shown = False

    def __call__(self, p: dict[str, Any]) -> None:
        now = time.monotonic()
        if not p["done"] and now - self._last < 0.5:
            return
        self._last = now
        line = (f"update {p['update']}  steps {p['env_steps']:,}  "
                f"{p['env_steps_per_s'] / 1e6:.2f}M steps/s  return {p['mean_return']:.1f} "
                f"({p['recent_episodes']:.0f} episodes)  {p['wall_s']:.1f} s")
        if sys.stderr.isatty():
            sys.stderr.write("\r\033[K" + line + ("\n" if p["done"] else ""))
        elif p["done"]:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def train(algo: str | None = None, *,
          progress: Callable[[dict[str, Any]], None] | None = None,
          **config: Any) -> dict[str, Any]:
    """Trains as `batchpole train` does and returns its summary.json as a dict.

    algo: "reinforce", "baseline", "a2c" (the default, as the command line's) or "ppo"; leave
    it out when resuming, which continues the checkpoint's configuration.

    Keywords are the keys of `batchpole train --config FILE.json` (batchpole.train_keys()):
    envs, n_steps, lr, gamma, seed, precision, reward, device, threads, env_steps, updates,
    seconds, target_return, out, checkpoint_every, resume, preset, quiet, ... Each is checked by
    the same table as the command line's flag, so the two cannot disagree. The run writes
    metrics.csv, checkpoint.bin and summary.json to `out` (default runs/ALGO-TIMESTAMP).
    agents=K trains a population of K agents (seeds seed .. seed + K - 1, each exactly as
    alone); sweep="lr=1e-3,3e-3;entropy_coef=0,0.01" trains one for every point, and the
    summary then lists the agents and their aggregate (README, "Populations and sweeps").

    progress: called after every update with a dict (update, env_steps, episodes, wall_s,
    env_steps_per_s, budget_fraction, recent_episodes, mean_return, mean_length, policy_loss,
    value_loss, entropy, grad_norm, done, and for populations agents, solved, active,
    population_env_steps, population_mean_return). Without it a progress line goes to stderr unless
    quiet=True.

    Ctrl-C (or an exception raised by `progress`) stops the run as on the command line: the
    checkpoint and summary are written, then the exception propagates. A loss or gradient that
    is not finite raises RuntimeError (the last good checkpoint is kept).
    """
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be callable, got {type(progress).__name__}")
    keys = dict(config)
    if algo is not None:
        keys["algo"] = algo
    quiet = bool(keys.get("quiet", False))
    if progress is None and not quiet:
        progress = _ProgressLine()

    def message(text: str) -> None:
        if not quiet:
            sys.stderr.write(text + "\n")

    code, _out_dir, summary, text = _batchpole.train(keys, progress, message)
    if code == 1:
        raise RuntimeError(text)
    message(text)
    return json.loads(summary)


def evaluate(checkpoint: str | os.PathLike[str], *, episodes: int = 100, greedy: bool = False,
             seed: int = 12345, device: str = "auto", threads: int = 0) -> dict[str, Any]:
    """Plays whole episodes with a checkpoint's policy, as `batchpole eval --json`.

    checkpoint: a checkpoint.bin or the run directory that holds one. Returns a dict with
    mean_return, std_return, min_return, max_return, returns (one per episode), episodes, algo,
    greedy, device and checkpoint.
    """
    path = os.fspath(checkpoint)
    if os.path.isdir(path):
        path = os.path.join(path, "checkpoint.bin")
    for name, value in (("episodes", episodes), ("seed", seed), ("threads", threads)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not isinstance(greedy, bool):
        raise TypeError(f"greedy must be a bool, got {type(greedy).__name__}")
    if not isinstance(device, str):
        raise TypeError(f"device must be a str, got {type(device).__name__}")
    if not 0 <= seed < 1 << 64:
        raise ValueError(f"seed must be in [0, 2^64), got {seed}")
    return _batchpole.evaluate(path, episodes, greedy, seed, device, threads)


def train_keys() -> list[str]:
    """The keyword arguments train() takes: the keys of `batchpole train --config`."""
    return list(_batchpole.config_keys(False)) + list(_batchpole.config_keys(True))
