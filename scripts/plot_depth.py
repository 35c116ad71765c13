"""The `depth` subcommand of scripts/plot.py: sequential depth against batch size. For every
run directory, env steps to solve divided by the run's environments (per agent: `envs` is each
agent's) is the number of sequential environment steps the run needed; a massive batch pays when
this falls as the batch grows. One marker per label and batch size at the median over seeds
(a population's agents, or several runs), a bar from min to max; seeds that did not solve are
counted and drawn as open markers at the top."""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from plot_common import (COLORS, InputError, expand_runs, fmt_num, import_pyplot, read_json,
                         run_name, save)
from plot_population import read_summary

# label -> envs -> (steps per env of the agents that solved, how many did not)
Depths = dict[str, dict[int, tuple[list[float], int]]]


def run_envs(d: Path) -> int:
    """The environments of each agent of run directory d, from summary.json's config."""
    config = read_json(d / "summary.json").get("config")
    envs = config.get("envs") if isinstance(config, dict) else None
    if not isinstance(envs, int) or envs < 1:
        raise InputError(f"{d / 'summary.json'}: no config.envs")
    return envs


def collect_depths(runs: list[tuple[str, str]]) -> Depths:
    out: Depths = {}
    for label, pattern in runs:
        name = run_name(label, pattern)
        by_envs = out.setdefault(name, {})
        for d in expand_runs(label, pattern, "summary.json"):
            envs = run_envs(d)
            solved, unsolved = by_envs.get(envs, ([], 0))
            for a in read_summary(d):
                if a.solved and a.env_steps_to_solve is not None:
                    solved.append(a.env_steps_to_solve / envs)
                else:
                    unsolved += 1
            by_envs[envs] = (solved, unsolved)
    return out


def depth_table(depths: Depths) -> str:
    """A Markdown table: label, envs, solved, steps per env median (min..max)."""
    lines = ["| run | envs | solved | env steps per env to solve |", "|---|---:|---:|---:|"]
    for name, by_envs in depths.items():
        for envs in sorted(by_envs):
            solved, unsolved = by_envs[envs]
            n = len(solved) + unsolved
            cell = "not reached" if not solved else (
                f"{fmt_num(statistics.median(solved))} ({fmt_num(min(solved))}.."
                f"{fmt_num(max(solved))})")
            lines.append(f"| {name} | {envs} | {len(solved)}/{n} | {cell} |")
    return "\n".join(lines)


def cmd_depth(args: argparse.Namespace) -> int:
    depths = collect_depths(args.run)
    print(depth_table(depths))
    if args.out is None:
        return 0
    plt = import_pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.3), dpi=args.dpi)
    top = max((max(s) for by in depths.values() for s, _ in by.values() if s), default=1.0)
    for i, (name, by_envs) in enumerate(depths.items()):
        color = COLORS[i % len(COLORS)]
        xs = sorted(e for e, (s, _) in by_envs.items() if s)
        med = [statistics.median(by_envs[e][0]) for e in xs]
        lo = [m - min(by_envs[e][0]) for e, m in zip(xs, med)]
        hi = [max(by_envs[e][0]) - m for e, m in zip(xs, med)]
        ax.errorbar(xs, med, yerr=[lo, hi], color=color, marker="o", capsize=3, lw=1.6,
                    label=name)
        failed = [e for e, (_, u) in by_envs.items() if u > 0]
        if failed:
            ax.plot(failed, [top * 1.5] * len(failed), "o", mfc="none", color=color, ms=8)
            for e in failed:
                s, u = by_envs[e]
                ax.annotate(f"{u}/{len(s) + u} not solved", (e, top * 1.5), fontsize=7,
                            color=color, textcoords="offset points", xytext=(4, 4))
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("environments per agent (batch)")
    ax.set_ylabel("env steps per environment to solve")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title(args.title or "Sequential depth to solve: median, min..max over seeds",
                 fontsize=10)
    fig.tight_layout()
    save(fig, Path(args.out))
    return 0
