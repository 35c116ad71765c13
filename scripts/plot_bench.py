"""The benchmark subcommands of scripts/plot.py: `throughput` (environment steps/s against the
number of environments, from Google Benchmark JSON and bench/peers.py) and `compare` (CPU and
GPU training curves overlaid, from `batchpole compare --metrics-out DIR`)."""

from __future__ import annotations

import argparse
import math
import re
import statistics
from pathlib import Path
from typing import Any

from plot_common import COLORS, InputError, import_numpy, import_pyplot, read_csv, read_json, save

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
    """{peer: {num_envs: env steps/s}} from bench/peers.py --json-out output."""
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


def cmd_throughput(args: argparse.Namespace) -> int:
    """`plot.py throughput`: env steps/s against the number of environments, log-log."""
    if not args.bench and not args.peers:
        raise InputError("throughput needs --bench FILE and/or --peers FILE")
    plt = import_pyplot()
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


def cmd_compare(args: argparse.Namespace) -> int:
    """`plot.py compare`: the sides of each algorithm overlaid, one panel per metric."""
    np = import_numpy()
    plt = import_pyplot()
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
