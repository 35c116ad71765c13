#!/usr/bin/env python3
"""Compare batchpole's CartPole throughput with peer implementations on this machine.

Measured in one run, on the same machine, at the same batch sizes:

  * batchpole  - the CLI (`batchpole bench env --device cpu`), modes `fused` and `step`;
  * batchpole python - the Python module (`pip install .`): batchpole.VectorEnv(N) on the CPU,
                 its default NEXT_STEP autoreset, `step` called from Python with NumPy actions
                 of the action space's dtype (int64), as a Gymnasium user would;
  * gymnasium  - gymnasium.envs.classic_control.cartpole.CartPoleVectorEnv (NumPy, one thread);
  * envpool    - envpool.make("CartPole-v1", env_type="gymnasium"), synchronous mode
                 (batch_size == num_envs); each --envpool-threads setting is measured and
                 the fastest reported;
  * torch      - (only with --torch) the notebook-style single-environment loop: one
                 gymnasium CartPole-v1 env and a 4->64->64->2 ReLU policy sampled with
                 torch.distributions.Categorical, one forward per env step;
  * batchpole bench train - recorded if the CLI has that command, skipped otherwise.

All rates are environment steps per second (= num_envs * steps / seconds), random actions,
auto-reset included. Every measurement is repeated --repeats times and the median is reported.
Peers use actions pre-generated with NumPy (not timed); batchpole generates its random actions on
the device inside the timed loop.

Each peer measurement runs in its own Python subprocess with a timeout, so a broken or missing
package (or a hang) is recorded as "not available: <reason>" and the run goes on.

Exit status: 0 on success, 1 if a batchpole measurement failed, 2 on usage errors or when the
batchpole binary is missing / not executable.

Example:
  python3 bench/peers.py --json-out out/peers.json --markdown-out out/peers.md
  python3 bench/peers.py --envs 1,1024 --repeats 5 --torch
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ENVS = "1,64,1024,16384,65536"
MODES = ("fused", "step")

# Cap on the pre-generated action table of the peers (elements); beyond it actions are reused
# cyclically, which keeps memory bounded at large batch sizes.
MAX_ACTION_ELEMENTS = 1 << 22


# --------------------------------------------------------------------------------------------
# Workers: run inside a subprocess (`peers.py --_worker KIND ...`), print one JSON object.
# --------------------------------------------------------------------------------------------

def _timed_rates(step_fn, num_envs: int, seconds: float, repeats: int) -> dict[str, Any]:
    """Calibrate a step count worth ~`seconds`, then time `repeats` runs of it.

    step_fn(k) performs k batched steps. The calibration doubles as the warm-up.
    """
    k = 1
    while True:
        t0 = time.perf_counter()
        step_fn(k)
        dt = time.perf_counter() - t0
        if dt >= min(0.2, seconds / 4) or k >= 1 << 24:
            break
        k *= 2
    per_step = dt / k
    steps = max(1, math.ceil(seconds / per_step))
    rates, times = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step_fn(steps)
        dt = time.perf_counter() - t0
        rates.append(num_envs * steps / dt)
        times.append(dt)
    return {
        "env_steps_per_s": statistics.median(rates),
        "env_steps_per_s_all": rates,
        "steps_per_repeat": steps,
        "seconds_per_repeat": times,
    }


def _action_table(rng, num_envs: int, steps_hint: int, dtype) -> Any:
    rows = max(1, min(steps_hint, MAX_ACTION_ELEMENTS // max(1, num_envs)))
    return rng.integers(0, 2, size=(rows, num_envs)).astype(dtype)


def _worker_gymnasium(num_envs: int, seconds: float, repeats: int, seed: int,
                      threads: int = 0) -> dict[str, Any]:
    import gymnasium
    import numpy as np
    from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

    env = CartPoleVectorEnv(num_envs=num_envs)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    dtype = getattr(env.action_space, "dtype", np.int64) or np.int64
    actions = _action_table(rng, num_envs, 4096, dtype)
    rows = actions.shape[0]
    pos = [0]

    def step_fn(k: int) -> None:
        i = pos[0]
        step = env.step
        for _ in range(k):
            step(actions[i])
            i += 1
            if i == rows:
                i = 0
        pos[0] = i

    result = _timed_rates(step_fn, num_envs, seconds, repeats)
    env.close()
    result["version"] = gymnasium.__version__
    result["threads"] = 1
    return result


def _worker_batchpole_python(num_envs: int, seconds: float, repeats: int, seed: int,
                             threads: int = 0, precision: str = "f32") -> dict[str, Any]:
    import batchpole
    import numpy as np

    env = batchpole.VectorEnv(num_envs, precision=precision, threads=threads)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    actions = _action_table(rng, num_envs, 4096, env.action_space.dtype)
    rows = actions.shape[0]
    pos = [0]

    def step_fn(k: int) -> None:
        i = pos[0]
        step = env.step
        for _ in range(k):
            step(actions[i])
            i += 1
            if i == rows:
                i = 0
        pos[0] = i

    result = _timed_rates(step_fn, num_envs, seconds, repeats)
    result["version"] = batchpole.__version__
    result["threads"] = threads or (os.cpu_count() or 1)
    result["device"] = env.device_description
    env.close()
    return result


def _worker_envpool(num_envs: int, seconds: float, repeats: int, seed: int,
                    threads: int = 0) -> dict[str, Any]:
    import numpy as np
    import envpool

    env = envpool.make("CartPole-v1", env_type="gymnasium", num_envs=num_envs,
                       batch_size=num_envs, num_threads=threads, seed=seed)
    env.reset()
    rng = np.random.default_rng(seed)
    actions = _action_table(rng, num_envs, 4096, np.int32)
    rows = actions.shape[0]
    pos = [0]

    def step_fn(k: int) -> None:
        i = pos[0]
        step = env.step
        for _ in range(k):
            step(actions[i])
            i += 1
            if i == rows:
                i = 0
        pos[0] = i

    result = _timed_rates(step_fn, num_envs, seconds, repeats)
    used = env.config.get("num_threads", threads)
    env.close()
    result["version"] = getattr(envpool, "__version__", "?")
    result["threads"] = used if used else min(num_envs, os.cpu_count() or 1)
    return result


def _worker_torch(num_envs: int, seconds: float, repeats: int, seed: int,
                  threads: int = 0) -> dict[str, Any]:
    import gymnasium as gym
    import torch
    import torch.nn as nn
    from torch.distributions import Categorical

    del num_envs, threads  # always one environment, torch's default thread count
    torch.manual_seed(seed)

    class PolicyNetwork(nn.Module):
        def __init__(self, obs_dim: int = 4, hidden: int = 64, n_actions: int = 2) -> None:
            super().__init__()
            self.net = nn.Sequential(
                nn.Linear(obs_dim, hidden), nn.ReLU(),
                nn.Linear(hidden, hidden), nn.ReLU(),
                nn.Linear(hidden, n_actions),
            )

        def forward(self, x):
            return torch.softmax(self.net(x), dim=-1)

    env = gym.make("CartPole-v1")
    policy = PolicyNetwork()
    state, _ = env.reset(seed=seed)
    log_probs: list = []  # kept as a REINFORCE notebook would (autograd graph alive); no backward

    def step_fn(k: int) -> None:
        nonlocal state
        for _ in range(k):
            s = torch.from_numpy(state).float().unsqueeze(0)
            probs = policy(s)
            m = Categorical(probs)
            action = m.sample()
            log_probs.append(m.log_prob(action))
            state, _reward, terminated, truncated, _ = env.step(action.item())
            if terminated or truncated:
                state, _ = env.reset()
                log_probs.clear()

    result = _timed_rates(step_fn, 1, seconds, repeats)
    env.close()
    result["version"] = torch.__version__
    result["threads"] = torch.get_num_threads()
    return result


WORKERS = {"gymnasium": _worker_gymnasium, "envpool": _worker_envpool, "torch": _worker_torch,
           "batchpole_python": _worker_batchpole_python}


def _run_worker_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--_worker", choices=sorted(WORKERS))
    p.add_argument("--num-envs", type=int, default=1)
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--precision", default="f32")
    a = p.parse_args(argv)
    import warnings
    warnings.filterwarnings("ignore")
    try:
        extra = {"precision": a.precision} if a._worker == "batchpole_python" else {}
        out = WORKERS[a._worker](a.num_envs, a.seconds, a.repeats, a.seed, a.threads, **extra)
        out["ok"] = True
    except ImportError as e:
        out = {"ok": False, "error": f"not available: {type(e).__name__}: {e}"}
    except Exception as e:  # noqa: BLE001 - any failure is recorded, never fatal
        out = {"ok": False, "error": f"failed: {type(e).__name__}: {e}"}
    print("@@RESULT@@" + json.dumps(out))
    return 0


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------

def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _short_error(text: str, limit: int = 300) -> str:
    text = " ".join(text.strip().split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run_peer(kind: str, num_envs: int, args, threads: int = 0) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_worker", kind,
           "--num-envs", str(num_envs), "--seconds", str(args.torch_seconds if kind == "torch"
                                                         else args.seconds),
           "--repeats", str(args.repeats), "--seed", str(args.seed), "--threads", str(threads),
           "--precision", args.precision]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"failed: timed out after {args.timeout:g} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("@@RESULT@@"):
            return json.loads(line[len("@@RESULT@@"):])
    return {"ok": False, "error": f"failed: worker exited {proc.returncode}: "
                                  f"{_short_error(proc.stderr or proc.stdout)}"}


def run_envpool_best(num_envs: int, args) -> dict[str, Any]:
    """EnvPool at each --envpool-threads setting; the fastest median is reported."""
    cores = os.cpu_count() or 1
    settings = []
    for t in args.envpool_threads:  # 0 means all cores; drop settings that coincide
        eff = min(t if t else cores, num_envs)
        if eff not in [e for _, e in settings]:
            settings.append((t, eff))
    tried, best = [], None
    for t, eff in settings:
        _log(f"[peers] envpool   envs={num_envs} threads={eff} ...")
        res = run_peer("envpool", num_envs, args, threads=eff)
        if not res.get("ok"):
            if best is None:
                best = res
            if "not available" in res.get("error", ""):
                return res
            tried.append({"threads": eff, "error": res.get("error")})
            continue
        tried.append({"threads": eff, "env_steps_per_s": res["env_steps_per_s"]})
        if best is None or not best.get("ok") or res["env_steps_per_s"] > best["env_steps_per_s"]:
            best = res
    best = dict(best)
    best["threads_tried"] = tried
    return best


def _run_json_cmd(cmd: list[str], timeout: float) -> tuple[dict[str, Any] | None, str]:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:g} s"
    except OSError as e:
        return None, f"could not run: {e}"
    if proc.returncode != 0:
        return None, f"exit {proc.returncode}: {_short_error(proc.stderr or proc.stdout)}"
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return None, f"output is not JSON: {_short_error(proc.stdout)}"
    if not isinstance(data, dict) or "env_steps_per_s" not in data:
        return None, "JSON has no env_steps_per_s"
    return data, ""


def run_batchpole_env(binary: str, num_envs: int, mode: str, args) -> dict[str, Any]:
    base = [binary, "bench", "env", "--device", "cpu", "--envs", str(num_envs),
            "--precision", args.precision, "--mode", mode, "--seed", str(args.seed),
            "--threads", str(args.batchpole_threads), "--json"]
    # Calibration: 3 x ~2M env steps (well under a second), median rate sizes the timed repeats.
    cal_steps = max(10, 2_000_000 // num_envs)
    cal, err = _run_json_cmd(base + ["--steps", str(cal_steps), "--repeats", "3"], args.timeout)
    if cal is None:
        return {"ok": False, "error": f"failed: {err}"}
    rate = max(float(cal["env_steps_per_s"]), 1.0)
    max_steps = 50_000_000
    steps = int(min(max(10, args.seconds * rate / num_envs), max_steps))
    for attempt in range(2):
        data, err = _run_json_cmd(base + ["--steps", str(steps), "--repeats", str(args.repeats)],
                                  args.timeout)
        if data is None:
            return {"ok": False, "error": f"failed: {err}"}
        rate = max(float(data["env_steps_per_s"]), 1.0)
        seconds = num_envs * steps / rate
        # Calibration was too optimistic (rates are noisy on shared cores): repeats came out
        # much shorter than --seconds. Re-measure once with the step count rescaled (<= 10x).
        if attempt == 0 and seconds < 0.4 * args.seconds and steps < max_steps:
            steps = int(min(steps * min(10.0, args.seconds / seconds), max_steps))
            continue
        break
    return {"ok": True, "env_steps_per_s": float(data["env_steps_per_s"]),
            "env_steps_per_s_all": data.get("env_steps_per_s_all"),
            "steps_per_repeat": data.get("steps_per_repeat", steps),
            "device": data.get("device"), "version": data.get("version")}


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    return {"cpu_model": cpu, "logical_cores": os.cpu_count(), "usable_cores": usable,
            "os": platform.platform(), "python": platform.python_version()}


def git_info() -> dict[str, Any]:
    def git(*a: str) -> str | None:
        try:
            p = subprocess.run(["git", *a], cwd=REPO_ROOT, capture_output=True, text=True,
                               timeout=10, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return p.stdout.strip() if p.returncode == 0 else None

    commit = git("rev-parse", "--short", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit or "unknown", "dirty": bool(status) if status is not None else None}


def fmt_rate(x: float | None) -> str:
    if x is None:
        return "n/a"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:.3g}"


def fmt_ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b <= 0:
        return "n/a"
    r = a / b
    return f"{r:.3g}x" if r < 1000 else f"{r:,.0f}x"


def _rate(entry: dict[str, Any] | None) -> float | None:
    return entry["env_steps_per_s"] if entry and entry.get("ok") else None


COLUMNS = ["batch size", "batchpole fused", "batchpole step", "batchpole python",
           "gymnasium vector", "envpool", "fused/gymnasium", "step/gymnasium",
           "python/gymnasium", "python/step", "fused/envpool", "step/envpool"]


def table_rows(report: dict[str, Any]) -> list[list[str]]:
    rows = []
    for r in report["results"]:
        f, s = _rate(r["batchpole_fused"]), _rate(r["batchpole_step"])
        g, e = _rate(r["gymnasium"]), _rate(r["envpool"])
        py = _rate(r.get("batchpole_python"))
        rows.append([str(r["num_envs"]), fmt_rate(f), fmt_rate(s), fmt_rate(py), fmt_rate(g),
                     fmt_rate(e), fmt_ratio(f, g), fmt_ratio(s, g), fmt_ratio(py, g),
                     fmt_ratio(py, s), fmt_ratio(f, e), fmt_ratio(s, e)])
    return rows


def notes(report: dict[str, Any]) -> list[str]:
    out = []
    seen = set()
    for r in report["results"]:
        for key in ("batchpole_fused", "batchpole_step", "batchpole_python", "gymnasium",
                    "envpool"):
            entry = r.get(key)
            if entry and not entry.get("ok"):
                msg = f"{key}: {entry['error']}"
                if key in ("batchpole_python", "gymnasium", "envpool") \
                        and "not available" in entry["error"]:
                    if key in seen:
                        continue
                    seen.add(key)
                    out.append(msg)
                else:
                    out.append(f"{key} @ {r['num_envs']} envs: {entry['error']}")
    for r in report["results"]:
        for key in ("batchpole_fused", "batchpole_step", "batchpole_python", "gymnasium",
                    "envpool"):
            entry = r.get(key)
            vals = (entry or {}).get("env_steps_per_s_all") or []
            if entry and entry.get("ok") and len(vals) > 1 and min(vals) > 0 \
                    and max(vals) / min(vals) > 1.5:
                out.append(f"noisy: {key} @ {r['num_envs']} envs, repeats ranged "
                           f"{fmt_rate(min(vals))}..{fmt_rate(max(vals))}")
    ep = [(r["num_envs"], r["envpool"]) for r in report["results"]
          if r.get("envpool") and r["envpool"].get("ok")]
    if ep:
        tried = sorted({x["threads"] for _, e in ep for x in e.get("threads_tried", [])})
        out.append("envpool num_threads used (fastest of " + "/".join(map(str, tried))
                   + " tried): " + ", ".join(f"{n} envs: {e.get('threads')}" for n, e in ep))
    t = report.get("torch_single_env")
    if t is not None:
        if t.get("ok"):
            f1 = _rate(report["results"][0]["batchpole_fused"]) if report["results"] else None
            n1 = report["results"][0]["num_envs"] if report["results"] else None
            out.append(f"torch single-env notebook loop (1 env, torch {t.get('version')}, "
                       f"{t.get('threads')} threads): {fmt_rate(t['env_steps_per_s'])} steps/s"
                       + (f"; batchpole fused @ {n1} envs is {fmt_ratio(f1, t['env_steps_per_s'])}"
                          if f1 else "")
                       + (f", best batchpole is {fmt_ratio(report['best_batchpole'], t['env_steps_per_s'])}"
                          if report.get("best_batchpole") else ""))
        else:
            out.append(f"torch single-env notebook loop: {t['error']}")
    bt = report.get("batchpole_train")
    if bt is not None:
        if bt.get("ok"):
            out.append(f"batchpole bench train: {fmt_rate(bt['env_steps_per_s'])} env steps/s")
        else:
            out.append(f"batchpole bench train: skipped ({bt['error']})")
    return out


def render_text(report: dict[str, Any]) -> str:
    rows = [COLUMNS] + table_rows(report)
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = []
    m, g = report["machine"], report["git"]
    lines.append(f"CartPole env steps/s, median of {report['repeats']} "
                 f"(precision {report['precision']}, CPU) - {m['cpu_model']}, "
                 f"{m['usable_cores']} cores - {report['date_utc']} - commit {g['commit']}"
                 + (" (dirty)" if g.get("dirty") else ""))
    for i, row in enumerate(rows):
        lines.append("  ".join(c.rjust(widths[j]) for j, c in enumerate(row)))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    for n in notes(report):
        lines.append("* " + n)
    return "\n".join(lines)


def render_markdown(report: dict[str, Any]) -> str:
    m, g, v = report["machine"], report["git"], report["versions"]
    out = ["# batchpole vs peers: CartPole environment steps per second", "",
           f"- Date (UTC): {report['date_utc']}",
           f"- Commit: `{g['commit']}`" + (" (working tree dirty)" if g.get("dirty") else ""),
           f"- CPU: {m['cpu_model']} ({m['usable_cores']} usable / {m['logical_cores']} logical cores)",
           f"- OS: {m['os']}; Python {m['python']}",
           "- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
           f"- Median of {report['repeats']} repeats, ~{report['seconds_per_repeat']:g} s each; "
           f"precision {report['precision']}; random actions with auto-reset; rates in env steps/s "
           "(k = 1e3, M = 1e6, G = 1e9).",
           f"- batchpole: CLI `bench env --device cpu`, {report['batchpole_threads']} threads, actions drawn on the device "
           "inside the timed loop; batchpole python: `batchpole.VectorEnv` (NEXT_STEP, same "
           "threads), gymnasium: `CartPoleVectorEnv` (NumPy, 1 thread) and envpool: "
           "`CartPole-v1` (sync mode, fastest num_threads tried) step with pre-generated NumPy "
           "actions (int64 for the first two).",
           "", "| " + " | ".join(COLUMNS) + " |",
           "|" + "|".join("---:" for _ in COLUMNS) + "|"]
    for row in table_rows(report):
        out.append("| " + " | ".join(row) + " |")
    n = notes(report)
    if n:
        out.append("")
        out.extend(f"- {x}" for x in n)
    return "\n".join(out) + "\n"


def parse_envs(text: str) -> list[int]:
    try:
        vals = [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    if not vals or any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError("batch sizes must be positive integers")
    return vals


def parse_threads(text: str) -> list[int]:
    try:
        vals = [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    if not vals or any(v < 0 for v in vals):
        raise argparse.ArgumentTypeError("thread counts must be >= 0")
    return vals


def resolve_binary(path: str) -> Path | None:
    p = Path(path)
    candidates = [p] if p.is_absolute() else [Path.cwd() / p, REPO_ROOT / p]
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    return None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="peers.py",
        description="Measure CartPole environment steps per second of batchpole (CLI, fused and "
                    "step modes) against Gymnasium's CartPoleVectorEnv and EnvPool on this "
                    "machine, at the same batch sizes, and optionally a single-env PyTorch loop. "
                    "Prints a table; optionally writes JSON and Markdown.",
        epilog="Missing optional peers (envpool, torch) are reported as 'not available' and the "
               "run goes on. Exit status: 0 ok, 1 a batchpole measurement failed, 2 usage error "
               "or batchpole binary missing.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--batchpole", default="build/batchpole", metavar="PATH",
                   help="batchpole CLI binary (relative paths are tried from the current "
                        "directory, then from the repository root)")
    p.add_argument("--envs", type=parse_envs, default=DEFAULT_ENVS, metavar="N,N,...",
                   help="comma-separated batch sizes")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per measurement; the "
                   "median is reported")
    p.add_argument("--seconds", type=float, default=1.0,
                   help="target duration of one timed repeat (batchpole, gymnasium, envpool)")
    p.add_argument("--precision", choices=("f32", "f64"), default="f32",
                   help="batchpole physics precision")
    p.add_argument("--batchpole-threads", type=int, default=0, metavar="T",
                   help="batchpole CPU threads (0 = all cores)")
    p.add_argument("--seed", type=int, default=0, help="seed of resets and actions")
    p.add_argument("--no-gymnasium", action="store_true", help="skip the Gymnasium peer")
    p.add_argument("--no-python", action="store_true",
                   help="skip batchpole's Python module (batchpole.VectorEnv)")
    p.add_argument("--no-envpool", action="store_true", help="skip the EnvPool peer")
    p.add_argument("--envpool-threads", type=parse_threads, default="1,0", metavar="T,T,...",
                   help="EnvPool num_threads settings to try at each batch size (0 = all "
                        "cores); the fastest is reported (on few cores, 1 thread often wins "
                        "because the Python thread needs a core too)")
    p.add_argument("--no-train", action="store_true",
                   help="skip `batchpole bench train --json` (it is skipped anyway if it fails)")
    p.add_argument("--torch", action="store_true",
                   help="also measure the notebook-style single-env PyTorch policy loop")
    p.add_argument("--torch-seconds", type=float, default=5.0,
                   help="target duration of one timed repeat of the torch loop")
    p.add_argument("--timeout", type=float, default=180.0,
                   help="timeout in seconds of each subprocess (one measurement)")
    p.add_argument("--json-out", metavar="PATH", help="write the full results as JSON here")
    p.add_argument("--markdown-out", metavar="PATH", help="write a Markdown table here")
    p.add_argument("--_worker", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a == "--_worker" or a.startswith("--_worker=") for a in argv):
        return _run_worker_main(argv)

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.batchpole_threads < 0:
        parser.error("--batchpole-threads must be >= 0")
    if args.seconds <= 0 or args.torch_seconds <= 0 or args.timeout <= 0:
        parser.error("--seconds, --torch-seconds and --timeout must be > 0")

    binary = resolve_binary(args.batchpole)
    if binary is None:
        print(f"error: batchpole binary not found or not executable: {args.batchpole}\n"
              f"       build it with `cmake -S . -B build -G Ninja && ninja -C build` or pass "
              f"--batchpole PATH", file=sys.stderr)
        return 2
    try:
        ver = subprocess.run([str(binary), "--version"], capture_output=True, text=True,
                             timeout=30, stdin=subprocess.DEVNULL)
        bp_version = ver.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired) as e:
        print(f"error: cannot run {binary}: {e}", file=sys.stderr)
        return 2

    report: dict[str, Any] = {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git": git_info(),
        "machine": machine_info(),
        "batchpole_binary": str(binary),
        "precision": args.precision,
        "batchpole_threads": args.batchpole_threads or (os.cpu_count() or 1),
        "repeats": args.repeats,
        "seconds_per_repeat": args.seconds,
        "envs": args.envs,
        "versions": {"batchpole": bp_version.replace("batchpole ", "")},
        "results": [],
    }

    t_start = time.perf_counter()
    unavailable: dict[str, dict[str, Any]] = {}
    for n in args.envs:
        row: dict[str, Any] = {"num_envs": n}
        for mode in MODES:
            _log(f"[peers] batchpole {mode:5s} envs={n} ...")
            row[f"batchpole_{mode}"] = run_batchpole_env(str(binary), n, mode, args)
        for kind, skip in (("batchpole_python", args.no_python),
                           ("gymnasium", args.no_gymnasium), ("envpool", args.no_envpool)):
            if skip:
                row[kind] = None
                continue
            if kind in unavailable:  # import failed once: do not retry at every size
                row[kind] = unavailable[kind]
                continue
            if kind == "envpool":
                res = run_envpool_best(n, args)
            else:
                _log(f"[peers] {kind:9s} envs={n} ...")
                res = run_peer(kind, n, args,
                               threads=args.batchpole_threads if kind == "batchpole_python" else 0)
            row[kind] = res
            if not res.get("ok") and "not available" in res.get("error", ""):
                unavailable[kind] = res
            if res.get("ok") and res.get("version") and kind != "batchpole_python":
                report["versions"][kind] = res["version"]
        report["results"].append(row)

    bests = [_rate(r[f"batchpole_{m}"]) for r in report["results"] for m in MODES]
    bests = [b for b in bests if b is not None]
    report["best_batchpole"] = max(bests) if bests else None

    if args.torch:
        _log("[peers] torch single-env loop ...")
        report["torch_single_env"] = run_peer("torch", 1, args)
        if report["torch_single_env"].get("ok"):
            report["versions"]["torch"] = report["torch_single_env"]["version"]

    if not args.no_train:
        _log("[peers] batchpole bench train ...")
        data, err = _run_json_cmd([str(binary), "bench", "train", "--json"], args.timeout)
        report["batchpole_train"] = ({"ok": True, "env_steps_per_s": float(data["env_steps_per_s"]),
                                      "raw": data} if data is not None
                                     else {"ok": False, "error": err})

    try:
        import numpy  # only for the version line
        report["versions"].setdefault("numpy", numpy.__version__)
    except ImportError:
        pass
    report["wall_seconds"] = round(time.perf_counter() - t_start, 1)

    text = render_text(report)
    print(text)
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown_out:
        Path(args.markdown_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown_out).write_text(render_markdown(report))
    _log(f"[peers] done in {report['wall_seconds']} s")

    failed = any(not r[f"batchpole_{m}"].get("ok") for r in report["results"] for m in MODES)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
