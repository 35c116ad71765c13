"""The `stability` subcommand of scripts/plot.py: how learning curves hold up over seeds, for
runs to a fixed budget (e.g. `--target-return 1e9`, so that none stops early). Every agent of
every run directory (a population's agents, or one run each) is one seed."""

from __future__ import annotations

import argparse
import math
import statistics
from pathlib import Path
from typing import Any

from plot_common import fmt_num
from plot_runs import _median_range, load_agents


def stability_of(cols: dict[str, list[float]], target: float, tail: float) -> dict[str, Any]:
    """One learning curve (mean_return against env_steps), judged on steps: where it first
    reached `target`, the share of the steps after that spent at or above it, the lowest mean
    return after it, and the mean over the last `tail` of the run's steps."""
    steps = cols["env_steps"]
    ret = cols["mean_return"]
    first = next((i for i, r in enumerate(ret) if math.isfinite(r) and r >= target), None)
    out: dict[str, Any] = {"first": steps[first] if first is not None else None,
                           "held": None, "lowest_after": None}
    if first is not None and first + 1 < len(steps):
        span = steps[-1] - steps[first]
        above = sum(steps[i + 1] - steps[i] for i in range(first, len(steps) - 1)
                    if ret[i] >= target)
        out["held"] = above / span if span > 0 else 1.0
        out["lowest_after"] = min(ret[first:])
    tail_start = steps[-1] * (1 - tail)
    tail_rows = [r for s, r in zip(steps, ret) if s >= tail_start and math.isfinite(r)]
    out["final"] = sum(tail_rows) / len(tail_rows) if tail_rows else math.nan
    return out


def cmd_stability(args: argparse.Namespace) -> int:
    head = ["run", "seeds", f"reached {args.target:g}", "env steps to reach it",
            "share of the steps after it at or above it", "lowest mean return after it",
            f"mean return, last {args.tail:.0%} of the steps", "std over seeds of that"]
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for label, pattern in args.run:
        per = [stability_of(a.cols, args.target, args.tail)
               for a in load_agents(label, pattern, "mean_return")]
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
