#!/usr/bin/env python3
"""Figures (PNG) and tables from what `batchpole train`, the benchmarks and `batchpole compare`
write.

Subcommands:

  curves      episode length (metrics.csv `mean_length`) against environment steps and against
              wall-clock seconds, one curve per algorithm: the mean over seeds (run directories,
              or the agents of a population) and a band (min..max or +-1 std) around it. The
              notebook's comparison of REINFORCE, REINFORCE with baseline and A2C.
  throughput  environment steps/s against the number of environments, log-log: CPU and GPU,
              f32 and f64, from Google Benchmark JSON (`batchpole_bench --benchmark_format=json`),
              with Gymnasium's CartPoleVectorEnv and EnvPool from `bench/peers.py --json-out`.
  compare     CPU and GPU training curves overlaid, from `compare_<algo>_<side>.csv` files in a
              directory (`batchpole compare --metrics-out DIR`).
  summary     a Markdown table of summary.json over seeds (median and min..max): solved,
              env_steps_to_solve, wall_s_to_solve, final_mean_return; optionally the first
              env steps / seconds at which mean_return crossed a lower threshold.
  depth       env steps per environment to solve against the batch size (log-log), median and
              min..max over seeds, and its Markdown table: does a larger batch pay?
  stability   a Markdown table of how learning curves hold up over seeds (runs to a fixed
              budget): the steps to first reach a target mean return, the share of the steps
              after it spent at or above it, the lowest mean return after it, the mean return
              over the last part of the run and its spread over seeds.

Populations: a run directory of `batchpole train --agents K` holds K agents (seeds) in one
metrics.csv (columns `agent`, `seed`) and one summary.json (`agents`); each agent counts as one
run, so `--run a2c=runs/pop64` is the mean and band over 64 agents (n=64), and a glob over
several such directories pools their agents. With `--sweep KEY=V1,V2` the columns after `seed`
hold each agent's swept values: `curves` draws and `summary` writes one curve / row per sweep
point, named `LABEL key=value key=value` (just the values for `--run =GLOB` or `--run=-=GLOB`);
`--where KEY=VALUE` (repeatable) keeps only the points with that value. metrics.csv files
without the `agent` column are one agent.

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
  batchpole train --agents 64 --out runs/pop64
  scripts/plot.py curves --run a2c=runs/pop64 --out pop64.png
  batchpole train --agents 4 --sweep lr=1e-3,3e-3 --sweep entropy_coef=0,0.01 --out runs/sweep
  scripts/plot.py curves --run a2c=runs/sweep --where lr=0.003 --out sweep.png
  scripts/plot.py summary --run a2c=runs/pop64 --run =runs/sweep
"""

from __future__ import annotations

import argparse
import sys

from plot_bench import COMPARE_COLUMNS, cmd_compare, cmd_throughput
from plot_common import InputError, parse_run_spec
from plot_depth import cmd_depth
from plot_population import parse_where
from plot_runs import cmd_curves, cmd_summary
from plot_stability import cmd_stability


def build_parser() -> argparse.ArgumentParser:
    """The command line: one subparser per subcommand, each dispatching to its cmd_ function."""
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
                                   "(metrics.csv): one curve per --run (per sweep point for a "
                                   "sweep), the mean over its seeds (runs, or a population's "
                                   "agents) and a band. Populations and smoothing: see the "
                                   "module docstring (`head -50 scripts/plot.py`).")
    c.add_argument("--run", action="append", type=parse_run_spec, required=True,
                   metavar="LABEL=GLOB", help="a label and a glob of run directories (quote "
                   "it), e.g. reinforce='runs/reinforce-s*'; repeat for each algorithm")
    c.add_argument("--where", action="append", type=parse_where, metavar="KEY=VALUE",
                   help="only the sweep points with this value of a swept key, e.g. lr=0.001 "
                        "(repeatable; runs that do not sweep KEY are kept)")
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
                       description="One row per --run (per sweep point for a sweep): how "
                                   "many seeds (runs, or a population's agents) solved, and the "
                                   "median (min..max over seeds) of env_steps_to_solve, "
                                   "wall_s_to_solve (unsolved seeds count as infinite, so the "
                                   "median can read 'not reached'), final_mean_return and "
                                   "env_steps_per_s (one value per run directory).")
    s.add_argument("--run", action="append", type=parse_run_spec, required=True,
                   metavar="LABEL=GLOB", help="as in curves")
    s.add_argument("--where", action="append", type=parse_where, metavar="KEY=VALUE",
                   help="as in curves")
    s.add_argument("--threshold", type=float,
                   help="also the first env steps / seconds at which metrics.csv mean_return "
                        "reached this value")
    s.add_argument("--out", help="also write the table to this file")
    s.set_defaults(func=cmd_summary)

    d = sub.add_parser("depth", formatter_class=fmt,
                       help="env steps per environment to solve against the batch size",
                       description="For every --run (runs of several batch sizes, each a "
                                   "population of seeds or several runs): env_steps_to_solve / "
                                   "envs per agent, the median and min..max at each batch size, "
                                   "as a Markdown table and (with --out) a log-log figure.")
    d.add_argument("--run", action="append", type=parse_run_spec, required=True,
                   metavar="LABEL=GLOB", help="run directories of one method, any batch sizes")
    d.add_argument("--out", help="PNG to write")
    d.add_argument("--title", help="figure title")
    d.add_argument("--dpi", type=int, default=90)
    d.set_defaults(func=cmd_depth)

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
    """Run one subcommand; an InputError is reported on stderr with exit status 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except InputError as e:
        print(f"plot.py {args.cmd}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
