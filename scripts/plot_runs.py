"""The subcommands of scripts/plot.py that read `batchpole train` run directories: `curves`
(learning curves from metrics.csv) and `summary` (a Markdown table from summary.json).

A run directory may hold a population (one agent per seed, and per sweep point): each agent
counts as one run, agents of the same sweep point pool across the directories of a --run, and
each sweep point gets its own curve or table row (see plot_population)."""

from __future__ import annotations

import argparse
import math
import statistics
import warnings
from pathlib import Path
from typing import Any, Sequence

from plot_common import (COLORS, InputError, expand_runs, fmt_num, import_numpy, import_pyplot,
                         run_name, save)
from plot_population import (AgentMetrics, AgentSummary, Where, check_where_keys, group_points,
                             point_label, read_metrics, read_summary)

# --------------------------------------------------------------------------------------------
# curves
# --------------------------------------------------------------------------------------------

X_AXES = {"steps": ("env_steps", "environment steps"), "time": ("wall_s", "wall-clock seconds")}
LINE_STYLES = ["-", "--", ":", "-."]  # once the colours have all been used

# One curve: its legend label and the agents it averages.
Curve = tuple[str, list[AgentMetrics]]


def trailing_mean_by_rows(values: Sequence[float], n: int) -> Any:
    """Trailing mean over the last `n` values (fewer at the start), as a numpy array."""
    np = import_numpy()
    v = np.asarray(values, dtype=float)
    if n <= 1 or len(v) == 0:
        return v
    c = np.cumsum(np.insert(v, 0, 0.0))
    idx = np.arange(1, len(v) + 1)
    lo = np.maximum(0, idx - n)
    return (c[idx] - c[lo]) / (idx - lo)


def aggregate_curves(runs: list[dict[str, Any]], xkey: str, ykey: str, grid: Any, window: float,
                     after_end: str, band: str) -> tuple[Any, Any, Any, Any]:
    """Mean and band over runs on `grid`; returns (mean, lo, hi, count)."""
    np = import_numpy()
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


def load_agents(label: str, pattern: str, ykey: str) -> list[AgentMetrics]:
    """Every agent of the run directories matching `pattern`, `ykey` NaN before the agent's
    first finished episode (the means are 0 there by convention, not a measurement)."""
    agents = []
    for d in expand_runs(label, pattern, "metrics.csv"):
        for a in read_metrics(d, ["update", "env_steps", "wall_s", ykey]):
            if "recent_episodes" in a.cols and ykey != "recent_episodes":
                a.cols[ykey] = [v if n > 0 else math.nan
                                for v, n in zip(a.cols[ykey], a.cols["recent_episodes"])]
            agents.append(a)
    return agents


def collect_curves(runs: Sequence[tuple[str, str]], ykey: str, where: Sequence[Where] = (),
                   min_seeds: int = 1) -> list[Curve]:
    """The curves of the --run LABEL=GLOB specs: one per label, or one per sweep point (of those
    that --where selects), each over all its agents."""
    loaded = [(label, pattern, load_agents(label, pattern, ykey)) for label, pattern in runs]
    if where:
        check_where_keys(where, (a.config for _, _, agents in loaded for a in agents))
    curves = []
    for label, pattern, agents in loaded:
        for config, members in group_points(run_name(label, pattern), agents, where).items():
            name = point_label(label, config, pattern)
            if len(members) < min_seeds:
                raise InputError(f"--run {name}: {len(members)} run(s) found, --min-seeds is "
                                 f"{min_seeds}")
            curves.append((name, members))
    return curves


def _draw_axis(ax: Any, xk: str, curves: list[Curve], args: argparse.Namespace) -> None:
    """One panel of `curves`: every curve's mean and band against x axis `xk`."""
    np = import_numpy()
    xkey, xlabel = X_AXES[xk]
    xmax = max(max(v for v in a.cols[xkey] if math.isfinite(v))
               for _, agents in curves for a in agents)
    if args.xmax is not None and xk == "steps":
        xmax = min(xmax, args.xmax)
    if args.tmax is not None and xk == "time":
        xmax = min(xmax, args.tmax)
    cols_by_curve = [[a.cols for a in agents] for _, agents in curves]
    if args.logx:
        # Grid, window and interpolation in log10(x): the window is then a fraction of the
        # decades shown, as the eye reads a log axis.
        xmin = min(v for cs in cols_by_curve for c in cs
                   for v, yv in zip(c[xkey], c[args.column])
                   if math.isfinite(v) and v > 0 and math.isfinite(yv))
        xmin = min(xmin, xmax)
        grid_t = np.linspace(math.log10(xmin), math.log10(xmax), args.points)
        grid = 10.0 ** grid_t
        cols_t = [[{xkey: [math.log10(v) if v > 0 else math.nan for v in c[xkey]],
                    args.column: c[args.column]} for c in cs] for cs in cols_by_curve]
    else:
        grid = grid_t = np.linspace(0.0, xmax, args.points)
        cols_t = cols_by_curve
    window = 0.0 if args.smooth_updates > 1 else args.window
    for i, (label, agents) in enumerate(curves):
        color = COLORS[i % len(COLORS)]
        ls = LINE_STYLES[(i // len(COLORS)) % len(LINE_STYLES)]
        mean, lo, hi, _ = aggregate_curves(cols_t[i], xkey, args.column, grid_t, window,
                                           args.after_end, args.band)
        ax.plot(grid, mean, ls, color=color, lw=1.8, label=f"{label} (n={len(agents)})")
        ax.fill_between(grid, lo, hi, color=color, alpha=0.18, lw=0)
        for c in cols_by_curve[i]:  # each run's end: its last x and last logged value
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


def cmd_curves(args: argparse.Namespace) -> int:
    """`plot.py curves`: learning curves, mean and band over each curve's agents."""
    plt = import_pyplot()
    curves = collect_curves(args.run, args.column, args.where or (), args.min_seeds)
    if args.smooth_updates > 1:
        for _, agents in curves:
            for a in agents:
                a.cols[args.column] = list(trailing_mean_by_rows(a.cols[args.column],
                                                                 args.smooth_updates))

    axes_keys = ["steps", "time"] if args.x == "both" else [args.x]
    fig, axes = plt.subplots(1, len(axes_keys), figsize=(6.2 * len(axes_keys), 4.3), dpi=args.dpi,
                             squeeze=False)
    for ax, xk in zip(axes[0], axes_keys):
        _draw_axis(ax, xk, curves, args)
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
    """The first (env_steps, wall_s) at which mean_return reached `threshold`, if it did."""
    for s, t, r in zip(cols["env_steps"], cols["wall_s"], cols["mean_return"]):
        if math.isfinite(r) and r >= threshold:
            return s, t
    return None


def crossings(d: Path, threshold: float) -> dict[int, tuple[float, float] | None]:
    """first_crossing of every agent of run directory `d`'s metrics.csv, by agent index."""
    return {a.agent: first_crossing(a.cols, threshold)
            for a in read_metrics(d, ["env_steps", "wall_s", "mean_return"])}


def summary_rows(label: str, pattern: str, agents: list[AgentSummary], where: Sequence[Where],
                 threshold: float | None) -> list[list[str]]:
    """The table rows of one --run: one per sweep point (one in all without a sweep)."""
    cross: dict[tuple[Path, int], tuple[float, float] | None] = {}
    if threshold is not None:
        for d in dict.fromkeys(a.dir for a in agents):
            by_agent = crossings(d, threshold)
            for a in agents:
                if a.dir == d:
                    if a.agent not in by_agent:
                        raise InputError(f"{d / 'metrics.csv'} has no rows of agent {a.agent}")
                    cross[(d, a.agent)] = by_agent[a.agent]
    rows = []
    for config, members in group_points(run_name(label, pattern), agents, where).items():
        rows.append(summary_row(point_label(label, config, pattern), members,
                                [cross[(a.dir, a.agent)] for a in members]
                                if threshold is not None else None))
    return rows


def summary_row(name: str, agents: list[AgentSummary],
                cross: list[tuple[float, float] | None] | None) -> list[str]:
    """One table row over `agents`; the rate is the median over their runs, one value a run."""
    rates = {a.dir: a.env_steps_per_s for a in agents}
    row = [name, str(len(agents)), f"{sum(a.solved for a in agents)}/{len(agents)}",
           _median_range([a.env_steps_to_solve for a in agents]),
           _median_range([a.wall_s_to_solve for a in agents]),
           _median_range([a.final_mean_return for a in agents]),
           _median_range(list(rates.values()))]
    if cross is not None:
        row[5:5] = [_median_range([c[0] if c else None for c in cross]),
                    _median_range([c[1] if c else None for c in cross])]
    return row


def cmd_summary(args: argparse.Namespace) -> int:
    """`plot.py summary`: a Markdown table, one row per --run (or per sweep point)."""
    head = ["run", "seeds", "solved", "env steps to solve", "seconds to solve",
            "final mean return", "env steps/s"]
    if args.threshold is not None:
        head[5:5] = [f"steps to {args.threshold:g}", f"seconds to {args.threshold:g}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1))
             + "|"]
    where = args.where or ()
    loaded = [(label, pattern, [a for d in expand_runs(label, pattern, "summary.json")
                                for a in read_summary(d)])
              for label, pattern in args.run]
    if where:
        check_where_keys(where, (a.config for _, _, agents in loaded for a in agents))
    for label, pattern, agents in loaded:
        for row in summary_rows(label, pattern, agents, where, args.threshold):
            lines.append("| " + " | ".join(row) + " |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return 0
