#!/usr/bin/env python3
"""Figures (PNG) and tables from what `batchpole train`, the benchmarks and `batchpole compare`
write.

Subcommands:

  curves      episode length (metrics.csv `mean_length`) against environment steps and against
              wall-clock seconds, one curve per algorithm: the mean over seeds (run directories)
              and a band (min..max or +-1 std) around it. The notebook's comparison of
              REINFORCE, REINFORCE with baseline and A2C.
  throughput  environment steps/s against the number of environments, log-log: CPU and GPU,
              f32 and f64, from Google Benchmark JSON (`batchpole_bench --benchmark_format=json`),
              with Gymnasium's CartPoleVectorEnv and EnvPool from `bench/peers.py --json-out`.
  compare     CPU and GPU training curves overlaid, from `compare_<algo>_<side>.csv` files in a
              directory (`batchpole compare --metrics-out DIR`).
  summary     a Markdown table of summary.json over seeds (median and min..max): solved,
              env_steps_to_solve, wall_s_to_solve, final_mean_return; optionally the first
              env steps / seconds at which mean_return crossed a lower threshold.
  stability   a Markdown table of how learning curves hold up over seeds (runs to a fixed
              budget): the steps to first reach a target mean return, the share of the steps
              after it spent at or above it, the lowest mean return after it, the mean return
              over the last part of the run and its spread over seeds.

Smoothing in `curves`: every run's `mean_length` is already the mean over its most recent
finished episodes (at least 100). Updates are not comparable across algorithms (one REINFORCE
update is 32 whole episodes, one A2C update 32 x 16 steps), so the extra smoothing is done on
the x axis, not over a number of updates: at each of `--points` x values on a common grid, each
run's value is the mean of its own rows in the trailing window (x - w, x], w = `--window` times
the x range (0.02: the last 2% of the axis; linear interpolation where no row falls inside).
`--smooth-updates N` instead takes a trailing mean over the last N updates of each run (the
notebook's `window = 50`, which was over episodes). A run that has stopped (target reached or
budget spent) keeps its last logged value to the right of its end (`--after-end hold`, the
default) or leaves the aggregate (`--after-end drop`). Dots mark each run's last logged point.

Exit status: 0 success, 2 usage error or missing / unreadable input (with a message).

Examples:
  scripts/plot.py curves --run reinforce='runs/reinforce-s*' --run baseline='runs/baseline-s*' \\
      --run a2c='runs/a2c-s*' --out docs/figures/notebook_comparison.png
  build/bench/batchpole_bench --benchmark_filter=BM_Env --benchmark_format=json > bench.json
  python3 bench/peers.py --json-out peers.json
  scripts/plot.py throughput --bench bench.json --peers peers.json --out throughput.png
  scripts/plot.py compare out/compare --out compare.png
  scripts/plot.py summary --run reinforce='runs/reinforce-s*' --run a2c='runs/a2c-s*'
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import math
import os
import re
import statistics
import sys
import warnings
from pathlib import Path
from typing import Any, Sequence

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
          "#7f7f7f", "#bcbd22", "#17becf"]


class InputError(Exception):
    """A missing or malformed input: reported on stderr, exit status 2."""


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------

def _plt():
    try:
        import matplotlib
    except ImportError as e:
        raise InputError(f"matplotlib is not installed ({e}); "
                         "pip install -r bench/requirements.txt") from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _np():
    try:
        import numpy as np
    except ImportError as e:
        raise InputError(f"numpy is not installed ({e}); "
                         "pip install -r bench/requirements.txt") from e
    return np


def read_csv(path: Path, required: Sequence[str]) -> dict[str, list[float]]:
    """Columns of a CSV with a header row as lists of floats (empty cells become NaN)."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}") from e
    if not rows:
        raise InputError(f"{path} is empty")
    header = [h.strip() for h in rows[0]]
    missing = [c for c in required if c not in header]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)} "
                         f"(has: {', '.join(header)})")
    body = [r for r in rows[1:] if r and any(c.strip() for c in r)]
    if not body:
        raise InputError(f"{path} has a header but no data rows")
    cols: dict[str, list[float]] = {h: [] for h in header}
    for lineno, r in enumerate(body, start=2):
        if len(r) != len(header):
            raise InputError(f"{path}:{lineno}: {len(r)} fields, header has {len(header)}")
        for h, v in zip(header, r):
            v = v.strip()
            try:
                cols[h].append(float(v) if v else math.nan)
            except ValueError:
                cols[h].append(math.nan)
    return cols


def read_json(path: Path) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}") from e
    except json.JSONDecodeError as e:
        raise InputError(f"{path} is not valid JSON: {e}") from e


def parse_run_spec(spec: str) -> tuple[str, str]:
    """LABEL=GLOB (or just GLOB: the label is the glob's directory name without -s*).

    Split at the last '=', so a label may contain one ("n=5=runs/n5-s*"); a glob may not."""
    if "=" in spec:
        label, _, pattern = spec.rpartition("=")
        label, pattern = label.strip(), pattern.strip()
        if not label or not pattern:
            raise argparse.ArgumentTypeError(f"expected LABEL=GLOB, got {spec!r}")
        return label, pattern
    name = Path(spec.rstrip("/")).name
    return re.sub(r"[-_]?s?\*.*$", "", name) or name, spec


def expand_runs(label: str, pattern: str, need: str) -> list[Path]:
    """Run directories matching `pattern` that hold the file `need` (sorted)."""
    matches = sorted(Path(p) for p in glob.glob(os.path.expanduser(pattern)))
    if not matches:
        raise InputError(f"--run {label}: {pattern!r} matches nothing")
    runs = []
    for m in matches:
        d = m.parent if m.is_file() else m
        if (d / need).is_file():
            runs.append(d)
    if not runs:
        raise InputError(f"--run {label}: none of the {len(matches)} path(s) matching "
                         f"{pattern!r} holds {need}")
    return runs


def save(fig, out: Path) -> None:
    """Write a PNG with a 256-colour palette (line plots look the same, files are ~3x smaller)."""
    import io
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)
    try:
        from PIL import Image
        img = Image.open(buf).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT,
                                                      dither=Image.Dither.NONE)
        data = io.BytesIO()
        img.save(data, format="PNG", optimize=True)
        payload = data.getvalue()
    except (ImportError, AttributeError, OSError):  # Pillow missing or old: keep matplotlib's
        payload = buf.getvalue()
    try:
        out.write_bytes(payload)
    except OSError as e:
        raise InputError(f"cannot write {out}: {e.strerror or e}") from e
    print(f"wrote {out} ({len(payload) / 1024:.0f} KB)")


def fmt_num(x: float | None) -> str:
    if x is None or (isinstance(x, float) and (math.isnan(x) or math.isinf(x))):
        return "-"
    a = abs(x)
    if a >= 1e6:
        return f"{x / 1e6:.2f}M"
    if a >= 1e4:
        return f"{x / 1e3:.0f}k"
    if a >= 100:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


# --------------------------------------------------------------------------------------------
# curves
# --------------------------------------------------------------------------------------------

X_AXES = {"steps": ("env_steps", "environment steps"), "time": ("wall_s", "wall-clock seconds")}


def trailing_mean_by_rows(values, n: int):
    np = _np()
    v = np.asarray(values, dtype=float)
    if n <= 1 or len(v) == 0:
        return v
    c = np.cumsum(np.insert(v, 0, 0.0))
    idx = np.arange(1, len(v) + 1)
    lo = np.maximum(0, idx - n)
    return (c[idx] - c[lo]) / (idx - lo)


def aggregate_curves(runs: list[dict[str, Any]], xkey: str, ykey: str, grid, window: float,
                     after_end: str, band: str):
    """Mean and band over runs on `grid`; returns (mean, lo, hi, count)."""
    np = _np()
    width = window * (grid[-1] - grid[0])
    ys = []
    for r in runs:
        x = np.asarray(r[xkey], dtype=float)
        y = np.asarray(r[ykey], dtype=float)
        ok = np.isfinite(x) & np.isfinite(y)
        x, y = x[ok], y[ok]
        if len(x) == 0:
            ys.append(np.full(len(grid), np.nan))
            continue
        end = x[-1]
        if after_end == "hold":
            # A stopped run stays at its last logged value, added as samples on the grid before
            # smoothing: a run that reached the target is held there, not at a lagging average.
            tail = grid[grid > end]
            x = np.concatenate([x, tail])
            y = np.concatenate([y, np.full(len(tail), y[-1])])
        # Trailing mean over the run's own rows with x in (g - width, g]; where no row falls in
        # the window (sparse rows, or no smoothing) the linear interpolation at g.
        yi = np.interp(grid, x, y)
        if width > 0:
            cs = np.concatenate([[0.0], np.cumsum(y)])
            hi = np.searchsorted(x, grid, side="right")
            lo = np.searchsorted(x, grid - width, side="right")
            cnt = hi - lo
            with np.errstate(invalid="ignore", divide="ignore"):
                sm = (cs[hi] - cs[lo]) / cnt
            yi = np.where(cnt > 0, sm, yi)
        yi[(grid < x[0]) | (grid > x[-1])] = np.nan
        ys.append(yi)
    Y = np.vstack(ys)
    cnt = np.sum(np.isfinite(Y), axis=0)
    with warnings.catch_warnings():  # all-NaN columns (no run there yet) stay NaN, silently
        warnings.simplefilter("ignore", category=RuntimeWarning)
        mean = np.nanmean(Y, axis=0)
        if band == "std":
            sd = np.nanstd(Y, axis=0)
            lo, hi = mean - sd, mean + sd
        else:
            lo, hi = np.nanmin(Y, axis=0), np.nanmax(Y, axis=0)
    return mean, lo, hi, cnt


def load_run(d: Path, ykey: str) -> dict[str, Any]:
    cols = read_csv(d / "metrics.csv", ["update", "env_steps", "wall_s", ykey])
    if "recent_episodes" in cols and ykey != "recent_episodes":
        # Before the first finished episode the means are 0 by convention, not a measurement.
        cols[ykey] = [v if n > 0 else math.nan for v, n in zip(cols[ykey],
                                                                cols["recent_episodes"])]
    summary = None
    if (d / "summary.json").is_file():
        summary = read_json(d / "summary.json")
    return {"dir": d, "cols": cols, "summary": summary}


def cmd_curves(args) -> int:
    np = _np()
    plt = _plt()
    groups = []
    for label, pattern in args.run:
        dirs = expand_runs(label, pattern, "metrics.csv")
        runs = [load_run(d, args.column) for d in dirs]
        if len(runs) < args.min_seeds:
            raise InputError(f"--run {label}: {len(runs)} run(s) found, --min-seeds is "
                             f"{args.min_seeds}")
        if args.smooth_updates > 1:
            for r in runs:
                r["cols"][args.column] = list(trailing_mean_by_rows(r["cols"][args.column],
                                                                    args.smooth_updates))
        groups.append((label, runs))

    axes_keys = ["steps", "time"] if args.x == "both" else [args.x]
    fig, axes = plt.subplots(1, len(axes_keys), figsize=(6.2 * len(axes_keys), 4.3), dpi=args.dpi,
                             squeeze=False)
    for ax, xk in zip(axes[0], axes_keys):
        xkey, xlabel = X_AXES[xk]
        xmax = max(max(v for v in r["cols"][xkey] if math.isfinite(v))
                   for _, runs in groups for r in runs)
        if args.xmax is not None and xk == "steps":
            xmax = min(xmax, args.xmax)
        if args.tmax is not None and xk == "time":
            xmax = min(xmax, args.tmax)
        cols_by_group = [[r["cols"] for r in runs] for _, runs in groups]
        if args.logx:
            # Grid, window and interpolation in log10(x): the window is then a fraction of the
            # decades shown, as the eye reads a log axis.
            xmin = min(v for cs in cols_by_group for c in cs
                       for v, yv in zip(c[xkey], c[args.column])
                       if math.isfinite(v) and v > 0 and math.isfinite(yv))
            xmin = min(xmin, xmax)
            grid_t = np.linspace(math.log10(xmin), math.log10(xmax), args.points)
            grid = 10.0 ** grid_t
            cols_t = [[{xkey: [math.log10(v) if v > 0 else math.nan for v in c[xkey]],
                        args.column: c[args.column]} for c in cs] for cs in cols_by_group]
        else:
            grid = grid_t = np.linspace(0.0, xmax, args.points)
            cols_t = cols_by_group
        for i, (label, runs) in enumerate(groups):
            color = COLORS[i % len(COLORS)]
            cols = cols_by_group[i]
            window = 0.0 if args.smooth_updates > 1 else args.window
            mean, lo, hi, cnt = aggregate_curves(cols_t[i], xkey, args.column, grid_t, window,
                                                 args.after_end, args.band)
            ax.plot(grid, mean, color=color, lw=1.8, label=f"{label} (n={len(runs)})")
            ax.fill_between(grid, lo, hi, color=color, alpha=0.18, lw=0)
            for c in cols:  # each run's end: its last x and last logged value
                pts = [(xv, yv) for xv, yv in zip(c[xkey], c[args.column])
                       if math.isfinite(xv) and math.isfinite(yv)]
                if pts and pts[-1][0] <= xmax:
                    ax.plot([pts[-1][0]], [pts[-1][1]], "o", color=color, ms=3.5, alpha=0.8,
                            mec="white", mew=0.4)
        if args.target is not None and math.isfinite(args.target):
            ax.axhline(args.target, color="k", ls="--", lw=0.8, alpha=0.6)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(args.ylabel or f"{args.column} (mean over seeds)")
        if args.logx:
            ax.set_xscale("log")
            ax.set_xlim(grid[0], xmax)
        else:
            ax.set_xlim(0, xmax)
        ax.grid(alpha=0.3)
    band = "min..max" if args.band == "minmax" else "+-1 std"
    smooth = (f"trailing mean over {args.smooth_updates} updates" if args.smooth_updates > 1
              else f"trailing window {args.window:g} of the {'log ' if args.logx else ''}x range"
              if args.window > 0
              else "no extra smoothing")
    axes[0][0].legend(loc="upper left", fontsize=8)
    fig.suptitle(args.title or f"{args.column}: mean over seeds, band {band}; {smooth}",
                 fontsize=10)
    fig.tight_layout()
    save(fig, Path(args.out))
    return 0


# --------------------------------------------------------------------------------------------
# throughput
# --------------------------------------------------------------------------------------------

BENCH_NAME = re.compile(r"^BM_Env(?P<mode>Fused|Step)/gpu:(?P<gpu>\d)/f64:(?P<f64>\d)/"
                        r"envs:(?P<envs>\d+)")


def parse_bench(path: Path, counter: str) -> tuple[dict[tuple[str, str, str], dict[int, float]],
                                                    list[str], dict[str, Any]]:
    """{(device, precision, mode): {envs: rate}}, skipped-entry messages, context."""
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise InputError(f"{path}: not Google Benchmark JSON (no 'benchmarks' list); write it "
                         "with --benchmark_format=json or --benchmark_out=FILE")
    series: dict[tuple[str, str, str], dict[int, list[float]]] = {}
    aggregated: dict[tuple[str, str, str], dict[int, float]] = {}
    skipped = []
    for b in data["benchmarks"]:
        name = b.get("run_name") or b.get("name", "")
        m = BENCH_NAME.match(name)
        if not m:
            continue
        key = ("GPU" if m["gpu"] == "1" else "CPU", "f64" if m["f64"] == "1" else "f32",
               m["mode"].lower())
        n = int(m["envs"])
        if b.get("error_occurred"):
            skipped.append(f"{name}: {b.get('error_message', 'skipped')}")
            continue
        if counter not in b:
            continue
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                aggregated.setdefault(key, {})[n] = float(b[counter])
            continue
        series.setdefault(key, {}).setdefault(n, []).append(float(b[counter]))
    out = {k: {n: statistics.median(v) for n, v in d.items()} for k, d in series.items()}
    for k, d in aggregated.items():  # with --benchmark_repetitions the median aggregate wins
        out.setdefault(k, {}).update(d)
    if not out and not skipped:
        raise InputError(f"{path}: no BM_EnvFused / BM_EnvStep entries with counter {counter!r}")
    return out, skipped, data.get("context", {})


def parse_peers(path: Path) -> dict[str, dict[int, float]]:
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise InputError(f"{path}: not bench/peers.py --json-out output (no 'results' list)")
    out: dict[str, dict[int, float]] = {}
    for r in data["results"]:
        n = r.get("num_envs")
        for key in ("gymnasium", "envpool", "batchpole_fused", "batchpole_step"):
            e = r.get(key)
            if n and isinstance(e, dict) and e.get("ok") and e.get("env_steps_per_s"):
                out.setdefault(key, {})[int(n)] = float(e["env_steps_per_s"])
    return out


PEER_STYLE = {
    "gymnasium": ("Gymnasium CartPoleVectorEnv (NumPy)", "#7f7f7f", "s"),
    "envpool": ("EnvPool CartPole-v1", "#9467bd", "D"),
    "batchpole_fused": ("batchpole CLI fused (peers.py)", "#e377c2", "x"),
    "batchpole_step": ("batchpole CLI step (peers.py)", "#8c564b", "+"),
}


def cmd_throughput(args) -> int:
    plt = _plt()
    if not args.bench and not args.peers:
        raise InputError("throughput needs --bench FILE and/or --peers FILE")
    series: dict[tuple[str, str, str], dict[int, float]] = {}
    skipped: list[str] = []
    context: dict[str, Any] = {}
    for b in args.bench or []:
        s, sk, ctx = parse_bench(Path(b), args.counter)
        for k, d in s.items():
            series.setdefault(k, {}).update(d)
        skipped += sk
        context = context or ctx
    peers: dict[str, dict[int, float]] = {}
    for p in args.peers or []:
        for k, d in parse_peers(Path(p)).items():
            peers.setdefault(k, {}).update(d)
    if not args.peers_batchpole:
        peers.pop("batchpole_fused", None)
        peers.pop("batchpole_step", None)
    modes = ["fused", "step"] if args.mode == "both" else [args.mode]

    fig, ax = plt.subplots(figsize=(9.6, 5.0), dpi=args.dpi)
    dev_color = {("CPU", "f32"): "#1f77b4", ("CPU", "f64"): "#17becf",
                 ("GPU", "f32"): "#2ca02c", ("GPU", "f64"): "#bcbd22"}
    prec_marker = {"f32": "o", "f64": "^"}
    mode_style = {"fused": "-", "step": "--"}
    plotted = 0
    for dev in ("GPU", "CPU"):
        for prec in ("f32", "f64"):
            for mode in modes:
                d = series.get((dev, prec, mode))
                if not d:
                    continue
                ns = sorted(d)
                ax.plot(ns, [d[n] for n in ns], mode_style[mode], marker=prec_marker[prec], ms=4,
                        color=dev_color[(dev, prec)], lw=1.8,
                        label=f"batchpole {dev} {prec} {mode}")
                plotted += 1
    for key, d in peers.items():
        name, color, marker = PEER_STYLE[key]
        ns = sorted(d)
        ax.plot(ns, [d[n] for n in ns], ":", marker=marker, ms=5, color=color, lw=1.5,
                label=name)
        plotted += 1
    if not plotted:
        raise InputError("no throughput data to plot (every benchmark entry was skipped"
                         + (f": {skipped[0]}" if skipped else "") + ")")
    missing = sorted({f"{d}" for d in ("CPU", "GPU")
                      if not any(k[0] == d for k in series)} if args.bench else set())
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("number of environments")
    ax.set_ylabel("environment steps per second")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    title = args.title or "CartPole env steps/s vs batch size (random actions, auto-reset)"
    if missing:
        reason = ""
        if skipped:
            reason = skipped[0].split(": ", 1)[-1]
        title += "\n" + ", ".join(missing) + " benchmarks: no data" + (f" ({reason})" if reason
                                                                         else "")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    save(fig, Path(args.out))
    if skipped:
        print(f"note: {len(skipped)} benchmark entries were skipped, e.g. {skipped[0]}")
    return 0


# --------------------------------------------------------------------------------------------
# compare
# --------------------------------------------------------------------------------------------

COMPARE_COLUMNS = ["update", "env_steps", "mean_return", "policy_loss", "value_loss", "entropy",
                   "grad_norm"]
COMPARE_FILE = re.compile(r"^compare_(?P<algo>.+)_(?P<side>[^_]+)\.csv$")
SIDE_STYLE = {"cpu": ("#1f77b4", "-", 2.0), "gpu": ("#d62728", "--", 1.0),
              "cuda": ("#d62728", "--", 1.0), "cpu-serial": ("#1f77b4", "-", 2.0),
              "cpu-parallel": ("#ff7f0e", "--", 1.0)}


def cmd_compare(args) -> int:
    np = _np()
    plt = _plt()
    src = Path(args.dir)
    if not src.is_dir():
        raise InputError(f"{src}: no such directory")
    found: dict[str, dict[str, Path]] = {}
    for p in sorted(src.iterdir()):
        m = COMPARE_FILE.match(p.name)
        if m and p.is_file():
            found.setdefault(m["algo"], {})[m["side"].lower()] = p
    if args.algo:
        unknown = [a for a in args.algo if a not in found]
        if unknown:
            raise InputError(f"{src}: no compare_<algo>_<side>.csv for {', '.join(unknown)} "
                             f"(found: {', '.join(sorted(found)) or 'none'})")
        found = {a: found[a] for a in args.algo}
    if not found:
        raise InputError(f"{src}: no files named compare_<algo>_<side>.csv")
    metrics = args.metrics
    order = {"reinforce": 0, "baseline": 1, "a2c": 2}
    algos = sorted(found, key=lambda a: (order.get(a, 9), a))
    fig, axes = plt.subplots(len(algos), len(metrics), figsize=(3.2 * len(metrics),
                                                                 2.5 * len(algos)),
                             dpi=args.dpi, squeeze=False)
    for i, algo in enumerate(algos):
        sides = found[algo]
        # The reference side first: cpu before gpu, cpu-serial before cpu-parallel.
        names = sorted(sides, key=lambda s: (s not in ("cpu", "cpu-serial"), s))
        data = {s: read_csv(sides[s], COMPARE_COLUMNS) for s in names}
        if len(names) < 2:
            print(f"{algo}: only side {names[0]} found, nothing to overlay")
        diffs = []
        for j, metric in enumerate(metrics):
            ax = axes[i][j]
            for k, side in enumerate(names):
                color, ls, lw = SIDE_STYLE.get(side, SIDE_STYLE["cpu"] if k == 0 else
                                               (COLORS[(k + 2) % len(COLORS)], "--", 1.0))
                cols = data[side]
                ax.plot(cols[args.x], cols[metric], ls, color=color, lw=lw, label=side,
                        alpha=0.9)
            if len(names) >= 2:
                a, b = data[names[0]], data[names[1]]
                n = min(len(a[metric]), len(b[metric]))
                ya, yb = np.asarray(a[metric][:n]), np.asarray(b[metric][:n])
                delta = np.where(np.isnan(ya) & np.isnan(yb), 0.0, np.abs(ya - yb))
                bad = np.where(~(delta == 0))[0]  # NaN on one side only counts as different
                diff = float(np.nanmax(delta)) if n else math.nan
                first = int(a["update"][bad[0]]) if len(bad) else None
                diffs.append((metric, diff, first))
                ax.text(0.98, 0.02, f"max|{names[0]}-{names[1]}| = {diff:.3g}",
                        transform=ax.transAxes, ha="right", va="bottom", fontsize=7,
                        color="#444")
            if i == 0:
                ax.set_title(metric, fontsize=10)
            if j == 0:
                ax.set_ylabel(algo, fontsize=10)
            if i == len(algos) - 1:
                ax.set_xlabel(args.x.replace("_", " "))
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
        axes[i][0].legend(fontsize=7)
        if len(names) >= 2:
            a, b = data[names[0]], data[names[1]]
            rows = (f"{len(a['update'])} rows" if len(a["update"]) == len(b["update"])
                    else f"row counts differ: {len(a['update'])} vs {len(b['update'])}")
            same = [m for m, dv, _ in diffs if dv == 0]
            differ = [f"{m} {dv:.3g} (first at update {f})" for m, dv, f in diffs if dv != 0]
            print(f"{algo} {names[0]} vs {names[1]}: {rows}; "
                  + ("identical in every metric drawn" if not differ else
                     "max |difference|: " + ", ".join(differ)
                     + (f"; identical: {', '.join(same)}" if same else "")))
    fig.suptitle(args.title or f"Training curves side by side ({src})", fontsize=10)
    fig.tight_layout()
    save(fig, Path(args.out))
    return 0


# --------------------------------------------------------------------------------------------
# summary
# --------------------------------------------------------------------------------------------

def _median_range(vals: list[float | None]) -> str:
    """'median (min..max)'; None (not reached) counts as +infinity in the median and is
    counted, not ranged: '562k (194k..562k; 2 not reached)', 'not reached (1 at 93k)'."""
    if not vals:
        return "-"
    finite = [v for v in vals if v is not None and math.isfinite(v)]
    missing = len(vals) - len(finite)
    med = statistics.median([v if v is not None else math.inf for v in vals])
    if math.isinf(med):
        if not finite:
            return "not reached"
        return f"not reached ({len(finite)} at {', '.join(fmt_num(v) for v in sorted(finite))})"
    rng = f"{fmt_num(min(finite))}..{fmt_num(max(finite))}" if len(finite) > 1 else ""
    extra = f"{missing} not reached" if missing else ""
    inner = "; ".join(x for x in (rng, extra) if x)
    return fmt_num(med) + (f" ({inner})" if inner else "")


def first_crossing(cols: dict[str, list[float]], threshold: float) -> tuple[float, float] | None:
    for s, t, r in zip(cols["env_steps"], cols["wall_s"], cols["mean_return"]):
        if math.isfinite(r) and r >= threshold:
            return s, t
    return None


def cmd_summary(args) -> int:
    head = ["run", "seeds", "solved", "env steps to solve", "seconds to solve",
            "final mean return", "env steps/s"]
    if args.threshold is not None:
        head[5:5] = [f"steps to {args.threshold:g}", f"seconds to {args.threshold:g}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1))
             + "|"]
    for label, pattern in args.run:
        dirs = expand_runs(label, pattern, "summary.json")
        sums = [read_json(d / "summary.json") for d in dirs]
        solved = [bool(s.get("solved")) for s in sums]
        steps = [float(s["env_steps_to_solve"]) if s.get("solved") else None for s in sums]
        secs = [float(s["wall_s_to_solve"]) if s.get("solved") else None for s in sums]
        final = [float(s.get("final_mean_return", math.nan)) for s in sums]
        rate = [float(s.get("env_steps_per_s", math.nan)) for s in sums]
        row = [label, str(len(sums)), f"{sum(solved)}/{len(sums)}", _median_range(steps),
               _median_range(secs), _median_range(final), _median_range(rate)]
        if args.threshold is not None:
            cross = []
            for d in dirs:
                cols = read_csv(d / "metrics.csv", ["env_steps", "wall_s", "mean_return"])
                cross.append(first_crossing(cols, args.threshold))
            row[5:5] = [_median_range([c[0] if c else None for c in cross]),
                        _median_range([c[1] if c else None for c in cross])]
        lines.append("| " + " | ".join(row) + " |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return 0


# --------------------------------------------------------------------------------------------
# stability
# --------------------------------------------------------------------------------------------

def stability_of(cols: dict[str, list[float]], target: float, tail: float) -> dict[str, Any]:
    """One run's learning curve (metrics.csv mean_return against env_steps), judged on steps:
    where it first reached `target`, the share of the steps after that spent at or above it,
    the lowest mean return after it, and the mean over the last `tail` of the run's steps."""
    steps = cols["env_steps"]
    ret = cols["mean_return"]
    total = steps[-1]
    first = next((i for i, r in enumerate(ret) if math.isfinite(r) and r >= target), None)
    out: dict[str, Any] = {"first": steps[first] if first is not None else None,
                           "held": None, "lowest_after": None}
    if first is not None and first + 1 < len(steps):
        span = steps[-1] - steps[first]
        above = sum(steps[i + 1] - steps[i] for i in range(first, len(steps) - 1)
                    if ret[i] >= target)
        out["held"] = above / span if span > 0 else 1.0
        out["lowest_after"] = min(ret[first:])
    tail_start = total * (1 - tail)
    tail_rows = [r for s, r in zip(steps, ret) if s >= tail_start and math.isfinite(r)]
    out["final"] = sum(tail_rows) / len(tail_rows) if tail_rows else math.nan
    return out


def cmd_stability(args) -> int:
    head = ["run", "seeds", f"reached {args.target:g}", "env steps to reach it",
            "share of the steps after it at or above it", "lowest mean return after it",
            f"mean return, last {args.tail:.0%} of the steps", "std over seeds of that"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1))
             + "|"]
    for label, pattern in args.run:
        dirs = expand_runs(label, pattern, "metrics.csv")
        per = [stability_of(read_csv(d / "metrics.csv", ["env_steps", "mean_return"]),
                            args.target, args.tail) for d in dirs]
        reached = [p for p in per if p["first"] is not None]
        finals = [p["final"] for p in per]
        sd = statistics.pstdev(finals) if len(finals) > 1 else 0.0
        held = [p["held"] for p in reached if p["held"] is not None]
        lowest = [p["lowest_after"] for p in reached if p["lowest_after"] is not None]
        row = [label, str(len(per)), f"{len(reached)}/{len(per)}",
               _median_range([p["first"] for p in per]),
               (_median_range([100 * h for h in held]) + " %") if held else "-",
               _median_range(lowest) if lowest else "-", _median_range(finals), fmt_num(sd)]
        lines.append("| " + " | ".join(row) + " |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return 0


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="plot.py", description=__doc__.split("\n\n")[0],
        epilog="Run `plot.py SUBCOMMAND --help` for each subcommand's options. Exit status: 0 "
               "ok, 2 usage error or missing input.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", metavar="SUBCOMMAND")
    sub.required = True
    fmt = argparse.ArgumentDefaultsHelpFormatter

    c = sub.add_parser("curves", formatter_class=fmt,
                       help="episode length vs env steps and vs seconds, mean and band over seeds",
                       description="Learning curves from `batchpole train` run directories "
                                   "(metrics.csv): one curve per --run, the mean over its "
                                   "seeds and a band. Smoothing: see the module docstring "
                                   "(`head -40 scripts/plot.py`).")
    c.add_argument("--run", action="append", type=parse_run_spec, required=True,
                   metavar="LABEL=GLOB", help="a label and a glob of run directories (quote "
                   "it), e.g. reinforce='runs/reinforce-s*'; repeat for each algorithm")
    c.add_argument("--out", required=True, help="PNG to write")
    c.add_argument("--column", default="mean_length", help="metrics.csv column on the y axis")
    c.add_argument("--x", choices=["both", "steps", "time"], default="both",
                   help="x axis: env steps, wall-clock seconds, or both side by side")
    c.add_argument("--band", choices=["minmax", "std"], default="minmax",
                   help="band around the mean: min..max or +-1 std over seeds")
    c.add_argument("--window", type=float, default=0.02,
                   help="trailing smoothing window, a fraction of the x range (0 = none)")
    c.add_argument("--smooth-updates", type=int, default=0, metavar="N",
                   help="instead of --window: trailing mean over the last N updates of each run")
    c.add_argument("--points", type=int, default=400, help="grid points on the x axis")
    c.add_argument("--after-end", choices=["hold", "drop"], default="hold",
                   help="a stopped run keeps its last value (hold) or leaves the mean (drop)")
    c.add_argument("--target", type=float, default=475.0,
                   help="dashed horizontal line (the target return); pass nan for none")
    c.add_argument("--xmax", type=float, help="cut the env-steps axis here")
    c.add_argument("--tmax", type=float, help="cut the seconds axis here")
    c.add_argument("--logx", action="store_true",
                   help="logarithmic x axes (grid and smoothing window in log10 x)")
    c.add_argument("--min-seeds", type=int, default=1, help="fail if a --run has fewer runs")
    c.add_argument("--title", help="figure title")
    c.add_argument("--ylabel", help="y-axis label")
    c.add_argument("--dpi", type=int, default=90)
    c.set_defaults(func=cmd_curves)

    t = sub.add_parser("throughput", formatter_class=fmt,
                       help="env steps/s vs number of environments, log-log, with peers",
                       description="Environment steps per second against the number of "
                                   "environments from Google Benchmark JSON (BM_EnvFused / "
                                   "BM_EnvStep, counter env_steps_per_s; entries skipped with "
                                   "an error, e.g. no CUDA device, are left out and named) and "
                                   "from bench/peers.py --json-out (Gymnasium, EnvPool).")
    t.add_argument("--bench", action="append", metavar="JSON",
                   help="batchpole_bench --benchmark_format=json output (repeatable: e.g. one "
                        "file from a CPU machine, one from a GPU machine)")
    t.add_argument("--peers", action="append", metavar="JSON",
                   help="bench/peers.py --json-out output (repeatable)")
    t.add_argument("--out", required=True, help="PNG to write")
    t.add_argument("--mode", choices=["fused", "step", "both"], default="both",
                   help="batchpole benchmark mode(s) to draw")
    t.add_argument("--counter", default="env_steps_per_s", help="benchmark counter")
    t.add_argument("--peers-batchpole", action="store_true",
                   help="also draw peers.py's own batchpole CLI measurements")
    t.add_argument("--title", help="figure title")
    t.add_argument("--dpi", type=int, default=90)
    t.set_defaults(func=cmd_throughput)

    m = sub.add_parser("compare", formatter_class=fmt,
                       help="CPU and GPU training curves overlaid (compare_<algo>_<side>.csv)",
                       description="Overlays the sides (cpu, gpu, ...) of each algorithm found "
                                   "as DIR/compare_<algo>_<side>.csv (columns " +
                                   ",".join(COMPARE_COLUMNS) + ") and prints the largest "
                                   "difference between the first two sides per metric.")
    m.add_argument("dir", help="directory written by `batchpole compare --metrics-out DIR`")
    m.add_argument("--out", required=True, help="PNG to write")
    m.add_argument("--algo", action="append", help="only these algorithms (repeatable)")
    m.add_argument("--x", choices=["env_steps", "update"], default="env_steps")
    m.add_argument("--metrics", nargs="+", choices=COMPARE_COLUMNS[2:],
                   default=COMPARE_COLUMNS[2:], help="columns to draw, one panel each")
    m.add_argument("--title", help="figure title")
    m.add_argument("--dpi", type=int, default=72)
    m.set_defaults(func=cmd_compare)

    s = sub.add_parser("summary", formatter_class=fmt,
                       help="Markdown table of summary.json over seeds (median, min..max)",
                       description="One row per --run: how many seeds solved, and the median "
                                   "(min..max over seeds) of env_steps_to_solve, "
                                   "wall_s_to_solve (unsolved seeds count as infinite, so the "
                                   "median can read 'not reached'), final_mean_return and "
                                   "env_steps_per_s.")
    s.add_argument("--run", action="append", type=parse_run_spec, required=True,
                   metavar="LABEL=GLOB", help="as in curves")
    s.add_argument("--threshold", type=float,
                   help="also the first env steps / seconds at which metrics.csv mean_return "
                        "reached this value")
    s.add_argument("--out", help="also write the table to this file")
    s.set_defaults(func=cmd_summary)

    st = sub.add_parser("stability", formatter_class=fmt,
                        help="Markdown table of how learning curves hold up over seeds",
                        description="One row per --run, from metrics.csv (runs to a fixed budget, "
                                    "e.g. --target-return 1e9 so that none stops early): seeds "
                                    "whose mean_return reached --target, the env steps to reach "
                                    "it, the share of the steps after it at or above it, the "
                                    "lowest mean_return after it, the mean of mean_return over "
                                    "the last --tail of the steps and its std over seeds; "
                                    "median (min..max) over seeds.")
    st.add_argument("--run", action="append", type=parse_run_spec, required=True,
                    metavar="LABEL=GLOB", help="as in curves")
    st.add_argument("--target", type=float, default=475.0, help="mean return to reach")
    st.add_argument("--tail", type=float, default=0.1,
                    help="share of the steps at the end whose mean return is reported")
    st.add_argument("--out", help="also write the table to this file")
    st.set_defaults(func=cmd_stability)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except InputError as e:
        print(f"plot.py {args.cmd}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
